"""The HTTP API, one router per resource (documented in :mod:`grandtour.server`).

Each handler checks every URL part against its run (:class:`~grandtour.server.runs.ServedRun`)
before it touches the store, and answers through :mod:`grandtour.server.wire`.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Request

from grandtour.errors import GrandTourError
from grandtour.server import wire
from grandtour.server.guard import GuardedRoute, HttpError, not_found
from grandtour.server.runs import ServedRun, ServedRuns


def _router() -> APIRouter:
    return APIRouter(prefix="/api/runs", route_class=GuardedRoute)


# ----------------------------------------------------------------------------- runs


def _layer_doc(h: ServedRun, info: Any) -> dict:
    doc = {"name": info.name, "kind": info.kind, "shape": list(info.shape), "dim": info.dim,
           "static": bool(info.static), "module": info.module, "config": info.config,
           # The graph's edges (main path first); a chain run lists the layer before.
           "inputs": list(h.run.inputs(info.name))}
    red = h.reduction(info.name)
    if red is not None:  # shown as (N, r) in a fixed reduction, the same for every epoch
        doc.update(reduced_dim=int(red.rank), variance_kept=float(red.variance_kept))
    return doc


def _nonfinite(run: Any) -> dict:
    """``{epoch: {split: {layer: rows}}}``, the non-zero counts only."""
    out = {}
    for e in run.epochs:
        counts = {s: {k: c for k, c in per.items() if c} for s, per in run.nonfinite(e).items()}
        counts = {s: per for s, per in counts.items() if per}
        if counts:
            out[str(e)] = counts
    return out


def meta_document(h: ServedRun) -> dict:
    """What ``/api/runs/{id}/meta`` says of run ``h`` (its epochs re-read first)."""
    h.refresh()
    run = h.run
    extents = h.extents()
    layers = [_layer_doc(h, i) for i in run.layers]
    for doc in layers:
        if doc["name"] in extents:  # the fixed scale of the layer: the page loads no epoch for it
            doc["extent"] = extents[doc["name"]]
    return {
        **h.summary(), "class_names": run.class_names, "layers": layers,
        "splits": run.splits, "sizes": {s: run.size(s) for s in run.splits},
        "images": {s: (h.probes.get(s) or {}).get("images") for s in run.splits},
        "adversarial": run.adversarial_names(), "config": run.config, "nonfinite": _nonfinite(run),
        "aligned": h.alignment()[1] is not None and not h.alignment_error,
        **({"alignment_error": h.alignment_error} if h.alignment_error else {}),
        **({"derived": h.derived} if h.derived else {})}


def run_routes(runs: ServedRuns) -> APIRouter:
    """``/api/runs`` and ``/api/runs/{id}/meta``."""
    router = _router()

    @router.get("")
    def list_runs():
        for h in runs:
            with contextlib.suppress(HttpError):  # a refused run is listed; its requests say why
                h.refresh()
        return wire.json_response([h.summary() for h in runs])

    @router.get("/{run_id}/meta")
    def meta(run_id: str):
        return wire.json_response(meta_document(runs.get(run_id)))

    return router


# ----------------------------------------------------------------------------- slices


def _computed_curves(h: ServedRun, split: str, m: dict) -> dict:
    """For a run that recorded no per-class metric at any epoch (an import), the per-class
    accuracy and loss computed from its softmax layer and labels
    (:func:`grandtour.analysis.class_curves`), with ``computed`` saying so; ``{}`` when some
    were recorded (those are what is shown, gaps and all) or they cannot be computed."""
    from grandtour import analysis

    recorded = np.isfinite(m["class_loss"]).any() or np.isfinite(m["class_accuracy"]).any()
    if not h.run.epochs or recorded:
        return {}
    try:
        _, acc, loss = analysis.class_curves(h.run, split)
    except GrandTourError:  # no softmax layer: nothing to compute them from
        return {}
    return {"class_accuracy": acc.tolist(), "class_loss": loss.tolist(),
            "computed": "from the softmax layer and the labels (no per-class metrics were recorded)"}


def slice_routes(runs: ServedRuns) -> APIRouter:
    """Activations, labels, predictions and metrics of the probe sets."""
    router = _router()

    @router.get("/{run_id}/activations/{layer}/{epoch}/{split}")
    def activations(run_id: str, layer: str, epoch: str, split: str, request: Request):
        h = runs.get(run_id)
        info = h.layer_info(layer)
        h.check_split(split)
        e = h.check_epoch(epoch)
        red = h.reduction(layer)
        tag = h.activations_tag(info, e, split, reduced=red is not None)
        cached = wire.not_modified(request, tag)
        if cached is not None:
            return cached
        if red is None:
            y, scale = h.run.activations_float16(layer, e, split)
            return wire.float16_response(y, scale, h.run.nonfinite(e)[split][layer], etag=tag)
        y, scale, rows = wire.to_float16(h.coordinates(layer, e, split))
        return wire.float16_response(y, scale, rows, etag=tag, reduced=(red.rank, info.dim))

    @router.get("/{run_id}/labels/{split}")
    def labels(run_id: str, split: str):
        h = runs.get(run_id)
        return wire.int16_response(h.run.labels(h.check_split(split)))

    @router.get("/{run_id}/predictions/{epoch}/{split}")
    def predictions(run_id: str, epoch: str, split: str):
        h = runs.get(run_id)
        h.check_split(split)
        return wire.int16_response(h.run.predictions(h.check_epoch(epoch), split))

    @router.get("/{run_id}/metrics/{split}")
    def metrics(run_id: str, split: str):
        h = runs.get(run_id)
        h.check_split(split)
        h.refresh()
        with h.lock:  # the epochs and the slots they are read from must agree
            m = h.run.metrics(split)
            epochs = list(h.run.epochs)
            computed = _computed_curves(h, split, m)
        values = {k: np.asarray(v, np.float64).tolist() for k, v in m.items()}
        return wire.json_response({"epochs": epochs, **values, **computed})  # NaN -> null

    return router


# ----------------------------------------------------------------------------- images


def image_routes(runs: ServedRuns) -> APIRouter:
    """The probe thumbnails of a split as one sprite atlas, and its layout."""
    router = _router()

    def probe_atlas(h: ServedRun, split: str) -> tuple[bytes, dict]:
        return h.atlas(("probe", split), lambda: h.run.images(split), f"split {split!r}")

    @router.get("/{run_id}/images/{split}")
    def images(run_id: str, split: str, request: Request):
        h = runs.get(run_id)
        h.check_split(split)
        tag = h.images_tag(split)
        cached = wire.not_modified(request, tag)
        if cached is not None:
            return cached
        png, layout = probe_atlas(h, split)
        return wire.atlas_response(png, layout, tag)

    @router.get("/{run_id}/images/{split}/layout")
    def images_layout(run_id: str, split: str):
        h = runs.get(run_id)
        h.check_split(split)
        return wire.json_response(probe_atlas(h, split)[1])

    return router


# ----------------------------------------------------------------------------- transitions


def transition_routes(runs: ServedRuns) -> APIRouter:
    """The layer transitions of :mod:`grandtour.align` and their bases."""
    router = _router()

    def transition_of(h: ServedRun, layer: str, epoch: str, split: str,
                      source: str | None) -> tuple[int, Any]:
        h.layer_info(layer)
        h.check_split(split)
        e = h.check_epoch(epoch)
        inputs = h.run.inputs(layer)
        if not inputs:
            raise not_found(f"layer {layer!r} is the first layer of run {h.id!r}: transitions "
                            "go from the previous layer into a layer")
        if source is not None and source not in inputs:
            raise not_found(f"{source[:80]!r} is not an input of layer {layer!r} in run {h.id!r}; "
                            f"its inputs: {', '.join(inputs)}")
        return e, h.transition(layer, e, split, source if source != inputs[0] else None)

    def basis_url(run_id: str, layer: str, e: int, split: str, source: str | None) -> str:
        # Percent-encoded: a layer or split may be named in any script (the header is ASCII).
        parts = "/".join(quote(str(p), safe="") for p in (run_id, "transition", layer, e, split, "basis"))
        return f"/api/runs/{parts}" + (f"?source={quote(source, safe='')}" if source is not None else "")

    @router.get("/{run_id}/transition/{layer}/{epoch}/{split}")
    def transition(run_id: str, layer: str, epoch: str, split: str, source: str | None = None):
        """The transition into ``layer`` from ``source``, one of its inputs (default: the
        first, the main path): a merge has one per input."""
        h = runs.get(run_id)
        e, t = transition_of(h, layer, epoch, split, source)
        return wire.transition_response(t, basis_url(run_id, layer, e, split, source))

    @router.get("/{run_id}/transition/{layer}/{epoch}/{split}/basis")
    def transition_basis(run_id: str, layer: str, epoch: str, split: str, source: str | None = None):
        h = runs.get(run_id)
        return wire.basis_response(transition_of(h, layer, epoch, split, source)[1])

    return router


# ----------------------------------------------------------------------------- adversarial


def adversarial_routes(runs: ServedRuns) -> APIRouter:
    """An adversarial record: metadata, predictions, images and one layer per step.

    ``predictions`` and ``images`` are registered first: they take precedence over
    layers so named.
    """
    router = _router()

    @router.get("/{run_id}/adversarial/{name}")
    def adversarial(run_id: str, name: str):
        rec = runs.get(run_id).adversarial_record(name)
        return wire.json_response({
            "name": name, "source": rec.source, "target": rec.target, "eps": rec.eps,
            "epoch": rec.epoch, "split": rec.split, "steps": rec.steps,
            "example_index": [int(i) for i in rec.example_index], "layers": list(rec.layers),
            "target_loss": np.asarray(rec.target_loss, np.float64).tolist()})

    @router.get("/{run_id}/adversarial/{name}/predictions")
    def adversarial_predictions(run_id: str, name: str):
        return wire.int16_response(runs.get(run_id).adversarial_record(name).predictions)

    @router.get("/{run_id}/adversarial/{name}/images")
    def adversarial_images(run_id: str, name: str):
        h = runs.get(run_id)
        rec = h.adversarial_record(name)

        def make() -> np.ndarray:
            imgs = rec.images()  # (S+1, M, C, H, W): step-major cells
            return imgs.reshape((-1,) + imgs.shape[2:])

        key = ("adversarial", name, h.adversarial_tag(name))  # a rewritten record is a new key
        png, layout = h.atlas(key, make, f"adversarial record {name!r}")
        return wire.atlas_response(png, layout)

    @router.get("/{run_id}/adversarial/{name}/{layer}")
    def adversarial_layer(run_id: str, name: str, layer: str):
        rec = runs.get(run_id).adversarial_record(name)
        if layer not in rec.layers:
            raise not_found(f"adversarial record {name!r} has no layer {layer!r}; layers: "
                            f"{', '.join(rec.layers)}")
        y, scale, rows = wire.to_float16(rec.activations(layer))  # (S+1, M, dim)
        return wire.float16_response(y, scale, rows)

    return router


#: Every API router, in the order they are registered.
API_ROUTERS = (run_routes, slice_routes, image_routes, transition_routes, adversarial_routes)
