"""``grandtour serve``: a local web server for the viewer and the runs it shows.

The server only reads: the page (``grandtour/web/``) and run stores
(:mod:`grandtour.store`). It binds to 127.0.0.1 unless told otherwise, answers only
requests whose ``Host`` is this machine (so a web page elsewhere cannot read the runs
through DNS rebinding), serves no file outside the web directory, and takes run ids,
never paths, from clients.

HTTP API (all GET; every error is JSON ``{"error": "..."}``)
--------------------------------------------------------------
``/api/runs``
    ``[{"id", "name", "dataset", "epochs", "live"}]``, in the order the runs were given.
``/api/runs/{id}/meta``
    ``{"id", "name", "dataset", "class_names", "layers": [{"name", "kind", "shape", "dim",
    "static", "module", "config", "reduced_dim"?, "variance_kept"?}], "splits", "epochs",
    "sizes": {split: N}, "images": {split: [C, H, W] or null}, "adversarial": [names],
    "config", "live", "aligned", "nonfinite": {epoch: {split: {layer: rows}}}}``
    (``nonfinite`` lists only the non-zero counts). The epochs are re-read on every
    request. ``reduced_dim`` and ``variance_kept`` (of the pooled variance) are given for
    a wide layer that ``grandtour align`` stored in a fixed reduction.
``/api/runs/{id}/activations/{layer}/{epoch}/{split}``
    raw little-endian float16, row-major ``(N, dim)`` (``(N, reduced_dim)`` for a reduced
    layer, with ``X-Reduced: r,dim``); ``X-Shape: N,dim``, ``X-Scale: s`` (multiply by
    ``s``), ``X-Nonfinite: rows``; ``ETag`` (revalidate with ``If-None-Match``).
``/api/runs/{id}/labels/{split}``, ``/api/runs/{id}/predictions/{epoch}/{split}``
    int16 ``(N,)``, ``X-Shape: N`` (a prediction of -1 was not recorded).
``/api/runs/{id}/metrics/{split}``
    ``{"epochs", "loss", "accuracy", "class_loss", "class_accuracy"}``, NaN -> null.
``/api/runs/{id}/images/{split}`` and ``.../images/{split}/layout``
    a PNG sprite atlas of the probe thumbnails (see :func:`sprite_atlas`) with
    ``X-Atlas: cols,rows,cell_w,cell_h,N``; the layout as JSON.
``/api/runs/{id}/transition/{layer}/{epoch}/{split}`` and ``.../basis``
    the layer transition of :mod:`grandtour.align`: float16 ``start`` then ``end``
    ``(N, k)``; float32 ``basis_in`` then ``basis_out`` (see :func:`create_app`).
``/api/runs/{id}/adversarial/{name}``, ``.../{name}/predictions``, ``.../{name}/images``,
``.../{name}/{layer}``
    the record's metadata (JSON), its predictions (int16 ``(S+1, M)``), its images as a
    sprite atlas (step-major: cell ``s * M + j``), one layer (float16 ``(S+1, M, dim)``,
    ``X-Shape: S1,M,dim``, ``X-Scale``). ``predictions`` and ``images`` take precedence
    over layers so named.

Static files: ``/`` is ``index.html``; ``/static/PATH`` and ``/PATH`` are ``web/PATH``.
"""

import argparse
import hashlib
import io
import ipaddress
import json
import logging
import math
import mimetypes
import os
import re
import socket
import sys
import threading
import time
import webbrowser
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import GrandTourError, StoreError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerThread",
    "create_app",
    "serve",
    "serve_command",
    "sprite_atlas",
]

log = logging.getLogger("grandtour.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
#: Ports tried after DEFAULT_PORT when it is busy and no --port was given.
PORT_TRIES = 20
#: Largest epoch number accepted in a URL (a larger one is malformed, not unknown).
MAX_EPOCH = 2**31 - 1
#: Side of the largest sprite atlas: 4096 is the smallest MAX_TEXTURE_SIZE WebGL2 allows.
ATLAS_MAX_SIDE = 4096
#: A run counts as live while its commit record changed less than this many seconds ago.
LIVE_WINDOW_S = 120.0
#: ... or this many, while the training config plans more epochs than are committed.
LIVE_PLANNED_S = 3600.0
#: Host header values accepted when serving on a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WEB_DIR = Path(__file__).resolve().parent / "web"

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_EPOCH = re.compile(r"^[0-9]{1,12}$")
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".png": "image/png",
    ".svg": "image/svg+xml", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm", ".woff2": "font/woff2",
}
#: Transitions kept per run (each is asked for twice: its data, then its basis).
TRANSITION_CACHE = 8


def _require_web_stack():
    """Import FastAPI/uvicorn, or say which extra to install."""
    try:
        import fastapi  # noqa: F401
        import PIL  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as err:
        raise GrandTourError(
            f"`grandtour serve` needs the Python package '{err.name}'. Install the viewer extra: "
            "pip install 'grandtour[viewer]'") from None


