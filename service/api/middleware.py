"""A request body size limit: ``413`` problem+json before a large body is read into memory.

Pure ASGI. A declared ``Content-Length`` above the limit is refused before the application
runs (nothing is read). A body without one (chunked transfer encoding) is counted while the
application reads it: once it passes the limit, reading stops with an error, whatever the
application answers to that is dropped, and the client gets the 413 instead.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"


class BodyTooLarge(Exception):
    """Raised into the application's ``receive`` when the streamed body passes the limit."""


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 problem+json."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, problem_type_base: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.problem_type = problem_type_base + "request-too-large"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, declared, f"Content-Length is {declared:,}")
            return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge(f"request body passed {self.max_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if too_large:
                return  # the application's answer to the aborted read; ours replaces it
            response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not response_started:
            await self._refuse(scope, send, received, f"more than {self.max_bytes:,} received")

    async def _refuse(self, scope: Scope, send: Send, value: int, what: str) -> None:
        body: dict[str, Any] = {
            "type": self.problem_type,
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body exceeds max_request_bytes ({self.max_bytes:,} bytes): "
            f"{what}",
            "instance": scope.get("path", ""),
            "limit": "max_request_bytes",
            "limit_value": self.max_bytes,
            "value": value,
        }
        payload = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
