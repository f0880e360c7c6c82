"""The gateway's pages in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the local stack. The playground: a key, the bundled sample, a dry run, an
edit, errors. Swagger UI: the document rendered, a request tried from it."""

from __future__ import annotations

import ast
import base64
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from editgate.domain.images import ACCEPTED_INPUT_FORMATS
from editgate_local.fal_emulator import FalEmulator
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import REPO_ROOT, LocalStack
from tests.conftest import API_KEY, open_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = REPO_ROOT / "out" / "playground.png"
# Playwright's phone emulation (an iPhone 13's screen, touch, mobile viewport) and a desktop.
SIZES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
              "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}  # fmt: skip
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

    def __init__(self, page: Page, *, failed_loads: bool = False) -> None:
        """``failed_loads``: a resource the page asked for and was refused is an error too."""
        self.page = page
        self.failed_loads = failed_loads
        self.errors: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or (
            message.type == "error"
            and (self.failed_loads or not text.startswith("Failed to load resource: the server responded"))
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
    page.click("#advanced summary")
    expect(page.locator("#param-cfg_scale")).to_be_visible()  # the model's own parameters, from /v1/models
    page.set_input_files("#file", str(SAMPLE_IMAGE))
    page.fill("#prompt", "turn it into a snowy winter evening")
    page.fill("#param-seed", "7")

    page.click("#preview")
    expect(page.locator("#dry-run-cost")).to_contain_text("Would cost $0.06 for 1 image(s) of 768x512")
    expect(page.locator("#dry-run-body")).to_contain_text('"seed": 7')
    assert emulator.request_ids == []  # nothing paid for a preview

    page.select_option("#response_format", "url")
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
    page.click("#advanced summary")
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

    expect(docs.locator(".opblock-summary-path[data-path='/v1/images/edits']")).to_be_visible()
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


# --- Issue 18: the playground on a phone and for iterating ------------------------------------

EDIT_POSTS = "/v1/images/edits"


def open_playground(browser: Browser, stack: LocalStack, size: str) -> tuple[Page, Console]:
    context = browser.new_context(**SIZES[size])  # type: ignore[arg-type]
    opened = context.new_page()
    console = Console(opened)
    opened.goto(f"{stack.base_url}/")  # the API's address leads to the playground
    expect(opened).to_have_url(f"{stack.base_url}/playground")
    return opened, console


def ready_to_edit(page: Page, prompt: str = "turn it into a snowy winter evening") -> None:
    use_key(page)
    expect(page.locator("#model option")).to_have_count(3)
    page.set_input_files("#file", str(SAMPLE_IMAGE))
    page.fill("#prompt", prompt)


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the screen (0: nothing to scroll sideways)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def edit_posts(page: Page) -> list[str]:
    """The bodies of the edits (not dry runs) the page sends, as it sends them."""
    posted: list[str] = []
    page.on(
        "request",
        lambda request: (
            posted.append((request.post_data_buffer or b"").decode("latin-1"))
            if request.method == "POST" and request.url.endswith(EDIT_POSTS)
            else None
        ),
    )
    return posted


@pytest.mark.parametrize("size", list(SIZES))
def test_given_a_phone_or_a_desktop_then_an_edit_never_widens_the_page_and_its_outcome_is_by_the_button(
    browser: Browser, stack: LocalStack, size: str
) -> None:
    """Issue 18: at 390x844 the page widened to 591 px after a dry run and the Edit button could
    not be tapped; the status was at the top of the other column; the old dry run stayed."""
    page, console = open_playground(browser, stack, size)
    ready_to_edit(page, f"a {size} edit in the snow")
    expect(page.locator("#advanced")).not_to_have_attribute("open", "")  # advanced settings collapsed
    page.click("#advanced summary")
    page.fill("#n", "2")
    page.click("#code summary")
    assert overflow(page) == 0

    page.click("#preview")
    expect(page.locator("#dry-run-cost")).to_contain_text("for 2 image(s)")
    assert overflow(page) == 0
    edit = page.locator("#edit")
    if size == "phone":
        edit.tap()  # fails if another element covers the button
    else:
        edit.click()

    expect(page.locator(".result img.after")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('.result img.after')].every((i) => i.naturalWidth > 0)"
    )
    status = page.locator("#status")
    expect(status).to_contain_text("Done in")
    gap = page.evaluate(
        """() => document.getElementById("status").getBoundingClientRect().top
            - document.getElementById("edit").getBoundingClientRect().bottom"""
    )
    assert 0 <= gap < 40  # right under the Edit button
    expect(page.locator("#dry-run")).to_be_hidden()  # the dry run was of the form before the edit
    expect(page.locator('[data-fact="request id"]')).to_have_count(1)  # once for the edit, not per card
    expect(page.locator('[data-fact="timings"]')).to_have_count(1)
    assert overflow(page) == 0
    out = REPO_ROOT / "out" / f"playground-{size}.png"
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    if size == "phone":
        page.set_viewport_size({"width": 360, "height": 740})  # the narrowest phone it is made for
        assert overflow(page) == 0
    assert console.problems() == []
    page.context.close()