# ----------------------------------------------------------------------------- errors


class _HttpError(Exception):
    """An error answered as JSON ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _not_found(message: str) -> _HttpError:
    return _HttpError(404, message)


# ----------------------------------------------------------------------------- runs


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_").lower()
    return slug[:64] or "run"


def _run_ids(paths: Sequence[Path]) -> list[str]:
    """A URL-safe id per run: the slug of its directory name, ``-2``, ``-3``... if taken."""
    ids: list[str] = []
    for path in paths:
        base = _slug(path.name or path.resolve().name)
        rid, k = base, 2
        while rid in ids:
            rid, k = f"{base}-{k}", k + 1
        ids.append(rid)
    return ids


def _json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities (not JSON) replaced by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _to_float16(x: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Float16 copy of ``x`` (..., dim) with the store's power-of-two scale.

    Returns ``(y, scale, rows)``: ``x ~= y * scale``, and ``rows`` counts the rows (last
    axis) with a NaN or infinite entry.
    """
    from grandtour.store import encode_float16

    y, scale, bad = encode_float16(np.asarray(x, dtype=np.float32))
    return y.astype("<f2", copy=False), scale, int(np.sum(bad))


@dataclass
class _RunHandle:
    """One served run: the open :class:`~grandtour.store.Run` and what the server caches."""

    id: str
    path: Path
    run: Any
    created: str
    probes: dict
    lock: threading.Lock = field(default_factory=threading.Lock)
    atlases: dict = field(default_factory=dict)
    _commit_stamp: tuple = ()
    _commit: dict = field(default_factory=dict)
    align_lock: threading.Lock = field(default_factory=threading.Lock)
    _align_stamp: tuple | None = None
    _aligner: Any = None
    _reductions: dict = field(default_factory=dict)
    _transitions: OrderedDict = field(default_factory=OrderedDict)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    def refresh(self) -> None:
        """Re-read the committed epochs (the run may still be training)."""
        with self.lock:
            self.run.refresh()

    def live(self) -> bool:
        """True while the run is probably still being written (training, adversarial).

        That is: its commit record changed within :data:`LIVE_WINDOW_S`, or within
        :data:`LIVE_PLANNED_S` while the training config (``epochs``) plans more epochs
        than are committed. The page polls live runs for new epochs.
        """
        try:
            age = time.time() - (self.path / "commit.json").stat().st_mtime
        except OSError:
            return False
        planned = self.run.config.get("epochs")
        epochs = self.run.epochs
        unfinished = isinstance(planned, int) and (not epochs or max(epochs) < planned)
        return age < (LIVE_PLANNED_S if unfinished else LIVE_WINDOW_S)

    def commit_record(self) -> dict:
        """The commit record (``commit.json``, documented in docs/store.md), re-read when
        the file changes; {} if it cannot be read (the store reports that itself)."""
        cpath = self.path / "commit.json"
        try:
            st = cpath.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._commit_stamp:
                self._commit = json.loads(cpath.read_text(encoding="utf-8"))
                self._commit_stamp = stamp
        except (OSError, ValueError):
            return {}
        return self._commit if isinstance(self._commit, dict) else {}

    def epoch_tag(self, epoch: int) -> str:
        """A strong ETag for the data of ``epoch``; it changes only if the run is re-created.

        Made of the run's creation time and the time and slot of the epoch's commit, which
        are fixed once the epoch exists (epochs are append-only). "" if unknown.
        """
        for entry in self.commit_record().get("epochs", []):
            if isinstance(entry, dict) and entry.get("epoch") == epoch:
                token = f"{self.created}|{epoch}|{entry.get('written', '')}|{entry.get('slot', '')}"
                return hashlib.sha1(token.encode()).hexdigest()[:20]
        return ""

    # -- alignment (grandtour.align): read-only, cached until `grandtour align` rewrites it

    def alignment(self) -> tuple[Any, tuple | None]:
        """``(grandtour.align, stamp)``; stamp None while the run is not aligned."""
        align, _ = _align_module()
        if align is None:
            return None, None
        cpath = self.path / align.ALIGNMENT_DIR / align.COMMIT_FILE
        try:
            st = cpath.stat()
        except OSError:
            return align, None
        stamp = (st.st_mtime_ns, st.st_size)
        with self.align_lock:
            if stamp != self._align_stamp:  # (re)aligned since we looked: drop what we cached
                self._aligner, self._reductions = None, {}
                self._transitions.clear()
                self._align_stamp = stamp
        return align, stamp

    def reduction(self, layer: str) -> Any:
        """The stored fixed reduction of a wide ``layer`` (``align.Reduction``), or None."""
        align, stamp = self.alignment()
        if stamp is None:
            return None
        with self.align_lock:
            if layer not in self._reductions:
                self._reductions[layer] = align.load_reduction(self.run, layer)
            return self._reductions[layer]

    def coordinates(self, layer: str, epoch: int, split: str) -> np.ndarray:
        """A reduced layer's coordinates ``(N, r)``, as stored by ``grandtour align``."""
        align, _ = self.alignment()
        with self.align_lock:
            if self._aligner is None:
                self._aligner = align.Aligner(self.run)
            aligner = self._aligner
        return aligner.coordinates(layer, epoch, split)

    def transition(self, layer: str, epoch: int, split: str) -> Any:
        """``align.Transition`` into ``layer``; the last few are kept (data, then basis)."""
        align, stamp = self.alignment()
        if align is None:
            raise _HttpError(503, f"layer transitions are not available: {_align_module()[1]}")
        if stamp is None:
            raise _not_found(f"run {self.id!r} has not been aligned, so it has no layer transitions; "
                             f"run `grandtour align {self.path}`")
        key = (layer, epoch, split)
        with self.align_lock:
            if key in self._transitions:
                self._transitions.move_to_end(key)
                return self._transitions[key]
        try:
            t = align.load_transition(self.run, layer, epoch, split)
        except StoreError as err:
            if "not been aligned" not in str(err):
                raise
            # An epoch `grandtour align` did not cover (e.g. committed after it, or
            # `train --align last`): compute it now, in the run's stored reductions.
            with self.align_lock:
                if self._aligner is None:
                    self._aligner = align.Aligner(self.run)
                aligner = self._aligner
            t = aligner.transition(layer, epoch, split)
        with self.align_lock:
            self._transitions[key] = t
            while len(self._transitions) > TRANSITION_CACHE:
                self._transitions.popitem(last=False)
        return t

    def adversarial_tag(self, name: str) -> str:
        """Identifies the current generation of adversarial record ``name`` ("" if none)."""
        entry = (self.commit_record().get("adversarial") or {}).get(name) or {}
        return f"{entry.get('path', '')}|{entry.get('written', '')}"


