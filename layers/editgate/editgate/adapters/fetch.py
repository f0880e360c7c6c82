"""Fetching an input image a client named by URL, safely: http(s) only, every address the host
resolves to must be public (checked again on each redirect), the connection goes to the address
that was checked (no DNS rebinding), and the body is cut off at a size limit."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from editgate.domain.errors import InvalidRequest
from editgate.domain.images import decode_data_uri

Resolver = Callable[[str, int], list[str]]
AddressPolicy = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]
_MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


def resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# SIIT's IPv4-translated addresses (RFC 2765, ::ffff:0:a.b.c.d): they reach the IPv4 address.
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# Ranges the standard library calls global that no image server lives at: local-use NAT64
# (RFC 8215, which may embed an IPv4 address at several offsets), the deprecated site-local
# fec0::/10 (still routed inside some networks), ORCHIDv2 (RFC 7343: identifiers, not locators)
# and the 6to4 relay anycast (RFC 7526: relays into whatever network is nearest).
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(network)
    for network in ("64:ff9b:1::/48", "fec0::/10", "2001:20::/28", "192.88.99.0/24")
)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local (cloud metadata), shared or reserved.
    An IPv6 address that carries an IPv4 one (mapped, translated, compatible, NAT64, 6to4, Teredo) is judged
    by the IPv4 address it reaches."""
    if any(address in network for network in _NEVER_PUBLIC):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    value = int(address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    # NAT64, IPv4-translated, IPv4-compatible ::a.b.c.d
    if address in _NAT64 or address in _IPV4_TRANSLATED or (value >> 32 == 0 and value > 1):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


class TargetRefused(ValueError):
    """A URL the gateway will not connect to, and why."""


@dataclass(frozen=True)
class Target:
    """A URL whose host resolved only to allowed addresses: connect to ``address`` (the one that
    was checked: no DNS rebinding), naming ``host``."""

    scheme: str
    host: str
    port: int
    address: str
    path: str
    explicit_port: bool

    def pool(self, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
        if self.scheme == "https":
            return urllib3.HTTPSConnectionPool(
                self.address, self.port, server_hostname=self.host, assert_hostname=self.host,
                cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), timeout=timeout, retries=False,
            )  # fmt: skip
        return urllib3.HTTPConnectionPool(self.address, self.port, timeout=timeout, retries=False)

    def headers(self) -> dict[str, str]:
        # The Host header names the host alone: never the URL's userinfo.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {"Host": f"{host}:{self.port}" if self.explicit_port else host, "User-Agent": "editgate"}


def checked_target(url: str, resolver: Resolver = resolve, allowed: AddressPolicy = is_public) -> Target:
    """Where an http(s) URL leads, if every address its host resolves to is ``allowed``; else
    ``TargetRefused`` saying why."""
    try:  # a bad port, an unclosed IPv6 bracket, a DNS label over 63 characters: ValueErrors
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        if parts.scheme not in ("http", "https") or not host:
            raise TargetRefused("only http(s) URLs and data: URIs are accepted")
        addresses = resolver(host, port)
    except TargetRefused:
        raise
    except (OSError, ValueError):
        raise TargetRefused("the URL's host or port is not valid or could not be resolved") from None
    if not addresses or not all(allowed(ipaddress.ip_address(a)) for a in addresses):
        raise TargetRefused(f"the host '{host[:253]}' is not a public address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, addresses[0], path, parts.port is not None)


def allowing(networks: Sequence[str]) -> AddressPolicy:
    """Public addresses and those of ``networks`` (a local stack's loopback receiver)."""
    extra = [ipaddress.ip_network(network) for network in networks]
    return lambda address: is_public(address) or any(address in network for network in extra)


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
            with self._open(url, deadline) as response:
                location = response.headers.get("location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    raise self._refuse(f"fetching the image answered HTTP {response.status}")
                return self._read(response, deadline)
        raise self._refuse(f"more than {_MAX_REDIRECTS} redirects")

    @contextmanager
    def _open(self, url: str, deadline: float) -> Iterator[urllib3.BaseHTTPResponse]:
        """One hop: the checked address, asked for ``url``'s path; the pool is closed after."""
        try:
            target = checked_target(url, self._resolve, self._allowed)
        except TargetRefused as exc:
            raise self._refuse(str(exc)) from None
        timeout = urllib3.Timeout(connect=min(5.0, self._remaining(deadline)), read=self._remaining(deadline))
        with target.pool(timeout) as pool:
            try:
                response = pool.urlopen(
                    "GET", target.path, headers=target.headers(), redirect=False, preload_content=False
                )
            except urllib3.exceptions.HTTPError as exc:
                raise self._refuse(f"the image could not be fetched ({type(exc).__name__})") from None
            try:
                yield response
            finally:
                response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        """The body within the size limit and one total time budget: each read waits only for
        what is left of it, so a server that drips bytes cannot stretch the deadline."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise self._too_large()
        data = bytearray()
        while True:
            remaining = self._remaining(deadline)
            socket_ = getattr(response.connection, "sock", None)
            if socket_ is not None:
                socket_.settimeout(remaining)
            try:
                chunk = response.read1(_CHUNK)
            except (urllib3.exceptions.HTTPError, OSError):
                raise self._refuse("the image could not be fetched in time or was cut off") from None
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > self._max_bytes:
                raise self._too_large()

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._refuse("the image could not be fetched in time")
        return remaining

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
