"""``OPTIONS`` and ``405`` answers that list every method a path has (RFC 9110 ``Allow``).

Starlette matches routes one by one: a path served by two routes (``GET`` and ``DELETE`` of
``/v1/experiments/{job_id}``) answered a method neither has with the ``Allow`` of the first
route only, and ``OPTIONS`` with that 405. This pure ASGI middleware collects the methods of
every route that matches the path:

- ``OPTIONS`` on a known path is a ``204`` with ``Allow`` (the methods, ``HEAD`` where ``GET``
  is, and ``OPTIONS``); on an unknown path the application answers its 404;
- a ``405`` from the application gets that same ``Allow``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The methods a route of this API may have (HEAD and OPTIONS follow from them).
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the request's path, plus ``OPTIONS``; [] if none.

    Asks each route (``BaseRoute.matches``, so included routers answer for their routes)
    whether it fully matches the path with each method.
    """
    found = {
        method for method in METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    }
    if not found:
        return []
    if "GET" in found:
        found.add("HEAD")
    return sorted(found | {"OPTIONS"})


class AllowedMethods:
    """See the module docstring; ``routes`` are the application's (read per request)."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allow = allowed_methods(self.routes, scope)
            if allow:
                await send({"type": "http.response.start", "status": 204,
                            "headers": [(b"allow", ", ".join(allow).encode())]})
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = allowed_methods(self.routes, scope)
                if allow:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                    headers.append((b"allow", ", ".join(allow).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_allow)
