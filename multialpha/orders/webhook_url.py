"""Checks on a strategy's webhook URL before anything uses it.

The TradersPost webhook URL is a credential (its path and password are secrets): it is
registered for log redaction before anything can print it, and refused unless it travels
encrypted. Used by the live router (orders/router.py) and by ``multialpha orders retry``
(orders/commands.py); separate so the CLI need not import the router for two checks.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from multialpha import logs



def _register_url(url: str) -> None:
    """The URL carries a password: redact it, its path and each secret segment."""
    logs.register_secret(url)
    parts = urlsplit(url)
    logs.register_secret(parts.path)
    for seg in parts.path.split("/"):
        if len(seg) >= 4 and seg not in ("trading", "webhook", "webhooks"):
            logs.register_secret(seg)
    if parts.password:
        logs.register_secret(parts.password)


def _check_url(url: str, env_name: str) -> None:
    """The URL's password must never cross a network in clear text."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and loopback:
        return  # a local receiver (tests, benchmarks)
    raise ValueError(f"{env_name} must be an https:// URL (got scheme {parts.scheme or 'none'!r}, host {host!r})")
