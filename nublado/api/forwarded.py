"""Trusting the ingress's ``X-Forwarded-*`` headers the way upstream's Safir middleware did.

The controller sits behind one ingress-nginx hop. What it may learn from the
headers that hop adds (api.md 1.3):

* ``X-Forwarded-For``: only when there is exactly one such header; its
  rightmost parseable address becomes the request's client. Entries that are
  not IP addresses are skipped (upstream failed with a 500 on them).
* ``X-Forwarded-Proto``: replaces the scheme (and so the scheme of the
  absolute ``Location`` of create) only if ``X-Forwarded-For`` gave a client
  and there is exactly one ``X-Forwarded-Proto`` header; of a comma list the
  rightmost entry, the one the nearest proxy added.
* ``X-Forwarded-Host``: recorded as ``request.state.forwarded_host`` for
  logging only; URLs are always built from ``Host``.
"""

from __future__ import annotations

from ipaddress import ip_address

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["XForwardedMiddleware"]


def _single(headers: Headers, name: str) -> str | None:
    """The header's value when it appears exactly once; repeated, none can be trusted."""
    values = headers.getlist(name)
    return values[0] if len(values) == 1 else None


def _client_address(forwarded_for: str) -> str | None:
    """The rightmost entry of ``X-Forwarded-For`` that is an IP address."""
    for entry in reversed(forwarded_for.split(",")):
        try:
            return str(ip_address(entry.strip()))
        except ValueError:
            continue
    return None


class XForwardedMiddleware:
    """ASGI middleware applying the ingress's forwarding headers to HTTP requests."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope = dict(scope)
        state = dict(scope.get("state") or {})
        state["forwarded_host"] = None
        scope["state"] = state
        headers = Headers(scope=scope)
        forwarded_for = _single(headers, "x-forwarded-for")
        client = _client_address(forwarded_for) if forwarded_for is not None else None
        if client is not None:
            port = scope["client"][1] if scope.get("client") else 0
            scope["client"] = (client, port)
            proto = _single(headers, "x-forwarded-proto")
            if proto is not None:
                scheme = proto.split(",")[-1].strip().lower()
                if scheme in ("http", "https"):  # nothing else may reach a Location header
                    scope["scheme"] = scheme
            host = _single(headers, "x-forwarded-host")
            state["forwarded_host"] = host.strip() if host is not None else None
        await self._app(scope, receive, send)