def test_given_a_slow_edit_when_edit_is_clicked_again_then_no_second_request_is_sent(
    browser: Browser, stack: LocalStack, emulator: FalEmulator
) -> None:
    """Issue 18: Edit clicked twice while fal was slow sent two POSTs; the second's 409 showed as
    an error while the first still ran, and stayed after the result."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "a slow edit")
    posted = edit_posts(page)
    emulator.latency = 1.5
    try:
        page.click("#edit")
        expect(page.locator("#edit")).to_be_disabled()
        expect(page.locator("#status")).to_contain_text("Editing 1 image at fal")
        page.click("#edit", force=True)  # a second click while it runs
        page.evaluate("document.getElementById('edit').onclick()")  # even past the disabled button

        expect(page.locator(".result img.after")).to_have_count(1)
    finally:
        emulator.latency = 0.0
    expect(page.locator("#edit")).to_be_enabled()
    expect(page.locator("#error")).to_be_hidden()
    assert len(posted) == 1
    assert console.problems() == []
    page.context.close()


def test_given_a_result_when_new_variation_then_a_new_seed_is_sent_and_new_images_are_made(
    browser: Browser, stack: LocalStack, emulator: FalEmulator
) -> None:
    """Issue 18: clicking Edit again for another variation returned the same images (replayed:
    the 2-minute fingerprint of an identical request)."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "variations of a winter evening")
    posted = edit_posts(page)
    page.click("#edit")
    expect(page.locator(".result img.after")).to_have_count(1)
    first_seed = int(page.locator('[data-fact="seed"]').inner_text())
    page.click("#edit")  # the same request again: its answer is replayed, and the page says so
    expect(page.locator("#replayed")).to_be_visible()
    assert len(emulator.request_ids) == 1

    page.click(".result button.new-variation")

    expect(page.locator("#replayed")).to_be_hidden()
    expect(page.locator('[data-fact="seed"]')).to_have_text(re.compile(r"^\d+$"))
    assert len(emulator.request_ids) == 2  # made anew at fal, not replayed
    shown_seed = int(page.locator('[data-fact="seed"]').inner_text())
    assert shown_seed != first_seed
    assert [payload.get("seed") for payload in emulator.payloads] == [first_seed, shown_seed]
    assert len(posted) == 3
    assert console.problems() == []
    page.context.close()


