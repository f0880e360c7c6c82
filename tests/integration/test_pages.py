"""The gateway's pages in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the local stack. The playground: a key, the bundled sample, a dry run, an
edit, errors. Swagger UI: the document rendered, a request tried from it."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from editgate_local.fal_emulator import FalEmulator
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import REPO_ROOT, LocalStack
from tests.conftest import API_KEY, open_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = REPO_ROOT / "out" / "playground.png"
DOCS_SCREENSHOT = REPO_ROOT / "out" / "docs.png"
# As root in a sandbox, with nothing of Chromium's own reaching out to a network that is closed.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed: `sudo apt-get install chromium` "
    "(make test installs it itself when it runs as root)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


# Run in each document before its own scripts (injected by the browser, so not subject to the
# page's policy): every Content-Security-Policy violation the page causes is kept.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


class Console:
    """What a page's console and policy said: every CSP violation, and every error that is not
    the browser's note of an HTTP error answer (which some tests cause on purpose)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or (
            message.type == "error" and not text.startswith("Failed to load resource: the server responded")
        ):
            self.errors.append(text)

    def problems(self) -> list[str]:
        return self.errors + list(self.page.evaluate("window.cspViolations || []"))


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    console = Console(opened)
    opened.goto(f"{stack.base_url}/playground")
    yield opened
    # The page did all it did under its Content-Security-Policy, which refused none of it.
    assert console.problems() == []
    context.close()


def use_key(page: Page, key: str = API_KEY) -> None:
    page.fill("#key", key)
    page.click("#use-key")


def test_given_a_key_and_the_sample_then_the_dry_run_shows_the_cost_and_the_edit_shows_the_result(
    page: Page, emulator: FalEmulator
) -> None:
    use_key(page)
    expect(page.locator("#model option")).to_have_count(3)
    expect(page.locator("#param-cfg_scale")).to_be_visible()  # the model's own parameters, from /v1/models
    page.set_input_files("#file", str(SAMPLE_IMAGE))
    page.fill("#prompt", "turn it into a snowy winter evening")
    page.fill("#param-seed", "7")

    page.click("#preview")
    expect(page.locator("#dry-run-cost")).to_contain_text("Would cost $0.06 for 1 image(s) of 768x512")
    expect(page.locator("#dry-run-body")).to_contain_text('"seed": 7')
    assert emulator.request_ids == []  # nothing paid for a preview

    page.click("#edit")
    result = page.locator(".result img.after")
    expect(result).to_have_count(1)
    page.wait_for_function("document.querySelector('.result img.after').naturalWidth > 0")
    shown = result.evaluate("img => `${img.naturalWidth}x${img.naturalHeight}`")
    expect(page.locator('[data-fact="size"]')).to_have_text(shown)
    assert shown == "768x512"
    expect(page.locator('[data-fact="cost"]')).to_contain_text("$0.060")
    expect(page.locator('[data-fact="request id"]')).not_to_be_empty()
    expect(page.locator('[data-fact="timings"]')).to_contain_text("fal-wait")
    assert len(emulator.request_ids) == 1
    download = page.locator(".result a[download]")
    assert open_image(page.request.get(download.get_attribute("href") or "").body()).size == (768, 512)
    page.locator(".result input[type=range]").fill("20")  # the before/after slider moves the split

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_given_a_bad_request_then_the_page_shows_the_error_as_the_api_words_it(page: Page) -> None:
    use_key(page)
    expect(page.locator("#model option")).to_have_count(3)
    page.set_input_files("#file", str(SAMPLE_IMAGE))
    page.fill("#prompt", "snow")
    page.fill("#size", "12x12")

    page.click("#edit")

    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("400 (invalid_value, param: size)")
    expect(error).to_contain_text("Invalid value for 'size': each side must be 64-4096 pixels")