def _open_runs(run_paths: Sequence[str | os.PathLike]) -> list[_RunHandle]:
    from grandtour.store import Run

    if not run_paths:
        raise GrandTourError("no run given: `grandtour serve RUN [RUN ...]` needs at least one run "
                             "directory (written by `grandtour train`, `demo` or `import`)")
    paths = [Path(p) for p in run_paths]
    seen: dict[Path, Path] = {}
    for p in paths:
        real = p.resolve()
        if real in seen:
            raise GrandTourError(f"the run {p} is given twice (also as {seen[real]}); give each run once")
        seen[real] = p
    handles = []
    for path, rid in zip(paths, _run_ids(paths), strict=True):
        run = Run.open(path)  # StoreError saying what is wrong if it is not a run
        try:
            attrs = json.loads((path / "zarr.json").read_text(encoding="utf-8"))["attributes"]
        except (OSError, ValueError, KeyError) as err:
            raise StoreError(f"cannot read the metadata {path / 'zarr.json'}: {err}") from None
        handles.append(_RunHandle(id=rid, path=path, run=run, created=str(attrs.get("created", "")),
                                  probes=dict(attrs.get("probes") or {})))
    return handles


# ----------------------------------------------------------------------------- sprite atlas


def _atlas_grid(n: int, h: int, w: int, max_side: int = ATLAS_MAX_SIDE) -> tuple[int, int, int, int]:
    """Columns, rows and cell size of an atlas of ``n`` thumbnails of ``h x w`` pixels.

    Roughly square, at most ``max_side`` pixels a side: thumbnails are shrunk (keeping
    their aspect ratio) only when ``n`` full-size cells would not fit.
    """
    cols = max(1, math.ceil(math.sqrt(n * h / w)))
    cell_w, cell_h = w, h
    if cols * w > max_side or math.ceil(n / cols) * h > max_side:
        # Largest cell whose square-ish grid fits max_side.
        f = max_side / math.sqrt(n * h * w) if n else 1.0
        while True:
            cell_w, cell_h = max(1, int(w * f)), max(1, int(h * f))
            cols = max(1, max_side // cell_w)
            if math.ceil(n / cols) * cell_h <= max_side or (cell_w == 1 and cell_h == 1):
                break
            f *= 0.97
    rows = max(1, math.ceil(n / cols))
    return cols, rows, cell_w, cell_h


def sprite_atlas(images: np.ndarray) -> tuple[bytes, dict]:
    """A PNG sprite atlas of thumbnails, row-major.

    Parameters
    ----------
    images : ndarray of shape (N, C, H, W), uint8
        C = 1 gives a grayscale PNG, 3 RGB, 4 RGBA; any other C uses its first channel.

    Returns
    -------
    png : bytes
    layout : dict
        ``{"cols", "rows", "cell_w", "cell_h", "n", "width", "height", "channels"}``.
        Thumbnail ``i`` is at pixel ``(x, y) = ((i % cols) * cell_w, (i // cols) * cell_h)``;
        cells are the thumbnails' size unless ``N`` of them would make the atlas wider or
        taller than 4096 pixels, in which case they are shrunk to fit.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise StoreError(f"thumbnails must be (N, C, H, W) uint8, got {images.shape} {images.dtype}")
    n, c, h, w = images.shape
    channels = c if c in (1, 3, 4) else 1
    pix = images if c == channels else images[:, :1]
    pix = np.moveaxis(pix, 1, -1)  # (N, H, W, C)
    cols, rows, cell_w, cell_h = _atlas_grid(n, h, w)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if (cell_w, cell_h) != (w, h) and n:
        def shrink(p: np.ndarray) -> np.ndarray:
            small = Image.fromarray(p[..., 0] if channels == 1 else p, mode).resize(
                (cell_w, cell_h), Image.BILINEAR)
            return np.asarray(small).reshape(cell_h, cell_w, channels)

        pix = np.stack([shrink(p) for p in pix])
    grid = np.zeros((rows * cols, cell_h, cell_w, channels), np.uint8)
    grid[:n] = pix
    sheet = grid.reshape(rows, cols, cell_h, cell_w, channels).swapaxes(1, 2).reshape(
        rows * cell_h, cols * cell_w, channels)
    img = Image.fromarray(sheet[..., 0] if channels == 1 else sheet, mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast: the atlas is made on first request
    layout = {"cols": cols, "rows": rows, "cell_w": cell_w, "cell_h": cell_h, "n": int(n),
              "width": cols * cell_w, "height": rows * cell_h, "channels": channels}
    return buf.getvalue(), layout


# ----------------------------------------------------------------------------- alignment


def _align_module() -> tuple[Any, str]:
    """``(grandtour.align, "")``, or ``(None, why)`` if it cannot be imported."""
    try:
        from grandtour import align
    except ImportError as err:
        if getattr(err, "name", None) == "grandtour.align":
            return None, "this installation has no grandtour.align; update grandtour"
        return None, f"grandtour.align needs the Python package {err.name!r}: {err}"
    return align, ""


# ----------------------------------------------------------------------------- app


def create_app(run_paths: Sequence[str | os.PathLike], *, web_dir: str | os.PathLike | None = None,
               allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS):
    """The ASGI application serving the viewer page and the runs at ``run_paths``.

    Parameters
    ----------
    run_paths : sequence of str or Path
        Run directories; each gets an id (the slug of its directory name) in this order.
    web_dir : str or Path, optional
        The page's directory (default: the package's ``web/``). Nothing outside it is served.
    allowed_hosts : iterable of str or None
        Accepted ``Host`` header names (any port); None accepts every host (the server
        was bound to a public address on purpose).

    Returns
    -------
    fastapi.FastAPI

    Notes
    -----
    Transitions (:func:`grandtour.align.load_transition`, stored by ``grandtour align``):
    ``GET .../transition/{layer}/{epoch}/{split}`` returns little-endian float16 ``start``
    ``(N, k)`` followed by ``end`` ``(N, k)``, both to be multiplied by ``X-Scale``; the
    viewer draws ``(1 - t) start + t end``. Headers: ``X-Shape: N,k``, ``X-Basis: <url>``,
    ``X-Previous`` (the layer it starts from), ``X-Method`` (svd, maxpool, coordinatewise,
    identity, lstsq), ``X-Exact`` (0 for the least-squares fallback), ``X-Note`` (why it
    is approximate, if it is), ``X-Variance-Kept: prev,this`` and ``X-Reduced: 0|1,0|1``.

    ``GET .../basis`` returns little-endian float32, row-major: ``basis_in``
    ``(d_prev, d_prev)`` then ``basis_out`` ``(d, d)``, with ``X-Shape:
    d_prev,d_prev,d,d`` and ``X-Basis-Names: basis_in,basis_out``. Both are orthogonal;
    ``k = max(d_prev, d)`` and ``d_prev``, ``d`` are the shown widths (``dim`` or
    ``reduced_dim``): ``Z_prev = start[:, :d_prev] @ basis_in.T`` and ``Z = end[:, :d]
    @ basis_out.T``. So a tour ``GT_prev`` of the previous layer becomes ``basis_in.T @
    GT_prev`` (padded to ``k x k`` with the identity) in the transition's coordinates, and
    a tour ``G`` of those, restricted to the first ``d`` rows, becomes ``basis_out @ G``
    for the layer: the picture does not jump at either boundary.

    Transitions of a run that was not aligned are 404 (the message says to run
    ``grandtour align RUN``); 503 when ``grandtour.align`` cannot be imported.
    """
    _require_web_stack()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.routing import APIRoute
    from starlette.exceptions import HTTPException as StarletteHTTPException

    handles = _open_runs(run_paths)
    by_id = {h.id: h for h in handles}
    web_root = Path(web_dir).resolve() if web_dir is not None else WEB_DIR
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
    atlas_lock = threading.Lock()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status,
                            headers={"Cache-Control": "no-store"})

    class GuardedRoute(APIRoute):
        """Every handler's failures become JSON errors; no traceback reaches the client."""

        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def guarded(request: Request):
                try:
                    return await handler(request)
                except (StarletteHTTPException, RequestValidationError):
                    raise
                except _HttpError as err:
                    return error(err.status, err.message)
                except GrandTourError as err:
                    # A damaged store: the message names the array; the server keeps running.
                    log.error("%s %s: %s", request.method, request.url.path, err)
                    return error(500, str(err))
                except Exception as err:  # noqa: BLE001 - a bug: log it, answer without a traceback
                    log.exception("unexpected error on %s %s", request.method, request.url.path)
                    return error(500, f"internal error ({type(err).__name__}) while answering "
                                      f"{request.url.path}; the server log has the details")

            return guarded

    app = FastAPI(title="grandtour", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.route_class = GuardedRoute
    app.state.runs = handles

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        messages = {404: "not found", 405: "method not allowed: the API is read-only (GET)"}
        return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(422, "malformed request")

    @app.middleware("http")
    async def check_host(request: Request, call_next):
        if hosts is not None:
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
            if name.lower() not in hosts:
                return error(400, "this server answers only requests addressed to this machine "
                                  "(http://127.0.0.1:PORT/); serve with --host to allow others")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # ---- lookups: validate every URL part against the run before touching the store

    def get_run(run_id: str) -> _RunHandle:
        handle = by_id.get(run_id)
        if handle is None:
            raise _not_found(f"no run {run_id!r}; runs: {', '.join(by_id)}")
        return handle

    def get_layer(h: _RunHandle, layer: str) -> Any:
        for info in h.run.layers:
            if info.name == layer:
                return info
        raise _not_found(f"no layer {layer!r} in run {h.id!r}; layers: {', '.join(h.run.layer_names)}")

    def get_split(h: _RunHandle, split: str) -> str:
        if split not in h.run.splits:
            raise _not_found(f"no split {split!r} in run {h.id!r}; splits: {', '.join(h.run.splits)}")
        return split

    def get_epoch(h: _RunHandle, epoch: str) -> int:
        if not _EPOCH.match(epoch) or int(epoch) > MAX_EPOCH:
            raise _HttpError(400, f"malformed epoch {epoch[:40]!r}: give a whole number from 0 "
                                  f"to {MAX_EPOCH}")
        e = int(epoch)
        if e not in h.run.epochs:
            h.refresh()  # it may have been committed since we last looked
            if e not in h.run.epochs:
                have = h.run.epochs
                listed = f"{have[0]}..{have[-1]}" if have else "none yet"
                raise _not_found(f"no epoch {e} in run {h.id!r}; committed epochs: {listed}")
        return e

    def binary(data: np.ndarray, headers: dict[str, str], etag: str = "") -> Response:
        headers = dict(headers)
        if etag:
            headers["ETag"] = f'"{etag}"'
            # Revalidate every time: a run re-created under the same directory gets a new tag.
            headers["Cache-Control"] = "no-cache"
        else:
            headers["Cache-Control"] = "no-store"
        return Response(content=np.ascontiguousarray(data).tobytes(), media_type="application/octet-stream",
                        headers=headers)

    def not_modified(request: Request, etag: str) -> Response | None:
        if etag and f'"{etag}"' in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"ETag": f'"{etag}"', "Cache-Control": "no-cache"})
        return None

    def json_response(obj: Any, cache: str = "no-store") -> JSONResponse:
        return JSONResponse(_json_safe(obj), headers={"Cache-Control": cache})

    def run_summary(h: _RunHandle) -> dict:
        return {"id": h.id, "name": h.name, "dataset": h.run.dataset, "epochs": list(h.run.epochs),
                "live": h.live()}

    # ---- API

    @app.get("/api/runs")
    def list_runs():
        for h in handles:
            h.refresh()
        return json_response([run_summary(h) for h in handles])

    @app.get("/api/runs/{run_id}/meta")
    def meta(run_id: str):
        h = get_run(run_id)
        h.refresh()
        run = h.run
        layers = []
        for info in run.layers:
            doc = {"name": info.name, "kind": info.kind, "shape": list(info.shape), "dim": info.dim,
                   "static": bool(info.static), "module": info.module, "config": info.config}
            red = h.reduction(info.name)
            if red is not None:  # shown as (N, r) in a fixed reduction, the same for every epoch
                doc.update(reduced_dim=int(red.rank), variance_kept=float(red.variance_kept))
            layers.append(doc)
        nonfinite = {}
        for e in run.epochs:
            counts = {s: {k: c for k, c in per.items() if c} for s, per in run.nonfinite(e).items()}
            counts = {s: per for s, per in counts.items() if per}
            if counts:
                nonfinite[str(e)] = counts
        return json_response({
            **run_summary(h), "class_names": run.class_names, "layers": layers,
            "splits": run.splits, "sizes": {s: run.size(s) for s in run.splits},
            "images": {s: (h.probes.get(s) or {}).get("images") for s in run.splits},
            "adversarial": run.adversarial_names(), "config": run.config, "nonfinite": nonfinite,
            "aligned": h.alignment()[1] is not None})

    @app.get("/api/runs/{run_id}/activations/{layer}/{epoch}/{split}")
    def activations(run_id: str, layer: str, epoch: str, split: str, request: Request):
        h = get_run(run_id)
        info = get_layer(h, layer)
        get_split(h, split)
        e = get_epoch(h, epoch)
        red = h.reduction(layer)
        # A static layer is the same array at every epoch: one tag for all of them.
        base = f"{h.created}|static" if info.static else h.epoch_tag(e)
        if red is not None:
            base += f"|{h.alignment()[1]}"  # a new `grandtour align --force`, new coordinates
        tag = hashlib.sha1(f"{base}|{layer}|{split}".encode()).hexdigest()[:24] if base else ""
        cached = not_modified(request, tag)
        if cached is not None:
            return cached
        if red is None:
            y, scale = h.run.activations_float16(layer, e, split)
            rows = h.run.nonfinite(e)[split][layer]
            headers = {}
        else:
            y, scale, rows = _to_float16(h.coordinates(layer, e, split))
            headers = {"X-Reduced": f"{red.rank},{info.dim}"}
        return binary(y.astype("<f2", copy=False), {
            "X-Shape": f"{y.shape[0]},{y.shape[1]}", "X-Scale": repr(float(scale)),
            "X-Nonfinite": str(rows), **headers}, tag)

    @app.get("/api/runs/{run_id}/labels/{split}")
    def labels(run_id: str, split: str):
        h = get_run(run_id)
        get_split(h, split)
        y = h.run.labels(split)
        return binary(y.astype("<i2"), {"X-Shape": str(y.shape[0])})

    @app.get("/api/runs/{run_id}/predictions/{epoch}/{split}")
    def predictions(run_id: str, epoch: str, split: str):
        h = get_run(run_id)
        get_split(h, split)
        e = get_epoch(h, epoch)
        p = h.run.predictions(e, split)
        return binary(p.astype("<i2"), {"X-Shape": str(p.shape[0])})

    @app.get("/api/runs/{run_id}/metrics/{split}")
    def metrics(run_id: str, split: str):
        h = get_run(run_id)
        get_split(h, split)
        h.refresh()
        with h.lock:  # the epochs and the slots they are read from must agree
            m = h.run.metrics(split)
            epochs = list(h.run.epochs)
        values = {k: np.asarray(v, np.float64).tolist() for k, v in m.items()}
        return json_response({"epochs": epochs, **values})  # NaN -> null

    def atlas(h: _RunHandle, key: tuple, make: Callable[[], np.ndarray | None], what: str):
        with atlas_lock:
            if key not in h.atlases:
                images = make()
                if images is None:
                    raise _not_found(f"run {h.id!r} has no thumbnails for {what}")
                h.atlases[key] = sprite_atlas(images)
            return h.atlases[key]

    def atlas_response(png: bytes, layout: dict, tag: str) -> Response:
        return Response(content=png, media_type="image/png", headers={
            "X-Atlas": "{cols},{rows},{cell_w},{cell_h},{n}".format(**layout),
            "ETag": f'"{tag}"', "Cache-Control": "no-cache"})

    @app.get("/api/runs/{run_id}/images/{split}")
    def images(run_id: str, split: str, request: Request):
        h = get_run(run_id)
        get_split(h, split)
        tag = "i-" + hashlib.sha1(f"{h.created}|{split}".encode()).hexdigest()[:20]
        cached = not_modified(request, tag)
        if cached is not None:
            return cached
        png, layout = atlas(h, ("probe", split), lambda: h.run.images(split), f"split {split!r}")
        return atlas_response(png, layout, tag)

    @app.get("/api/runs/{run_id}/images/{split}/layout")
    def images_layout(run_id: str, split: str):
        h = get_run(run_id)
        get_split(h, split)
        _, layout = atlas(h, ("probe", split), lambda: h.run.images(split), f"split {split!r}")
        return json_response(layout)

    # ---- transitions (grandtour.align)

    def transition_data(h: _RunHandle, layer: str, epoch: str, split: str):
        get_layer(h, layer)
        get_split(h, split)
        e = get_epoch(h, epoch)
        if h.run.layer_names.index(layer) == 0:
            raise _not_found(f"layer {layer!r} is the first layer of run {h.id!r}: transitions "
                             "go from the previous layer into a layer")
        return e, h.transition(layer, e, split)

    @app.get("/api/runs/{run_id}/transition/{layer}/{epoch}/{split}")
    def transition(run_id: str, layer: str, epoch: str, split: str):
        h = get_run(run_id)
        e, t = transition_data(h, layer, epoch, split)
        start, end = np.asarray(t.start), np.asarray(t.end)
        both, scale, rows = _to_float16(np.concatenate([start, end], axis=0))
        return binary(both, {
            "X-Shape": f"{start.shape[0]},{start.shape[1]}", "X-Scale": repr(float(scale)),
            "X-Nonfinite": str(rows),
            "X-Basis": f"/api/runs/{run_id}/transition/{layer}/{e}/{split}/basis",
            "X-Previous": t.previous, "X-Method": t.method, "X-Exact": "1" if t.exact else "0",
            "X-Variance-Kept": ",".join(repr(float(v)) for v in t.variance_kept),
            "X-Reduced": ",".join("1" if r else "0" for r in t.reduced),
            **({"X-Note": _http_text(t.note)} if t.note else {})})

    @app.get("/api/runs/{run_id}/transition/{layer}/{epoch}/{split}/basis")
    def transition_basis(run_id: str, layer: str, epoch: str, split: str):
        h = get_run(run_id)
        _, t = transition_data(h, layer, epoch, split)
        b_in, b_out = np.asarray(t.basis_in, "<f4"), np.asarray(t.basis_out, "<f4")
        return binary(np.concatenate([b_in.reshape(-1), b_out.reshape(-1)]), {
            "X-Shape": f"{b_in.shape[0]},{b_in.shape[1]},{b_out.shape[0]},{b_out.shape[1]}",
            "X-Basis-Names": "basis_in,basis_out"})

    # ---- adversarial

    def get_record(h: _RunHandle, name: str):
        h.refresh()
        if name not in h.run.adversarial_names():
            have = ", ".join(h.run.adversarial_names()) or "none (run `grandtour adversarial RUN`)"
            raise _not_found(f"no adversarial record {name!r} in run {h.id!r}; records: {have}")
        return h.run.adversarial(name)

    @app.get("/api/runs/{run_id}/adversarial/{name}")
    def adversarial(run_id: str, name: str):
        h = get_run(run_id)
        rec = get_record(h, name)
        return json_response({
            "name": name, "source": rec.source, "target": rec.target, "eps": rec.eps,
            "epoch": rec.epoch, "split": rec.split, "steps": rec.steps,
            "example_index": [int(i) for i in rec.example_index], "layers": list(rec.layers),
            "target_loss": np.asarray(rec.target_loss, np.float64).tolist()})

    @app.get("/api/runs/{run_id}/adversarial/{name}/predictions")
    def adversarial_predictions(run_id: str, name: str):
        h = get_run(run_id)
        p = get_record(h, name).predictions
        return binary(p.astype("<i2"), {"X-Shape": f"{p.shape[0]},{p.shape[1]}"})

    @app.get("/api/runs/{run_id}/adversarial/{name}/images")
    def adversarial_images(run_id: str, name: str):
        h = get_run(run_id)
        rec = get_record(h, name)
        key = ("adversarial", name, h.adversarial_tag(name))  # a rewritten record is a new key

        def make():
            imgs = rec.images()  # (S+1, M, C, H, W)
            return imgs.reshape((-1,) + imgs.shape[2:])

        png, layout = atlas(h, key, make, f"adversarial record {name!r}")
        return Response(content=png, media_type="image/png", headers={
            "X-Atlas": "{cols},{rows},{cell_w},{cell_h},{n}".format(**layout), "Cache-Control": "no-store"})

    @app.get("/api/runs/{run_id}/adversarial/{name}/{layer}")
    def adversarial_layer(run_id: str, name: str, layer: str):
        h = get_run(run_id)
        rec = get_record(h, name)
        if layer not in rec.layers:
            raise _not_found(f"adversarial record {name!r} has no layer {layer!r}; layers: "
                             f"{', '.join(rec.layers)}")
        x = rec.activations(layer)  # (S+1, M, dim) float32
        y, scale, rows = _to_float16(x)
        return binary(y, {"X-Shape": ",".join(str(s) for s in y.shape), "X-Scale": repr(float(scale)),
                          "X-Nonfinite": str(rows)})

    # ---- static files: only what is under web_root

    def static_file(rel: str) -> Response:
        path = _web_file(web_root, rel)
        if path is None:
            raise _not_found("not found")
        media = _MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"
        return Response(content=path.read_bytes(), media_type=media, headers={"Cache-Control": "no-cache"})

    @app.get("/")
    def index():
        if _web_file(web_root, "index.html") is None:
            raise _not_found("the viewer page (grandtour/web/index.html) is not installed; "
                             "the API is at /api/runs")
        return static_file("index.html")

    @app.get("/static/{rel:path}")
    def static(rel: str):
        return static_file(rel)

    @app.get("/{rel:path}")
    def web(rel: str):
        if rel == "api" or rel.startswith("api/"):
            raise _not_found("no such API endpoint; see /api/runs")
        return static_file(rel)

    return app


