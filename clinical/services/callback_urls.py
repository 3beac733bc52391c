"""Callback URL validation: RadViewer must not become a way to reach the hospital's insides.

A webhook makes the server send a request to a URL a client chose. In production
(``settings.PROFILE == "production"``) a URL whose host resolves to a loopback, private,
link-local (incl. cloud metadata 169.254.169.254), shared, reserved or multicast address is
refused unless the client has ``allow_private_callbacks`` (a RIS on the hospital LAN). The
embedded profile runs on one laptop inside that LAN, so private addresses are allowed there.
The check runs at submission *and* before every delivery attempt (DNS may change in
between); deliveries never follow redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 500
Resolver = Callable[[str], list[str]]


class CallbackUrlError(ValueError):
    """The callback URL is refused; ``str(exc)`` says why, for the 400 response."""


def resolve_host(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackUrlError(f"the host {host!r} does not resolve ({exc})") from None
    return sorted({info[4][0] for info in infos})


def _host_allowed(host: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def _address_refusal(address: str, *, allow_private: bool) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is a multicast or unspecified address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def callback_url_validate(url: str, *, client: Any, resolver: Resolver | None = None) -> str:
    """Return ``url`` if a webhook may be sent there for ``client``; else raise CallbackUrlError."""
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"the callback URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlError(f"the callback URL is malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError(f"the callback URL scheme must be https or http, not {parts.scheme or '(none)'!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise CallbackUrlError("the callback URL has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlError("the callback URL must not carry credentials (user:password@)")
    if parts.fragment:
        raise CallbackUrlError("the callback URL must not have a #fragment")
    if port == 0:
        raise CallbackUrlError("the callback URL has port 0")
    allowed_hosts = list(getattr(client, "allowed_callback_hosts", None) or [])
    if allowed_hosts and not _host_allowed(host, allowed_hosts):
        raise CallbackUrlError(
            f"the host {host!r} is not among this client's allowed callback hosts: {', '.join(allowed_hosts)}"
        )
    production = getattr(settings, "PROFILE", "embedded") == "production"
    allow_private = bool(getattr(client, "allow_private_callbacks", False)) or not production
    try:
        addresses = [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        if not production:
            return url  # embedded: no DNS needed to trust the LAN
        addresses = (resolver or resolve_host)(host)
    for address in addresses:
        refusal = _address_refusal(address, allow_private=allow_private)
        if refusal:
            hint = "" if allow_private else " (an operator can allow private callbacks for this client)"
            raise CallbackUrlError(f"callbacks to {host} are refused: {refusal}{hint}")
    return url
