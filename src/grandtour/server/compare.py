"""The comparisons' API: stored embeddings, correspondences, late classes and confusions.

Read-only, like the rest of the server: it serves what ``grandtour compare`` stored
(``RUN/comparisons``) and what :mod:`grandtour.analysis` computes from the run, and
never runs t-SNE or UMAP itself (a 404 says which command makes what is missing).

``GET /api/runs/{id}/compare/{layer}/{split}``
    ``{"methods": {method: {"epochs": [...], "seconds": {...}}}, "hybrid": {"umap8": [...]},
    "caveat": ...}``: what is stored for that layer.
``GET /api/runs/{id}/compare/{layer}/{split}/{method}/{epoch}``
    ``{"n": N, "xy": [x0, y0, x1, ...]}``: one stored picture (``method`` may also be a
    hybrid, ``umap<k>``: then ``"dims": k`` and ``"xy"`` holds N x k values).
``GET /api/runs/{id}/correspondence/{layer}/{split}/{method}/{a}/{b}``
    ``{"value": C}`` (``docs/compare.md``), from the stored pictures.
``GET /api/runs/{id}/analysis/{split}``
    ``{"late": [{"class", "epoch"}], "epochs": [...], "class_accuracy": E x C, "class_loss": E x C}``
    (per-class curves computed from the softmax for a run without metrics).
``GET /api/runs/{id}/confusions/{epoch}/{split}?k=3``
    The ranked confusions, each ``{"classes", "indices", "score", "projection", "interior",
    "layer", "epoch"}``.
"""

from __future__ import annotations

import re

import numpy as np
from fastapi import APIRouter

from grandtour.errors import GrandTourError
from grandtour.server import wire
from grandtour.server.guard import GuardedRoute, HttpError, not_found
from grandtour.server.runs import ServedRuns

_HYBRID = re.compile(r"^umap([0-9]{1,2})$")


def compare_routes(runs: ServedRuns) -> APIRouter:
    """The comparisons' routes over the served runs."""
    from grandtour import analysis
    from grandtour.compare.correspondence import correspondence_of
    from grandtour.compare.hybrid import CAVEAT, hybrid_key
    from grandtour.compare.methods import METHODS
    from grandtour.compare.storage import Comparisons, entry_key

    router = APIRouter(prefix="/api/runs", route_class=GuardedRoute)

    def stored_group(h):
        h.refresh()
        store = Comparisons.read(h.run)
        if store is None:
            raise not_found(f"run {h.id!r} has no comparisons; make them with `grandtour compare {h.run.path}`")
        return store

    def picture(h, store, layer, split, method, epoch):
        match = _HYBRID.match(method)
        section, key = (("hybrid", hybrid_key(split, layer, int(match.group(1)))) if match
                        else ("embeddings", entry_key(split, layer, method)))
        if not match and method not in METHODS:
            raise not_found(f"no method {method!r}; methods: {', '.join(METHODS)}, umap<k> (hybrid)")
        if epoch not in store.stored_epochs(section, key, h.run):
            raise not_found(f"no stored {method} picture of {layer} ({split}) at epoch {epoch}; make it with "
                            f"`grandtour compare {h.run.path} --layer {layer} --split {split}`")
        return store.get(section, key, epoch)

    @router.get("/{run_id}/compare/{layer}/{split}")
    def listing(run_id: str, layer: str, split: str):
        h = runs.get(run_id)
        h.layer_info(layer)
        h.check_split(split)
        h.refresh()
        store = Comparisons.read(h.run)
        out: dict = {"methods": {}, "hybrid": {}, "caveat": CAVEAT}
        if store is not None:
            with h.lock:
                for method in METHODS:
                    key = entry_key(split, layer, method)
                    epochs = store.stored_epochs("embeddings", key, h.run)
                    if epochs:
                        out["methods"][method] = {"epochs": epochs, "seconds": {
                            str(e): store.seconds("embeddings", key, e) for e in epochs}}
                prefix = f"{split}/{layer}/"
                for key in store.entries("hybrid"):
                    if key.startswith(prefix):
                        epochs = store.stored_epochs("hybrid", key, h.run)
                        if epochs:
                            out["hybrid"][key[len(prefix):]] = epochs
        return wire.json_response(out)

    @router.get("/{run_id}/compare/{layer}/{split}/{method}/{epoch}")
    def embedding(run_id: str, layer: str, split: str, method: str, epoch: str):
        h = runs.get(run_id)
        h.layer_info(layer)
        h.check_split(split)
        e = h.check_epoch(epoch)
        store = stored_group(h)
        with h.lock:
            Y = np.asarray(picture(h, store, layer, split, method, e), dtype=np.float64)
        return wire.json_response({"n": int(Y.shape[0]), "dims": int(Y.shape[1]),
                                   "xy": Y.reshape(-1).tolist()}, cache="no-cache")

    @router.get("/{run_id}/correspondence/{layer}/{split}/{method}/{a}/{b}")
    def corresponds(run_id: str, layer: str, split: str, method: str, a: str, b: str):
        h = runs.get(run_id)
        h.layer_info(layer)
        h.check_split(split)
        ea, eb = h.check_epoch(a), h.check_epoch(b)
        store = stored_group(h)
        with h.lock:
            Ya = picture(h, store, layer, split, method, ea)
            Yb = picture(h, store, layer, split, method, eb)
            value = correspondence_of(h.run.activations(layer, ea, split), h.run.activations(layer, eb, split),
                                      Ya, Yb)
        return wire.json_response({"value": value})

    @router.get("/{run_id}/analysis/{split}")
    def analyses(run_id: str, split: str):
        h = runs.get(run_id)
        h.check_split(split)
        h.refresh()
        with h.lock:
            try:
                epochs, acc, loss = analysis.class_curves(h.run, split)
                late = analysis.late_classes(h.run, split)
            except GrandTourError as err:
                # A run these analyses do not apply to (no softmax layer, no labels) is an answer,
                # not a missing resource: the page shows the reason instead of an error.
                return wire.json_response({"late": [], "epochs": [], "class_accuracy": [], "class_loss": [],
                                           "unavailable": str(err)})
        return wire.json_response({"late": [{"class": c, "epoch": e} for c, e in late], "epochs": epochs,
                                   "class_accuracy": acc.tolist(), "class_loss": loss.tolist()})

    @router.get("/{run_id}/confusions/{epoch}/{split}")
    def confused(run_id: str, epoch: str, split: str, k: int = 3):
        h = runs.get(run_id)
        h.check_split(split)
        e = h.check_epoch(epoch)
        if k not in (2, 3):
            raise HttpError(400, f"k must be 2 (pairs) or 3 (triples), got {k}")
        with h.lock:
            try:
                found = analysis.confusions(h.run, e, split, k=k)
            except GrandTourError:
                found = []  # no softmax layer: no confusions to list (the analysis route says why)
        return wire.json_response([c.to_json() for c in found])

    return router
