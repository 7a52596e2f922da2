"""The page's static files: ``/`` is ``index.html``; ``/static/PATH`` and ``/PATH`` are
``web/PATH``. Nothing outside the web directory is served, whatever the path says."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from grandtour.server.guard import GuardedRoute, not_found

#: The page shipped with the package.
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
#: Media types by suffix; ES modules must be served with a JavaScript type.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".png": "image/png",
    ".svg": "image/svg+xml", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm", ".woff2": "font/woff2",
}

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def web_file(root: Path, rel: str) -> Path | None:
    """The file ``root/rel`` if ``rel`` is a plain relative path to a file inside ``root``.

    Refused: empty, absolute, ``.``/``..``/hidden segments, backslashes, NUL, drive
    letters, and anything that resolves (through symbolic links) outside ``root``.
    """
    if not rel or len(rel) > 1024 or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(not _SEGMENT.match(p) for p in parts):
        return None
    try:
        candidate = root.joinpath(*parts).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
    except (OSError, ValueError):
        return None
    return candidate


def media_type(path: Path) -> str:
    return (MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream")


def static_routes(web_root: Path) -> APIRouter:
    """The routes of the page under ``web_root``; registered last, they catch every path."""
    router = APIRouter(route_class=GuardedRoute)

    def static_file(rel: str) -> Response:
        path = web_file(web_root, rel)
        if path is None:
            raise not_found("not found")
        return Response(content=path.read_bytes(), media_type=media_type(path),
                        headers={"Cache-Control": "no-cache"})

    @router.get("/")
    def index():
        if web_file(web_root, "index.html") is None:
            raise not_found("the viewer page (grandtour/web/index.html) is not installed; "
                            "the API is at /api/runs")
        return static_file("index.html")

    @router.get("/static/{rel:path}")
    def static(rel: str):
        return static_file(rel)

    @router.get("/{rel:path}")
    def web(rel: str):
        if rel == "api" or rel.startswith("api/"):
            raise not_found("no such API endpoint; see /api/runs")
        return static_file(rel)

    return router
