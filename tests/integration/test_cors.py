"""Issue 18: a browser app on another origin could not call the API (no CORS: the preflight was a
401). Checked in Chromium: a page served on another port fetch()es the API with a key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from editgate_local.front import ApiFront, load_handler
from editgate_local.stack import EDIT_API, LocalStack
from tests.conftest import API_KEY
from tests.integration.test_pages import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

# The other origin's page: it calls the API as a browser app would, and keeps what it could read.
APP_PAGE = b"""<!doctype html><title>app</title><script>
window.call = async (api, key) => {
  try {
    const response = await fetch(`${api}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
    const body = await response.json();
    const requestId = response.headers.get("x-request-id");
    return { status: response.status, requestId, models: body.data.length };
  } catch (error) { return { error: String(error) }; }
};
</script>"""


@pytest.fixture(scope="module")
def app_origin() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(APP_PAGE)))
            self.end_headers()
            self.wfile.write(APP_PAGE)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call_from(origin: str, api: str) -> dict[str, Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{origin}/app.html")
        answer: dict[str, Any] = page.evaluate("([api, key]) => window.call(api, key)", [api, API_KEY])
        browser.close()
    return answer


def test_given_cors_allow_origins_then_a_page_of_that_origin_calls_the_api_and_reads_the_request_id(
    stack: LocalStack, app_origin: str
) -> None:
    handler = load_handler(EDIT_API, environment=93, env={"CORS_ALLOW_ORIGINS": app_origin})
    front = ApiFront([handler], gate=stack.gate()).start()
    try:
        answer = call_from(app_origin, front.url)
    finally:
        front.stop()

    assert answer.get("status") == 200, answer
    assert answer["models"] == 3
    assert answer["requestId"]  # exposed to the page


def test_given_no_cors_setting_then_the_browser_refuses_the_page_the_answer(
    stack: LocalStack, app_origin: str
) -> None:
    answer = call_from(app_origin, stack.base_url)

    assert "Failed to fetch" in answer.get("error", ""), answer
