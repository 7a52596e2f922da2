"""The ASGI application: the API routers over the served runs, then the page's files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from grandtour.server.serving import LOOPBACK_HOSTS, require_web_stack


def create_app(run_paths: Sequence[str | os.PathLike], *, web_dir: str | os.PathLike | None = None,
               allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS, token: str | None = None):
    """The ASGI application serving the viewer page and the runs at ``run_paths``.

    Parameters
    ----------
    run_paths : sequence of str or Path
        Run directories; each gets an id (the slug of its directory name) in this order.
    web_dir : str or Path, optional
        The page's directory (default: the package's ``web/``). Nothing outside it is served.
    allowed_hosts : iterable of str or None
        Accepted ``Host`` header names (any port). None accepts every name: only for an
        app behind a server that checks ``Host`` itself (:func:`~grandtour.server.serve`
        never passes None).
    token : str, optional
        The access token every request must carry (``?token=``, its cookie, or
        ``Authorization: token ...``; see :mod:`grandtour.server.guard`). None: none asked.

    Returns
    -------
    fastapi.FastAPI
        Its ``state.runs`` is the list of served runs (:class:`~grandtour.server.runs.ServedRun`),
        ``state.token`` the token (or None).

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
    require_web_stack()
    from fastapi import FastAPI

    from grandtour.server import guard
    from grandtour.server.derived import with_hybrids
    from grandtour.server.routes import API_ROUTERS
    from grandtour.server.runs import ServedRuns, open_runs
    from grandtour.server.static import WEB_DIR, static_routes

    handles, scratch = with_hybrids(open_runs(run_paths))  # each stored hybrid, a run of its own
    runs = ServedRuns(handles)
    web_root = Path(web_dir).resolve() if web_dir is not None else WEB_DIR
    app = FastAPI(title="grandtour", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.route_class = guard.GuardedRoute
    app.state.runs = runs.handles
    app.state.hybrid_scratch = scratch  # the derived runs' directory lives as long as the app
    app.state.token = token or None
    guard.install(app, allowed_hosts, token or None)
    for routes in API_ROUTERS:
        app.include_router(routes(runs))
    from grandtour.server.compare import compare_routes

    app.include_router(compare_routes(runs))  # the comparisons and analyses (issue 11)
    app.include_router(static_routes(web_root))  # last: it catches every other path
    return app