def test_given_a_result_when_edit_again_then_the_result_is_the_next_edits_input(
    browser: Browser, stack: LocalStack, emulator: FalEmulator
) -> None:
    """Issue 18: HiDream E1 is made for edits in steps; the page had no way to edit a result."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "first step: snow")
    posted = edit_posts(page)
    page.click("#edit")
    expect(page.locator(".result img.after")).to_have_count(1)

    page.click(".result button.edit-again")
    expect(page.locator("#input-preview")).to_have_attribute("alt", "edit-1.png")
    expect(page.locator("#prompt")).to_have_value("")
    page.fill("#prompt", "second step: night")
    page.click("#edit")

    expect(page.locator(".result img.before")).to_have_attribute("src", re.compile("^blob:"))
    expect(page.locator("#status")).to_contain_text("Done in")
    first, second = emulator.payloads
    assert second["prompt"] == "second step: night"
    assert second["image_url"] != first["image_url"]  # the first edit's result, not the sample
    assert len(posted) == 2
    assert console.problems() == []
    page.context.close()


def test_given_the_form_then_the_code_view_shows_calls_that_make_the_same_edit(
    browser: Browser, stack: LocalStack, emulator: FalEmulator, tmp_path: Path
) -> None:
    """Issue 18: the page showed no way to make its call from code. Each snippet is run as shown
    (the JavaScript one: below, under Node)."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "it's a snowy evening")  # a quote the shell must keep
    page.click("#advanced summary")
    page.fill("#param-seed", "11")
    snippets = code_snippets(page)
    assert console.problems() == []
    page.context.close()
    shutil.copy(SAMPLE_IMAGE, tmp_path / SAMPLE_IMAGE.name)
    env = {"PATH": os.environ["PATH"], "EDITGATE_API_KEY": API_KEY}

    curl = subprocess.run(
        ["sh", "-c", snippets["curl"]], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    python = subprocess.run(
        [sys.executable, "-c", snippets["python"]], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )

    assert json.loads(curl.stdout)["size"] == "768x512", curl.stderr
    assert python.returncode == 0, python.stderr
    assert python.stdout.strip()
    assert '"seed": 11' in snippets["python"]  # in extra_body: not a parameter the SDK knows
    assert len(emulator.request_ids) == 1  # one edit, answered once more as the same request


def test_given_the_page_then_it_has_an_icon_links_the_docs_and_picks_only_what_the_server_reads(
    page: Page, stack: LocalStack
) -> None:
    """Issue 18: the file picker offered GIF and AVIF, which the server refuses; no favicon, no
    link to the docs."""
    accepted = page.locator("#file").get_attribute("accept") or ""
    assert set(accepted.split(",")) == {f"image/{name.lower()}" for name in ACCEPTED_INPUT_FORMATS}
    assert (page.locator("link[rel=icon]").get_attribute("href") or "").startswith("data:image/svg+xml")

    page.click("#docs-link")  # without a key: the docs are public

    expect(page.locator(".opblock-summary-path[data-path='/v1/images/edits']")).to_be_visible()
    assert page.url == f"{stack.base_url}/docs"


# --- Issue 18, a newcomer's review: what the playground shows while and after it works ---------

# Whether something is shown whole inside the window (not below the fold): an element the
# selector matches, or (with a text) such an element of its own (no child elements) that says it.
ON_SCREEN = """([selector, text]) => [...document.querySelectorAll(selector)].some((element) => {
    if (text && (element.children.length || !element.textContent.includes(text))) return false;
    const box = element.getBoundingClientRect();
    return element.checkVisibility() && box.height > 0 && box.top >= 0 && box.bottom <= innerHeight
        && box.left >= 0 && box.right <= innerWidth;
})"""


def wait_on_screen(page: Page, selector: str, text: str = "") -> None:
    page.wait_for_function(ON_SCREEN, arg=[selector, text], polling="raf", timeout=10_000)


@pytest.mark.parametrize("size", list(SIZES))
def test_given_a_slow_edit_then_its_progress_is_on_screen_where_the_user_clicked(
    browser: Browser, stack: LocalStack, emulator: FalEmulator, size: str
) -> None:
    """Issue 18 (review): with an image chosen, Edit sat at the bottom of the window (1280x800:
    y 750-792; 390x844: 802-844) and the status and progress below the fold, the result column
    still saying "Results appear here.": for the whole wait only a greyed-out button changed."""
    page, console = open_playground(browser, stack, size)
    ready_to_edit(page, f"a slow {size} edit")
    emulator.latency = 2.5  # within the tests' 4 s request deadline
    try:
        if size == "phone":
            page.locator("#edit").tap()
        else:
            page.click("#edit")
        wait_on_screen(page, "progress")
        wait_on_screen(page, "body *", "Editing")
        expect(page.get_by_text("Results appear here.")).to_be_hidden()
        page.screenshot(path=str(REPO_ROOT / "out" / f"playground-{size}-editing.png"))

        expect(page.locator(".result img.after")).to_have_count(1)
    finally:
        emulator.latency = 0.0
    # The outcome is where the user looks too: the result's heading comes into view.
    wait_on_screen(page, "#outcome h2")
    page.screenshot(path=str(REPO_ROOT / "out" / f"playground-{size}-edited.png"))
    assert console.problems() == []
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_given_the_docs_page_on_a_phone_or_a_desktop_then_it_fits_the_screen_and_logs_no_error(
    browser: Browser, stack: LocalStack, size: str
) -> None:
    """Issue 18 (review): /docs had no viewport meta (a phone laid it out 980 px wide) and no
    favicon, so every load logged a console error (/favicon.ico answered 401)."""
    context = browser.new_context(**SIZES[size])  # type: ignore[arg-type]
    docs = context.new_page()
    console = Console(docs, failed_loads=True)
    refused: list[str] = []
    docs.on("response", lambda answer: refused.append(answer.url) if answer.status >= 400 else None)

    docs.goto(f"{stack.base_url}/docs")
    expect(docs.locator(".opblock-summary-path[data-path='/v1/images/edits']")).to_be_visible()
    docs.locator("#operations-default-createImageEdit .opblock-summary").click()
    expect(docs.locator(".opblock-body").first).to_be_visible()

    assert docs.evaluate("window.innerWidth") == SIZES[size]["viewport"]["width"]  # type: ignore[index]
    assert overflow(docs) == 0
    assert (docs.locator("link[rel=icon]").get_attribute("href") or "").startswith("data:image/svg+xml")
    docs.screenshot(path=str(REPO_ROOT / "out" / f"docs-{size}.png"))
    assert refused == []
    assert console.problems() == []
    context.close()


def code_snippets(page: Page) -> dict[str, str]:
    page.click("#code summary")
    snippets = {}
    for lang in ("curl", "python", "javascript"):
        page.click(f".tab[data-lang={lang}]")
        snippets[lang] = page.locator("#code-text").inner_text()
    return snippets


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_given_the_code_view_then_its_javascript_runs_as_shown_with_the_key_from_the_environment(
    browser: Browser, stack: LocalStack, emulator: FalEmulator, tmp_path: Path
) -> None:
    """Issue 18 (review): the JavaScript snippet used an ``apiKey`` (and a ``file``) it never
    declared."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "it's a snowy evening")
    script = code_snippets(page)["javascript"]
    assert console.problems() == []
    page.context.close()
    shutil.copy(SAMPLE_IMAGE, tmp_path / SAMPLE_IMAGE.name)
    (tmp_path / "edit.mjs").write_text(script)

    ran = subprocess.run(
        [shutil.which("node") or "node", "edit.mjs"], cwd=tmp_path, capture_output=True, timeout=60,
        env={"PATH": os.environ["PATH"], "EDITGATE_API_KEY": API_KEY},
    )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    assert b"768x512" in ran.stdout
    assert len(emulator.request_ids) == 1


def test_given_a_result_edited_again_then_the_code_names_its_file_as_the_download_saves_it(
    browser: Browser, stack: LocalStack, emulator: FalEmulator, tmp_path: Path
) -> None:
    """Issue 18 (review): after Edit again the curl and Python snippets sent ``edit-1.png``, a file
    nothing said where to find."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "first step: snow")
    page.click("#edit")
    expect(page.locator(".result img.after")).to_have_count(1)
    with page.expect_download() as downloading:
        page.click(".result a[download]")
    download = downloading.value
    download.save_as(tmp_path / download.suggested_filename)
    page.click(".result button.edit-again")
    page.fill("#prompt", "second step: night")
    snippets = code_snippets(page)
    assert console.problems() == []
    page.context.close()

    for lang in ("curl", "python", "javascript"):
        lines = snippets[lang].splitlines()
        note = next((line for line in lines if line.lstrip("#/ ").startswith("edit-")), "")
        assert download.suggested_filename in note, snippets[lang]
        assert "Download" in note, snippets[lang]
    curl = subprocess.run(
        ["sh", "-c", snippets["curl"]], cwd=tmp_path, capture_output=True, timeout=60,
        env={"PATH": os.environ["PATH"], "EDITGATE_API_KEY": API_KEY},
    )  # fmt: skip
    assert json.loads(curl.stdout)["size"] == "768x512", curl.stderr
    assert emulator.payloads[-1]["prompt"] == "second step: night"


def test_given_settings_left_as_they_are_then_the_python_call_sends_only_what_differs_as_the_sdk_names_it(
    browser: Browser, stack: LocalStack
) -> None:
    """Issue 18 (review): the Python snippet put default values (``fit``, ``output_format``) in
    ``extra_body``; the SDK's own parameters belong in its keyword arguments, only the rest in
    ``extra_body``."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "snow")
    page.click("#advanced summary")
    page.select_option("#output_format", "webp")
    page.fill("#param-seed", "11")
    python = code_snippets(page)["python"]
    assert console.problems() == []
    page.context.close()

    call = next(
        node for node in ast.walk(ast.parse(python))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "client.images.edit"
    )  # fmt: skip
    arguments = {keyword.arg: keyword.value for keyword in call.keywords}
    sdk_parameters = set(inspect.signature(openai.OpenAI(api_key="x").images.edit).parameters)
    assert set(arguments) <= sdk_parameters
    assert ast.literal_eval(arguments["output_format"]) == "webp"
    assert ast.literal_eval(arguments["response_format"]) == "b64_json"  # the page's choice, not the API's
    assert ast.literal_eval(arguments["extra_body"]) == {"seed": 11}
    assert "fit" not in python


def test_given_no_seed_then_the_result_shows_the_seed_the_images_were_made_with(
    browser: Browser, stack: LocalStack, emulator: FalEmulator
) -> None:
    """Issue 18 (review): the page said "seed: the model's choice" while fal used a specific seed."""
    page, console = open_playground(browser, stack, "desktop")
    ready_to_edit(page, "snow, any seed")

    page.click("#edit")

    expect(page.locator(".result img.after")).to_have_count(1)
    shown = page.locator('[data-fact="seed"]').inner_text()
    assert re.fullmatch(r"\d+", shown), shown
    assert int(shown) == emulator.payloads[0].get("seed")  # the seed fal made the image with
    assert console.problems() == []
    page.context.close()
