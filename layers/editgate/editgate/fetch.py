"""Fetching an input image a client named by URL, safely: http(s) only, every address the host
resolves to must be public (checked again on each redirect), the connection goes to the address
that was checked (no DNS rebinding), and the body is cut off at a size limit."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from editgate.errors import InvalidRequest
from editgate.images import decode_data_uri

Resolver = Callable[[str, int], list[str]]
AddressPolicy = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]
_MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


def resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local (cloud metadata), shared or reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class ImageFetcher:
    def __init__(
        self,
        *,
        max_bytes: int,
        resolver: Resolver = resolve,
        allowed: AddressPolicy = is_public,
        param: str = "images",
    ) -> None:
        self._max_bytes = max_bytes
        self._resolve = resolver
        self._allowed = allowed
        self._param = param

    def fetch(self, url: str, deadline: float) -> bytes:
        """The bytes behind a ``data:`` URI or an http(s) URL. Raises InvalidRequest (400)."""
        if url.startswith("data:"):
            try:
                data = decode_data_uri(url)
            except ValueError:
                raise self._refuse("the data: URI could not be decoded") from None
            return self._within_limit(data)
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._get(url, deadline)
            location = response.headers.get("location")
            if response.status in (301, 302, 303, 307, 308) and location:
                response.release_conn()
                url = urljoin(url, location)
                continue
            if response.status != 200:
                response.release_conn()
                raise self._refuse(f"fetching the image answered HTTP {response.status}")
            return self._read(response)
        raise self._refuse(f"more than {_MAX_REDIRECTS} redirects")

    def _get(self, url: str, deadline: float) -> urllib3.BaseHTTPResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._refuse("only http(s) URLs and data: URIs are accepted")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self._resolve(parts.hostname, port)
        except OSError:
            raise self._refuse(f"the host '{parts.hostname}' could not be resolved") from None
        if not addresses or not all(self._allowed(ipaddress.ip_address(a)) for a in addresses):
            raise self._refuse(f"the host '{parts.hostname}' is not a public address")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._refuse("the image could not be fetched in time")
        timeout = urllib3.Timeout(connect=min(5.0, remaining), read=remaining)
        pool: urllib3.HTTPConnectionPool
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                addresses[0], port, server_hostname=parts.hostname, assert_hostname=parts.hostname,
                cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), timeout=timeout, retries=False,
            )  # fmt: skip
        else:
            pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False)
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        try:
            return pool.urlopen(
                "GET", target, headers={"Host": parts.netloc, "User-Agent": "editgate"},
                redirect=False, preload_content=False,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise self._refuse(f"the image could not be fetched ({type(exc).__name__})") from None

    def _read(self, response: urllib3.BaseHTTPResponse) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            response.release_conn()
            raise self._too_large()
        data = bytearray()
        for chunk in response.stream(_CHUNK):
            data += chunk
            if len(data) > self._max_bytes:
                response.release_conn()
                raise self._too_large()
        return bytes(data)

    def _within_limit(self, data: bytes) -> bytes:
        if len(data) > self._max_bytes:
            raise self._too_large()
        return data

    def _too_large(self) -> InvalidRequest:
        return InvalidRequest(
            f"Invalid value for '{self._param}': the image is larger than {self._max_bytes:,} bytes.",
            param=self._param,
            code="image_too_large",
        )

    def _refuse(self, reason: str) -> InvalidRequest:
        return InvalidRequest(
            f"Invalid value for '{self._param}': {reason}.", param=self._param, code="invalid_image_url"
        )
