"""The viewer's API answered in this process, without a socket: what the notebook widget
and the HTML export send the page.

:class:`LocalApi` runs the server's own ASGI application (:func:`grandtour.server.create_app`)
on a private event loop and hands back each response's status, contract headers and body:
the same bytes, built by the same functions (:mod:`grandtour.server.wire`), that
``grandtour serve`` sends, so the page's reader (``web/js/wire.js``) needs nothing new.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from grandtour.errors import GrandTourError

__all__ = ["LocalApi", "LocalResponse", "page_url"]

#: Characters ``encodeURIComponent`` leaves as they are (besides letters and digits): the
#: URLs built here are the ones the page builds (``datasource.js``), byte for byte.
_URI_COMPONENT_SAFE = "-_.!~*'()"
#: The ``Host`` the in-process requests carry (the app's loopback check accepts it).
_HOST = "127.0.0.1"
#: Response headers a page may read: the wire contract's and the media type.
_KEPT = frozenset({"content-type"})


def page_url(*parts: object) -> str:
    """``api/runs/<part>/<part>...``, each part encoded as the page's ``encodeURIComponent``
    does: the key under which the page will ask for it."""
    return "api/runs/" + "/".join(quote(str(p), safe=_URI_COMPONENT_SAFE) for p in parts)


@dataclass(frozen=True)
class LocalResponse:
    """One answer of the API: ``status``, the headers the page reads, ``body``."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self):
        import json

        return json.loads(self.body)


class LocalApi:
    """``grandtour serve``'s API for ``run_paths``, asked in process (:meth:`get`).

    Thread-safe; the app runs on one private event loop thread, so it can be asked from a
    Jupyter kernel (whose own loop is already running) as well as from a script.
    """

    def __init__(self, run_paths: Sequence[str | os.PathLike]) -> None:
        from grandtour.server import create_app
        from grandtour.server.wire import CONTRACT_HEADERS

        self.app = create_app(run_paths)
        self._kept = _KEPT | {h.lower() for h in CONTRACT_HEADERS}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grandtour-local-api", daemon=True)
        self._thread.start()

    @property
    def run_ids(self) -> list[str]:
        return [h.id for h in self.app.state.runs]

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> LocalApi:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, url: str) -> LocalResponse:
        """GET ``url`` (relative to the server's root, as the page asks: ``api/runs/...``)."""
        if self._loop.is_closed():
            raise GrandTourError("this viewer was closed; make a new one")
        future = asyncio.run_coroutine_threadsafe(self._request(url), self._loop)
        return future.result()

    def get_json(self, url: str):
        """The JSON body of ``url``; a :class:`GrandTourError` with the server's message if
        it is not a success."""
        r = self.get(url)
        if not r.ok:
            raise GrandTourError(_error_text(r))
        return r.json()

    async def _request(self, url: str) -> LocalResponse:
        parts = urlsplit("/" + url.lstrip("/"))
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": unquote(parts.path), "raw_path": parts.path.encode("ascii"),
            "root_path": "", "query_string": parts.query.encode("ascii"),
            "headers": [(b"host", _HOST.encode("ascii"))], "client": ("127.0.0.1", 0), "server": (_HOST, 80),
        }
        status = 500
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # never: the request has no body and nobody disconnects

        async def send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name in self._kept:
                        headers[name] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(scope, receive, send)
        return LocalResponse(status, headers, b"".join(chunks))


def _error_text(r: LocalResponse) -> str:
    try:
        return str(r.json().get("error") or r.status)
    except ValueError:
        return f"HTTP {r.status}"
