"""Fetching input images by URL: only public addresses, checked on every hop, with a size limit."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from editgate.adapters.fetch import ImageFetcher, is_public
from editgate.domain.errors import InvalidRequest
from editgate_local.background_server import BackgroundServer
from tests.conftest import png_bytes

PNG = png_bytes((32, 32))


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/image.png":
            self._send(200, PNG, {"content-length": str(len(PNG))})
        elif self.path.startswith("/redirect?to="):
            self._send(302, b"", {"location": self.path.split("=", 1)[1], "content-length": "0"})
        elif self.path == "/host":
            host = self.headers.get("host", "").encode()
            self._send(200, host, {"content-length": str(len(host))})
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("content-length", "15")
            self.end_headers()
            for _ in range(15):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)  # the slow server under test, not a wait for readiness
        elif self.path == "/large":
            self._send(200, b"x" * 5000, {"content-length": "5000"})
        elif self.path == "/large-unsized":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
        else:
            self._send(404, b"", {"content-length": "0"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server = BackgroundServer(_Handler, host="127.0.0.1", port=0, name="origin")
    server.start()
    yield int(server.url.rsplit(":", 1)[1])
    server.stop()


def fetcher(max_bytes: int = 1_000_000) -> ImageFetcher:
    """Names resolve as a small DNS would; the test's own loopback server stands for the public
    host cdn.example, every other address keeps the production policy."""
    names = {
        "cdn.example": ["127.0.0.1"],
        "intranet.example": ["10.1.2.3"],
        "mixed.example": ["8.8.8.8", "10.0.0.1"],
    }

    def allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return str(address) == "127.0.0.1" or is_public(address)

    return ImageFetcher(
        max_bytes=max_bytes, resolver=lambda host, port: names.get(host, [host]), allowed=allowed
    )


def deadline() -> float:
    return time.monotonic() + 5


def test_given_a_public_host_then_the_image_is_fetched(origin: int) -> None:
    assert fetcher().fetch(f"http://cdn.example:{origin}/image.png", deadline()) == PNG


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x.png", "http://localhost/x.png", "http://169.254.169.254/latest/meta-data/",
     "http://intranet.example/x.png", "http://mixed.example/x.png", "http://[::1]/x.png",
     "http://[::ffff:10.0.0.1]/x.png", "http://100.64.0.1/x.png"],
)  # fmt: skip
def test_given_a_private_loopback_or_link_local_address_then_it_is_refused(url: str) -> None:
    production = ImageFetcher(
        max_bytes=1000, resolver=lambda host, port: {"localhost": ["127.0.0.1"]}.get(host, [])
    )
    names = fetcher() if "example" in url else production
    with pytest.raises(InvalidRequest) as caught:
        names.fetch(url, deadline())
    assert caught.value.code == "invalid_image_url"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://cdn.example/x.png", "gopher://x", "//cdn.example/x"]
)
def test_given_a_scheme_other_than_http_then_it_is_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match="only http"):
        fetcher().fetch(url, deadline())


def test_given_a_redirect_to_a_private_address_then_it_is_refused(origin: int) -> None:
    with pytest.raises(InvalidRequest, match="not a public address"):
        fetcher().fetch(f"http://cdn.example:{origin}/redirect?to=http://intranet.example/x.png", deadline())


def test_given_a_redirect_to_a_public_address_then_it_is_followed(origin: int) -> None:
    target = f"http://cdn.example:{origin}/image.png"
    assert fetcher().fetch(f"http://cdn.example:{origin}/redirect?to={target}", deadline()) == PNG


@pytest.mark.parametrize("path", ["/large", "/large-unsized"])
def test_given_a_body_over_the_limit_then_it_is_refused(origin: int, path: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        fetcher(max_bytes=1000).fetch(f"http://cdn.example:{origin}{path}", deadline())
    assert caught.value.code == "image_too_large"


def test_given_a_server_that_drips_bytes_then_the_total_deadline_still_ends_the_fetch(origin: int) -> None:
    # Each byte arrives well within any per-read timeout; only a total budget stops it.
    with pytest.raises(InvalidRequest, match="in time"):
        fetcher().fetch(f"http://cdn.example:{origin}/drip", time.monotonic() + 1)


def test_given_userinfo_in_the_url_then_the_host_header_names_the_host_alone(origin: int) -> None:
    assert fetcher().fetch(f"http://user:secret@cdn.example:{origin}/host", deadline()) == (
        f"cdn.example:{origin}".encode()
    )


@pytest.mark.parametrize(
    "address",
    ["::127.0.0.1", "::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::808:808",
     "2002:7f00:1::", "2002:a00:1::1", "::ffff:10.0.0.1"],
)  # fmt: skip
def test_given_an_ipv6_address_that_embeds_a_private_ipv4_then_it_is_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_given_an_ipv4_translated_address_of_loopback_then_it_is_judged_by_that_ipv4_and_refused() -> None:
    """Issue 15: ``::ffff:0:127.0.0.1`` (SIIT's IPv4-translated form) was taken for public."""
    assert not is_public(ipaddress.ip_address("::ffff:0:127.0.0.1"))
    assert not is_public(ipaddress.ip_address("::ffff:0:a9fe:a9fe"))  # 169.254.169.254
    assert is_public(ipaddress.ip_address("::ffff:0:8.8.8.8"))


def test_given_a_site_local_ipv6_address_then_it_is_not_public() -> None:
    """Issue 15: ``fec0::1`` (site-local, deprecated but still routed inside networks)."""
    assert not is_public(ipaddress.ip_address("fec0::1"))
    assert not is_public(ipaddress.ip_address("feff:ffff::1"))


def test_given_an_orchidv2_address_then_it_is_not_public() -> None:
    """Issue 15: ``2001:20::1`` (ORCHIDv2, 2001:20::/28: identifiers, not locators)."""
    assert not is_public(ipaddress.ip_address("2001:20::1"))
    assert not is_public(ipaddress.ip_address("2001:2f:ffff::1"))


def test_given_the_6to4_relay_anycast_address_then_it_is_not_public() -> None:
    """Issue 15: ``192.88.99.1`` (6to4 relay anycast), also when a 6to4 address embeds it."""
    assert not is_public(ipaddress.ip_address("192.88.99.1"))
    assert not is_public(ipaddress.ip_address("2002:c058:6301::1"))


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111", "8.8.8.8"])
def test_given_a_public_address_however_written_then_it_is_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["http://example.com:99999/x.png", "http://h:abc/x.png", "http://[::1/x.png",
     f"http://{'a' * 64}.example.com/x.png", "http://[::127.0.0.1]/x.png"],
)  # fmt: skip
def test_given_a_url_with_a_bad_port_host_or_label_then_it_is_refused_as_a_bad_url(url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ImageFetcher(max_bytes=1000).fetch(url, deadline())
    assert caught.value.code == "invalid_image_url"


def test_given_a_data_uri_over_the_limit_then_it_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        fetcher(max_bytes=10).fetch("data:image/png;base64," + "A" * 100, deadline())