def _web_file(root: Path, rel: str) -> Path | None:
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


def _http_text(text: str, limit: int = 300) -> str:
    """``text`` as one short line an HTTP header can carry (latin-1, no line breaks)."""
    line = " ".join(str(text).split())[:limit]
    return line.encode("latin-1", "replace").decode("latin-1")


# ----------------------------------------------------------------------------- running


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; GrandTourError if the port is taken."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise GrandTourError(f"cannot serve on host {host!r}: {err.strerror}; give an address such "
                             f"as {DEFAULT_HOST}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise GrandTourError(f"cannot listen on {host}:{port}: {err.strerror or err}. The port may be in "
                             "use by another program: choose another with --port (0 = any free port)") from None
    return sock


def _bind_search(host: str, port: int | None) -> socket.socket:
    """Bind ``port``; with None, :data:`DEFAULT_PORT` or the next free one of :data:`PORT_TRIES`."""
    if port is not None:
        if not 0 <= int(port) <= 65535:
            raise GrandTourError(f"port {port} is out of range: give 0..65535 (0 = any free port)")
        return _bind(host, int(port))
    last: GrandTourError | None = None
    for p in range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES):
        try:
            return _bind(host, p)
        except GrandTourError as err:
            last = err
    raise GrandTourError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_TRIES - 1} are all in use; "
                         f"choose one with --port (0 = any free port). Last error: {last}")


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = DEFAULT_HOST  # reachable from this machine whatever the interface
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class ServerThread:
    """Serve an ASGI app with uvicorn on a background thread (tests, browser tests, notebooks).

    ``port=0`` picks a free port. Use as a context manager, or call :meth:`start` and
    :meth:`stop`::

        with ServerThread(create_app(["runs/example"])) as server:
            urllib.request.urlopen(server.url + "api/runs")

    Attributes
    ----------
    host : str
    port : int
        The bound port (known once constructed).
    url : str
        ``http://host:port/``.
    """

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0, *, sock: socket.socket | None = None,
                 log_level: str = "warning") -> None:
        _require_web_stack()
        import uvicorn

        self.app = app
        self.sock = sock if sock is not None else _bind(host, port)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.url = _url(host, self.port)
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=3,
                                server_header=False)
        self.config = config
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as err:  # noqa: BLE001 - reported by start()
            self._error = err

    def start(self, timeout: float = 10.0) -> "ServerThread":
        """Start serving and return once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name=f"grandtour-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise GrandTourError(f"the server on {self.url} failed to start: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise GrandTourError(f"the server on {self.url} did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end; the socket is closed."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _configure_logging() -> None:
    logger = logging.getLogger("grandtour")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("grandtour serve: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def serve(run_paths: Sequence[str | os.PathLike], host: str = DEFAULT_HOST, port: int | None = None,
          open_browser: bool = True, block: bool = True, *, web_dir=None,
          out: Any = None) -> "ServerThread | None":
    """Serve the viewer for ``run_paths`` (used by ``grandtour serve`` and ``grandtour demo``).

    Parameters
    ----------
    run_paths : sequence of str or Path
    host : str
        Address to bind; 127.0.0.1 by default. Any other than a loopback address lets
        other machines read the runs: a warning says so.
    port : int, optional
        None: :data:`DEFAULT_PORT` (8787), or the next free one of the 20 after it. An
        explicit port that is taken is an error; 0 picks any free port.
    open_browser : bool
        Open the page with :func:`webbrowser.open` once the server accepts connections.
    block : bool
        True: serve until Ctrl-C (then return None). False: return the started
        :class:`ServerThread`; call its ``stop()``.
    web_dir : str or Path, optional
        The page's directory (default: the package's).
    out : file, optional
        Where the URL and notes are printed (default: stdout).

    Returns
    -------
    ServerThread or None
    """
    out = out if out is not None else sys.stdout
    _require_web_stack()
    loopback = _is_loopback(host)
    app = create_app(run_paths, web_dir=web_dir, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    if not loopback:
        print(f"warning: serving on {host}, which is not a loopback address: anyone who can reach "
              "this machine on the network can read these runs", file=sys.stderr)
    sock = _bind_search(host, port)
    server = ServerThread(app, host, sock=sock)
    if port is None and server.port != DEFAULT_PORT:
        print(f"port {DEFAULT_PORT} is in use; using {server.port}", file=out)
    _configure_logging()
    names = ", ".join(h.name for h in app.state.runs)
    if not block:
        server.start()
        print(f"grandtour viewer for {names} at {server.url}", file=out, flush=True)
        if open_browser:
            webbrowser.open(server.url)
        return server

    print(f"grandtour viewer for {names} at {server.url}  (Ctrl-C to stop)", file=out, flush=True)
    if open_browser:
        def opener() -> None:
            deadline = time.monotonic() + 30
            while not server.server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            if server.server.started:
                webbrowser.open(server.url)

        threading.Thread(target=opener, name="grandtour-browser", daemon=True).start()
    try:
        # In the main thread, uvicorn handles Ctrl-C itself: it stops gracefully, then re-raises it.
        server.server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("stopped", file=out, flush=True)
    return None


def serve_command(args: argparse.Namespace) -> int:
    """``grandtour serve RUN [RUN ...] [--port P] [--host H] [--no-browser]``."""
    runs = list(getattr(args, "runs", None) or [])
    host = getattr(args, "host", None) or DEFAULT_HOST
    port = getattr(args, "port", None)
    serve(runs, host=host, port=port, open_browser=not getattr(args, "no_browser", False), block=True)
    return 0