def test_given_a_wrong_key_then_the_page_says_so_and_keeps_the_key_in_this_tab_only(page: Page) -> None:
    use_key(page, "sk-wrong")

    expect(page.locator("#error")).to_contain_text("401 (invalid_api_key)")
    assert page.evaluate("sessionStorage.getItem('editgate.key')") == "sk-wrong"
    assert page.evaluate("localStorage.length") == 0


def test_given_an_image_dropped_on_the_page_then_it_is_the_edits_input(page: Page) -> None:
    use_key(page)
    expect(page.locator("#model option")).to_have_count(3)
    sample = base64.b64encode(SAMPLE_IMAGE.read_bytes()).decode()

    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const drop = new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true });
            document.getElementById("drop").dispatchEvent(drop);
        }""",
        [sample, "dropped.png"],
    )
    page.fill("#prompt", "snow")
    page.click("#preview")

    expect(page.locator("#input-preview")).to_have_attribute("alt", "dropped.png")
    expect(page.locator("#dry-run-cost")).to_contain_text("of 768x512")


def test_given_a_key_then_swagger_ui_renders_the_document_and_tries_a_request(
    browser: Browser, stack: LocalStack
) -> None:
    # A browser sends no Authorization header of its own: the key comes with every request here.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, extra_http_headers={"Authorization": f"Bearer {API_KEY}"}
    )
    docs = context.new_page()
    console = Console(docs)
    docs.goto(f"{stack.base_url}/docs")

    expect(docs.locator(".opblock-summary-path", has_text="/v1/images/edits")).to_be_visible()
    expect(docs.locator(".info .title")).to_contain_text("editgate")
    docs.locator(".opblock-summary", has_text="/v1/models/{model_id}").click()
    docs.click("text=Try it out")
    docs.fill("input[placeholder='model_id']", "hidream-e1-1")
    docs.click("button.execute")
    expect(docs.locator(".live-responses-table .response .response-col_status")).to_contain_text("200")
    expect(docs.locator(".live-responses-table .response-col_description .microlight").first).to_contain_text(
        "hidream-e1-1"
    )

    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    docs.screenshot(path=str(DOCS_SCREENSHOT), full_page=False)
    assert console.problems() == []  # Swagger UI runs whole under the page's policy
    context.close()


def test_given_markup_injected_into_the_playground_then_its_script_does_not_run(
    browser: Browser, stack: LocalStack
) -> None:
    """Issue 15: the playground, where users paste their key, had no Content-Security-Policy:
    markup that got into it could run script and read the key."""
    context = browser.new_context()
    playground = context.new_page()
    console = Console(playground)
    playground.goto(f"{stack.base_url}/playground")

    playground.evaluate(
        """() => {
            document.getElementById("status").innerHTML = '<img src="data:," onerror="window.ran = 1">';
            const script = document.createElement("script");
            script.textContent = "window.ran = 2";
            document.body.append(script);
        }"""
    )

    expect(playground.locator("#status img")).to_have_count(1)
    playground.wait_for_function("window.cspViolations.length >= 2 || window.ran !== undefined")
    assert playground.evaluate("window.ran") is None
    assert all("script-src" in violation for violation in console.problems()[-2:])
    context.close()


def test_given_another_page_framing_the_playground_then_the_browser_refuses_to_show_it(
    browser: Browser, stack: LocalStack
) -> None:
    """Issue 15: the playground could be framed by any site (clickjacking where a key is typed)."""
    context = browser.new_context()
    framing = context.new_page()
    framing.goto(f"{stack.base_url}/v1/models")  # any document of another page than the playground
    framing.evaluate(
        """(url) => new Promise((loaded) => {
            const frame = document.createElement("iframe");
            frame.onload = loaded;
            frame.src = url;
            document.body.append(frame);
        })""",
        f"{stack.base_url}/playground",
    )

    framed = framing.frames[1]
    assert framed.query_selector("#key") is None  # the playground's key field never appears
    context.close()
