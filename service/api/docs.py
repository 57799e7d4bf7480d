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


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )


@router.get(OAUTH2_REDIRECT_URL, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
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
