"""The wire format between the server and the page: the one definition.

Every response of :mod:`grandtour.server` that carries numbers is built by a function of
this module, and ``web/js/wire.js`` is its one reader in the page. The recorded contract
(``tests/fixtures/wire_responses.json``, written by ``scripts/make_wire_fixtures.py``)
holds both sides to it.

Bodies
------
float16 slice
    Raw little-endian IEEE 754 half floats, row-major, shape ``X-Shape``. The value is
    ``bits * X-Scale``: the scale is a power of two (1.0 unless a finite value exceeds the
    float16 maximum 65504; see :func:`grandtour.store.encode_float16`). Non-finite values
    are sent as they are; ``X-Nonfinite`` counts the rows (last axis) holding one.
int16 vector
    Little-endian int16, shape ``X-Shape`` (labels, predictions; -1: not recorded).
float32 matrices
    Little-endian float32, row-major, concatenated; ``X-Shape: r0,c0,r1,c1,...`` and
    their names in ``X-Basis-Names`` (a transition's bases).
PNG sprite atlas
    ``X-Atlas: cols,rows,cell_w,cell_h,n`` (see :func:`grandtour.server.atlas.sprite_atlas`).
JSON
    NaN and infinities become ``null`` (:func:`json_safe`); errors are ``{"error": message}``.

Caching
-------
Data that is fixed once written carries a strong ``ETag`` and ``Cache-Control:
no-cache`` (revalidate each time: a run re-created under the same directory gets new
tags; a matching ``If-None-Match`` is answered 304). Everything else is ``no-store``.

Header values are one short printable-ASCII line (:func:`header_text`, the one place they
are made safe): a note written by ``grandtour align`` or a layer name may hold any text,
and h11 refuses an unsafe value only after the handler has returned (an empty reply).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "CONTRACT_HEADERS",
    "atlas_response",
    "basis_response",
    "error_response",
    "float16_response",
    "header_text",
    "int16_response",
    "json_response",
    "json_safe",
    "not_modified",
    "to_float16",
    "transition_response",
]

#: The headers the page reads (besides Content-Type, Cache-Control and ETag).
CONTRACT_HEADERS = ("X-Shape", "X-Scale", "X-Nonfinite", "X-Reduced", "X-Basis", "X-Previous",
                    "X-Method", "X-Exact", "X-Residual", "X-Variance-Kept", "X-Note", "X-Basis-Names", "X-Atlas")
#: Longest header value :func:`header_text` lets through.
HEADER_TEXT_LIMIT = 300
#: Longest value of any other header (a URL, a list of numbers): far below h11's 16 KiB.
MAX_HEADER_VALUE = 2000
BINARY = "application/octet-stream"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ----------------------------------------------------------------------------- values


def header_text(text: Any, limit: int = HEADER_TEXT_LIMIT) -> str:
    """``text`` as one line an HTTP header can carry: printable ASCII, at most ``limit`` long.

    Accents are dropped (``é`` -> ``e``), other non-ASCII characters become ``?``, runs of
    whitespace and control characters become one space, and the ends are stripped *after*
    cutting at ``limit``: a value that ends in a space (or starts with one) is refused by
    h11 (RFC 9110 field values), and only after the handler returned.
    """
    plain = unicodedata.normalize("NFKD", str(text))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    ascii_text = plain.encode("ascii", "replace").decode("ascii")
    # Every control character (C0, DEL) counts as whitespace: none may reach a header.
    line = " ".join(_CONTROL.sub(" ", ascii_text).split())
    return line[:max(0, int(limit))].strip()


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities (not JSON) replaced by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def to_float16(x: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Little-endian float16 copy of ``x`` (..., dim) with the store's power-of-two scale.

    Returns
    -------
    y : ndarray of ``<f2``, same shape as ``x``
        ``x ~= y * scale``.
    scale : float
    rows : int
        Rows (last axis) with a NaN or infinite entry.
    """
    from grandtour.store import encode_float16

    y, scale, bad = encode_float16(np.asarray(x, dtype=np.float32))
    return y.astype("<f2", copy=False), float(scale), int(np.sum(bad))


def _shape(shape: Sequence[int]) -> str:
    return ",".join(str(int(s)) for s in shape)


