"""uvicorn's httptools protocol with deadlines for the request head and the request body.

uvicorn times out idle keep-alive connections but not a request whose headers or body never
finish: a client that trickles bytes holds a connection (a file descriptor) for as long as it
likes, and a few thousand such clients starve everyone, /healthz included. Here every request
head (request line and headers) must arrive within `OPTIM_HEADER_TIMEOUT_S` of its first byte
(or of the connection's opening), and its body within `OPTIM_BODY_TIMEOUT_S` of the end of the
head, or the connection is closed.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import get_settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    _head_timer: TimerHandle | None = None
    _body_timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._expects_body():
            self._body_timer = self.loop.call_later(get_settings().body_timeout_s,
                                                    self._too_slow)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(get_settings().header_timeout_s,
                                                self._too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()
