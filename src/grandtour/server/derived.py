"""The article's hybrid in the page: each stored ``--hybrid umap:k`` as a run of its own.

``grandtour compare RUN --hybrid umap:k`` keeps, per epoch, a UMAP of one layer into k
dimensions (:mod:`grandtour.compare.hybrid`). For the Grand Tour and direct manipulation
to run on it with everything the page has (epoch play, the legend, brushing, colour by
prediction, thumbnails), the server offers it as one more run, listed after its source:
id ``<source id>~<split>-<layer>-umap<k>``, one layer ``<layer>.umap<k>`` of kind
``hybrid``, one split (the one embedded), the epochs embedded, each centred at its mean
(UMAP's coordinates have no meaningful origin, and the page keeps the origin in view),
the source's labels, predictions and images. Its meta carries ``derived``: ``{"kind": "hybrid", "source",
"layer", "split", "dims", "caveat"}``, and the page shows the caveat (it is no longer a
linear image of the activations) for as long as it is open.

The derived run is written with :meth:`Run.from_arrays` into a scratch directory the app
owns (removed with it), when the server starts: a hybrid made after that is served from
the next start (the page's run list says what is served).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from grandtour.server.runs import ServedRun


def _derived_runs(h: ServedRun, scratch: Path) -> list[ServedRun]:
    from grandtour.compare.hybrid import CAVEAT
    from grandtour.compare.storage import Comparisons
    from grandtour.store import Run

    store = Comparisons.read(h.run)
    if store is None:
        return []
    out = []
    for key in sorted(store.entries("hybrid")):
        split, rest = key.split("/", 1)
        layer, method = rest.rsplit("/", 1)
        epochs = store.stored_epochs("hybrid", key, h.run)
        if not epochs or split not in h.run.splits:
            continue
        Z = np.stack([np.asarray(store.get("hybrid", key, e), np.float64) for e in epochs])
        Z = (Z - Z.mean(axis=1, keepdims=True)).astype(np.float32)  # UMAP's origin means nothing: centred
        name = f"{layer}.{method}"
        more = {}
        preds = np.stack([h.run.predictions(e, split) for e in epochs])
        if (preds >= 0).all():  # recorded at every epoch embedded (else: colour by label only)
            more["predictions"] = preds
        rid = f"{h.id}~{split}-{layer}-{method}".replace("/", "_")
        path = scratch / rid
        run = Run.from_arrays(path, {name: Z}, h.run.labels(split), class_names=h.run.class_names, split=split,
                              epochs=epochs, layer_kinds={name: "hybrid"}, images=h.run.images(split),
                              indices=h.run.indices(split), dataset=h.run.dataset,
                              layer_configs={name: {"method": "umap", "dims": int(Z.shape[-1]), "source": layer}},
                              **more)
        out.append(ServedRun(id=rid, path=path, run=run, label=f"{h.name} · {method} of {layer} ({split}, hybrid)",
                             derived={"kind": "hybrid", "source": h.id, "layer": layer, "split": split,
                                      "dims": int(Z.shape[-1]), "caveat": CAVEAT}))
    return out


def with_hybrids(handles: list[ServedRun]) -> tuple[list[ServedRun], tempfile.TemporaryDirectory | None]:
    """``handles`` with each one's stored hybrids after it, and the scratch directory
    that holds them (None when there are none); the caller keeps it for the app's life."""
    scratch = tempfile.TemporaryDirectory(prefix="grandtour-hybrid-")
    out: list[ServedRun] = []
    for h in handles:
        out.append(h)
        out.extend(_derived_runs(h, Path(scratch.name)))
    if len(out) == len(handles):
        scratch.cleanup()
        return handles, None
    return out, scratch
