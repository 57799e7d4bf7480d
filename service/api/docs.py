"""The API's documentation pages, served offline: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (a blank page without internet). Here
the assets come from the ``fastapi-offline`` package, which ships them (``swagger-ui-bundle.js``,
``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png`` in its ``static/`` folder): they
are mounted at ``STATIC_URL`` and the pages point there, so nothing is fetched from elsewhere
(ReDoc without Google Fonts).

With API keys on, the OpenAPI document declares the Bearer scheme for every ``/v1`` operation
(``declare_bearer``), so Swagger UI shows an Authorize button and sends the key.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL: Final = "/static/docs"
OAUTH2_REDIRECT_URL: Final = "/docs/oauth2-redirect"
BEARER: Final = "bearerAuth"

router = APIRouter(include_in_schema=False)


def assets_directory() -> str:
    """The folder of the packaged Swagger UI and ReDoc files."""
    return str(files("fastapi_offline") / "static")


class _PageUrls:
    """What a documentation page links to, under the app's root path."""

    def __init__(self, request: Request) -> None:
        self.root = str(request.scope.get("root_path", "")).rstrip("/")
        self.openapi = f"{self.root}{request.app.openapi_url}"

    def asset(self, name: str) -> str:
        return f"{self.root}{STATIC_URL}/{name}"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    urls = _PageUrls(request)
    return get_swagger_ui_html(
        openapi_url=urls.openapi, title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{urls.root}{OAUTH2_REDIRECT_URL}",
        swagger_js_url=urls.asset("swagger-ui-bundle.js"),
        swagger_css_url=urls.asset("swagger-ui.css"),
        swagger_favicon_url=urls.asset("favicon.png"),
        swagger_ui_parameters={"persistAuthorization": True},
    )


@router.get(OAUTH2_REDIRECT_URL, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    urls = _PageUrls(request)
    return get_redoc_html(
        openapi_url=urls.openapi, title=f"{request.app.title} - ReDoc",
        redoc_js_url=urls.asset("redoc.standalone.js"),
        redoc_favicon_url=urls.asset("favicon.png"), with_google_fonts=False,
    )


def install_docs(
    app: FastAPI, document: Callable[[], dict[str, Any]], *, bearer: bool
) -> None:
    """Serve the pages, their assets and the document they show: ``document`` becomes
    ``app.openapi``, declaring the Bearer scheme when ``bearer`` (auth on). Create the app
    with ``docs_url=None, redoc_url=None``, so that FastAPI's CDN pages are not there."""
    app.mount(STATIC_URL, StaticFiles(directory=assets_directory()), name="docs-assets")
    app.include_router(router)
    app.openapi = bearer_secured(document, bearer)  # type: ignore[method-assign]


def declare_bearer(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare API keys (``Authorization: Bearer``) on every ``/v1`` operation (in place;
    idempotent)."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "An API key of the server's TRAINABILITY_API_KEYS.",
    }
    for path, item in schema.get("paths", {}).items():
        if path.startswith("/v1/") or path == "/v1":
            for operation in item.values():
                if isinstance(operation, dict):
                    operation["security"] = [{BEARER: []}]
    return schema


def bearer_secured(
    openapi: Callable[[], dict[str, Any]], enabled: bool
) -> Callable[[], dict[str, Any]]:
    """Wrap an ``app.openapi`` generator: with ``enabled`` (auth on), ``declare_bearer``."""
    if not enabled:
        return openapi

    def generate() -> dict[str, Any]:
        return declare_bearer(openapi())

    return generate