def _floats(values: Sequence[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def _flags(values: Sequence[bool]) -> str:
    return ",".join("1" if v else "0" for v in values)


# ----------------------------------------------------------------------------- responses


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with ``status``, never cached."""
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def json_response(obj: Any, cache: str = "no-store") -> JSONResponse:
    """``obj`` as JSON, NaN -> null."""
    return JSONResponse(json_safe(obj), headers={"Cache-Control": cache})


def _cache_headers(etag: str) -> dict[str, str]:
    if etag:
        # Revalidate every time: a run re-created under the same directory gets a new tag.
        return {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    return {"Cache-Control": "no-store"}


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 if the request's ``If-None-Match`` names ``etag``; else None."""
    asked = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if etag and f'"{etag}"' in asked:
        return Response(status_code=304, headers=_cache_headers(etag))
    return None


def _safe(headers: dict[str, Any]) -> dict[str, str]:
    """Every contract header through :func:`header_text`; a value made of numbers passes
    unchanged, a name (``X-Previous``) or URL is made safe whatever the store holds."""
    return {k: header_text(v, limit=MAX_HEADER_VALUE) for k, v in headers.items()}


def _binary(data: np.ndarray, headers: dict[str, Any], etag: str = "") -> Response:
    return Response(content=np.ascontiguousarray(data).tobytes(), media_type=BINARY,
                    headers={**_safe(headers), **_cache_headers(etag)})


def float16_response(y: np.ndarray, scale: float, rows: int, *, etag: str = "",
                     reduced: tuple[int, int] | None = None) -> Response:
    """A float16 slice: ``y`` (float16, any shape) with its scale and non-finite row count.

    ``reduced = (r, dim)`` marks a layer sent in its fixed reduction (``X-Reduced``).
    """
    headers = {"X-Shape": _shape(y.shape), "X-Scale": repr(float(scale)), "X-Nonfinite": str(int(rows))}
    if reduced is not None:
        headers["X-Reduced"] = _shape(reduced)
    return _binary(np.asarray(y).astype("<f2", copy=False), headers, etag)


def int16_response(values: np.ndarray) -> Response:
    """Labels or predictions as int16, shape in ``X-Shape``."""
    values = np.asarray(values)
    return _binary(values.astype("<i2"), {"X-Shape": _shape(values.shape)})


def transition_response(t: Any, basis_url: str) -> Response:
    """A layer transition (:class:`grandtour.align.Transition`): float16 ``start`` then
    ``end``, each ``(N, k)``, one scale for both; its metadata in headers."""
    start, end = np.asarray(t.start), np.asarray(t.end)
    both, scale, rows = to_float16(np.concatenate([start, end], axis=0))
    headers = {
        "X-Shape": _shape(start.shape), "X-Scale": repr(float(scale)), "X-Nonfinite": str(rows),
        "X-Basis": basis_url, "X-Previous": t.previous, "X-Method": t.method,
        "X-Exact": "1" if t.exact else "0", "X-Variance-Kept": _floats(t.variance_kept),
        "X-Reduced": _flags(t.reduced)}
    if t.residual is not None and np.isfinite(t.residual):
        # Two significant digits: what the page shows, and the same on every BLAS.
        headers["X-Residual"] = f"{float(t.residual):.2g}"
    if t.note:
        headers["X-Note"] = header_text(t.note)
    return _binary(both, headers)


def basis_response(t: Any) -> Response:
    """A transition's orthogonal bases: float32 ``basis_in`` then ``basis_out``, row-major."""
    b_in, b_out = np.asarray(t.basis_in, "<f4"), np.asarray(t.basis_out, "<f4")
    return _binary(np.concatenate([b_in.reshape(-1), b_out.reshape(-1)]), {
        "X-Shape": _shape(b_in.shape + b_out.shape), "X-Basis-Names": "basis_in,basis_out"})


def atlas_response(png: bytes, layout: dict, etag: str = "") -> Response:
    """A PNG sprite atlas with its grid in ``X-Atlas``."""
    return Response(content=png, media_type="image/png", headers={
        **_safe({"X-Atlas": "{cols},{rows},{cell_w},{cell_h},{n}".format(**layout)}), **_cache_headers(etag)})
