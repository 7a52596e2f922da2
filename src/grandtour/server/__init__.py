"""``grandtour serve``: a local web server for the viewer and the runs it shows.

The server only reads: the page (``grandtour/web/``) and run stores
(:mod:`grandtour.store`). It binds to 127.0.0.1 unless told otherwise, answers only
requests whose ``Host`` is this machine or a name given with ``--allow-host``, on every
bind address (so a web page elsewhere cannot read the runs through DNS rebinding), asks
for an access token when it can be reached from elsewhere (``?token=``, printed like
Jupyter's), serves no file outside the web directory and no run holding a link out of
itself, and takes run ids, never paths, from clients (:mod:`~grandtour.server.guard`).

The page asks only for URLs relative to itself, so it works under any path prefix a
proxy adds (``https://hub.example.org/user/me/proxy/8787/``).

HTTP API (all GET, and HEAD; every error is JSON ``{"error": "..."}``)
----------------------------------------------------------------------
``/api/runs``
    ``[{"id", "name", "dataset", "epochs", "live"}]``, in the order the runs were given.
``/api/runs/{id}/meta``
    ``{"id", "name", "dataset", "class_names", "layers": [{"name", "kind", "shape", "dim",
    "static", "module", "config", "reduced_dim"?, "variance_kept"?}], "splits", "epochs",
    "sizes": {split: N}, "images": {split: [C, H, W] or null}, "adversarial": [names],
    "config", "live", "aligned", "nonfinite": {epoch: {split: {layer: rows}}}}``
    (``nonfinite`` lists only the non-zero counts). The epochs are re-read on every
    request. ``reduced_dim`` and ``variance_kept`` (of the pooled variance) are given for
    a wide layer that ``grandtour align`` stored in a fixed reduction. ``extent``: the
    scale the page draws the layer at, the largest over its epochs and splits of the 99th
    percentile of its rows' norms as sent (so the page loads no epoch to fix it); for a
    large run, given for each layer once the server has computed it.
``/api/runs/{id}/activations/{layer}/{epoch}/{split}``
    raw little-endian float16, row-major ``(N, dim)`` (``(N, reduced_dim)`` for a reduced
    layer, with ``X-Reduced: r,dim``); ``X-Shape: N,dim``, ``X-Scale: s`` (multiply by
    ``s``), ``X-Nonfinite: rows``; ``ETag`` (revalidate with ``If-None-Match``).
``/api/runs/{id}/labels/{split}``, ``/api/runs/{id}/predictions/{epoch}/{split}``
    int16 ``(N,)``, ``X-Shape: N`` (a prediction of -1 was not recorded).
``/api/runs/{id}/metrics/{split}``
    ``{"epochs", "loss", "accuracy", "class_loss", "class_accuracy"}``, NaN -> null; for a
    run that recorded no per-class metrics (an import) but has a softmax layer, the
    per-class curves computed from it, and ``"computed"`` saying so.
``/api/runs/{id}/images/{split}`` and ``.../images/{split}/layout``
    a PNG sprite atlas of the probe thumbnails (see :func:`sprite_atlas`) with
    ``X-Atlas: cols,rows,cell_w,cell_h,N``; the layout as JSON.
``/api/runs/{id}/transition/{layer}/{epoch}/{split}`` and ``.../basis``
    the layer transition of :mod:`grandtour.align`: float16 ``start`` then ``end``
    ``(N, k)``, with ``X-Previous``, ``X-Method``, ``X-Exact``, ``X-Residual`` (the
    relative residual of its check, two significant digits; absent when not checked) and
    ``X-Note``; float32 ``basis_in`` then ``basis_out`` (see :func:`create_app`).
``/api/runs/{id}/adversarial/{name}``, ``.../{name}/predictions``, ``.../{name}/images``,
``.../{name}/{layer}``
    the record's metadata (JSON), its predictions (int16 ``(S+1, M)``), its images as a
    sprite atlas (step-major: cell ``s * M + j``), one layer (float16 ``(S+1, M, dim)``,
    ``X-Shape: S1,M,dim``, ``X-Scale``). ``predictions`` and ``images`` take precedence
    over layers so named.

Static files: ``/`` is ``index.html``; ``/static/PATH`` and ``/PATH`` are ``web/PATH``.

The package, in the order a request meets it: :mod:`~grandtour.server.guard` (request
limits, the ``Host`` check, the token, JSON errors), :mod:`~grandtour.server.routes` (one router per resource),
:mod:`~grandtour.server.runs` (the served runs, their caches and URL checks),
:mod:`~grandtour.server.wire` (the one definition of the bytes and headers sent),
:mod:`~grandtour.server.atlas` (thumbnail sprite atlases), :mod:`~grandtour.server.static`
(the page's files); :mod:`~grandtour.server.app` assembles them and
:mod:`~grandtour.server.serving` binds and runs the server.
"""

from __future__ import annotations

from typing import Any

from grandtour.server.atlas import sprite_atlas
from grandtour.server.serving import DEFAULT_HOST, DEFAULT_PORT, ServerThread, serve, serve_command

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerThread",
    "create_app",
    "serve",
    "serve_command",
    "sprite_atlas",
]


def __getattr__(name: str) -> Any:
    # create_app needs FastAPI: imported on first use, so that `grandtour serve` without
    # the viewer extra says which package to install (a GrandTourError), not ImportError.
    if name == "create_app":
        from grandtour.server.serving import require_web_stack

        require_web_stack()
        from grandtour.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
