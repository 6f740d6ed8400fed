"""``/docs`` (Swagger UI) and ``/redoc`` served from local assets, never from a CDN.

FastAPI's default pages load Swagger UI and ReDoc from jsDelivr, so they are blank
offline or on an intranet (政务内网). This follows FastAPI's recipe "self-hosting
JavaScript and CSS for docs": the pages are made with ``get_swagger_ui_html`` /
``get_redoc_html`` pointing at ``/static/docs/…``, served from the files of the
``fastapi-offline`` package on PyPI (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc;
only its static files are used). Without that package the CDN pages are served, with a
warning in the log.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

ASSETS_PACKAGE: Final = "fastapi_offline"
"""The PyPI package (``fastapi-offline``) whose ``static/`` folder holds the assets."""
STATIC_PATH: Final = "/static/docs"
"""Where the assets are served."""
ASSET_NAMES: Final = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")


def assets_dir() -> Path | None:
    """The folder of the Swagger UI and ReDoc files, ``None`` when not installed."""
    spec = importlib.util.find_spec(ASSETS_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    if not all((folder / name).is_file() for name in ASSET_NAMES):
        return None
    return folder


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` and ``/redoc`` to ``app`` (created with ``docs_url=None,
    redoc_url=None``), with their assets under :data:`STATIC_PATH`."""
    folder = assets_dir()
    if folder is None:
        logger.warning(
            "%s is not installed: /docs and /redoc load their scripts from a CDN "
            "(blank without internet access)",
            ASSETS_PACKAGE,
        )
    else:
        app.mount(STATIC_PATH, StaticFiles(directory=folder), name="docs-assets")

    def asset(request: Request, name: str, cdn: str) -> str:
        if folder is None:
            return cdn
        # root_path: the page works behind a proxy that serves the app under a prefix.
        return f"{request.scope.get('root_path', '')}{STATIC_PATH}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — Swagger UI",
            swagger_js_url=asset(
                request,
                "swagger-ui-bundle.js",
                "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
            ),
            swagger_css_url=asset(
                request,
                "swagger-ui.css",
                "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
            ),
            swagger_favicon_url=asset(
                request, "favicon.png", "https://fastapi.tiangolo.com/img/favicon.png"
            ),
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=asset(
                request,
                "redoc.standalone.js",
                "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
            ),
            redoc_favicon_url=asset(
                request, "favicon.png", "https://fastapi.tiangolo.com/img/favicon.png"
            ),
            with_google_fonts=False,
        )
