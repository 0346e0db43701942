"""Security headers on every answer, and a Content-Security-Policy on the HTML pages.

Every answer: `X-Content-Type-Options: nosniff` (a JSON or CSV answer is never run as a
script), `Referrer-Policy: no-referrer` (a page's address, which may hold a shared
playground state, is not sent elsewhere). HTML pages (the playground, /docs, /redoc): a CSP
that lets scripts come only from this service: its own files, and the page's own inline
scripts by their SHA-256 (computed from the page as sent, so the policy follows the page).
Styles may be inline (the pages and Swagger UI set them); images may be data: or blob: URLs
(the playground's exports); nothing may frame the pages.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from service.middleware import ASGIApp, Message, Receive, Scope, Send

ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
MAX_PAGE = 4_000_000  # HTML pages larger than this are sent without reading them (none are)


def policy_for(page: bytes) -> bytes:
    """The page's policy (cached for the service's own pages, which are small; a plot's
    animation page is computed each time rather than kept)."""
    return _cached_policy(page) if len(page) <= CACHED_PAGE else _policy(page)


CACHED_PAGE = 200_000


@lru_cache(maxsize=32)
def _cached_policy(page: bytes) -> bytes:
    return _policy(page)


def _policy(page: bytes) -> bytes:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page))
    return ("default-src 'self'; script-src 'self' " + hashes + "; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data: blob:; worker-src 'self' blob:; "
            "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'; object-src 'none'").encode()


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def secured(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *ALWAYS]
                message["headers"] = headers
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    start = message  # held until the page is whole: its policy needs it
                    return
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False) and len(body) <= MAX_PAGE:
                    return
                start["headers"] = [*start["headers"],
                                    (b"content-security-policy", policy_for(bytes(body)))]
                await send(start)
                await send({"type": "http.response.body", "body": bytes(body),
                            "more_body": message.get("more_body", False)})
                start = None
                return
            await send(message)

        await self.app(scope, receive, secured)
