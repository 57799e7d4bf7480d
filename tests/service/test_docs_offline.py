"""``/docs`` (Swagger UI) and ``/redoc`` work without internet: their assets are served by the
API from the ``fastapi-offline`` package, never a CDN; with API keys on, the OpenAPI document
declares the Bearer scheme (Swagger UI's Authorize button). Rendered in headless Chromium with
every host but this one unreachable (``tests/browser.py``); FastAPI's own CDN page is the
control that renders nothing there."""

from __future__ import annotations

import hashlib
import re
import threading

import pytest
import uvicorn
from fastapi import FastAPI

from service.api.docs import STATIC_URL
from tests.browser import assert_real_picture, dump_dom, keep_copy, screenshot
from tests.conftest import API_DB, LiveServer, free_port, make_settings, wait_for

KEY = "docs-key-5e1a"
ASSETS = {"swagger-ui-bundle.js": ("javascript", 500_000), "swagger-ui.css": ("css", 50_000),
          "redoc.standalone.js": ("javascript", 500_000), "favicon.png": ("image/png", 1_000)}


@pytest.fixture(scope="module")
def secured(redis_server):
    """The API with API keys on (the docs and the document need no Redis)."""
    settings = make_settings(redis_server, API_DB, auth_enabled=True, api_keys=[
        {"name": "docs", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}])
    with LiveServer(settings) as server:
        yield server


def referenced(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""", page)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_pages_load_only_local_assets(api, path):
    response = api.get(path)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    urls = [a or b for a, b in referenced(response.text)]
    assert urls and all(u.startswith((STATIC_URL + "/", "/openapi.json")) for u in urls), urls
    assert "cdn" not in response.text and "fonts.googleapis" not in response.text


@pytest.mark.parametrize(("name", "kind"), list(ASSETS.items()))
def test_the_assets_are_served_from_the_package(api, name, kind):
    media, size = kind
    response = api.get(f"{STATIC_URL}/{name}")
    assert response.status_code == 200
    assert media in response.headers["content-type"] and len(response.content) > size


def test_the_oauth2_redirect_page_is_there(api):
    assert api.get("/docs/oauth2-redirect").status_code == 200


def test_no_security_scheme_while_auth_is_off(api):
    doc = api.get("/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})
    assert all("security" not in op for item in doc["paths"].values() for op in item.values())


def test_with_auth_on_every_v1_operation_takes_the_bearer_key(secured):
    with secured.client() as http:
        doc = http.get("/openapi.json").json()
        assert http.get("/docs").status_code == 200  # the docs themselves stay open
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key of the server's TRAINABILITY_API_KEYS."}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            expected = [{"bearerAuth": []}] if path.startswith("/v1/") else None
            assert op.get("security") == expected, (method, path)


# --- in a real browser, offline ---------------------------------------------------------------

def operations(dom: str) -> set[str]:
    return set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))


def test_swagger_ui_renders_every_operation_offline(secured, tmp_path):
    dom = dump_dom(f"{secured.url}/docs", tmp_path, wait_ms=15_000)
    assert {"/v1/experiments", "/v1/experiments/{job_id}", "/v1/sweeps", "/v1/specs/validate",
            "/healthz"} <= operations(dom)
    assert re.search(r'<button class="btn authorize[^"]*"', dom), "no Authorize button"
    shot = screenshot(f"{secured.url}/docs", tmp_path / "docs.png", tmp_path, wait_ms=15_000)
    assert_real_picture(shot)
    keep_copy(shot, "docs.png")


def test_redoc_renders_offline(secured, tmp_path):
    dom = dump_dom(f"{secured.url}/redoc", tmp_path, wait_ms=15_000)
    assert "Submit a design to train and diagnose" in dom and "bearerAuth" in dom


@pytest.fixture(scope="module")
def cdn_docs():
    """A bare FastAPI app: its /docs loads Swagger UI from a CDN."""
    app = FastAPI()

    @app.get("/ping")  # type: ignore[untyped-decorator]
    def ping() -> dict[str, str]:
        return {}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 15, "uvicorn (CDN control)")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def test_control_a_cdn_page_renders_nothing_in_this_browser(cdn_docs, tmp_path):
    assert operations(dump_dom(f"{cdn_docs}/docs", tmp_path, wait_ms=5_000)) == set()
