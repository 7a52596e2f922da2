"""The article's proposed hybrid: UMAP to a few dimensions, then the Grand Tour on those.

``hybrid(run, layer, k)`` embeds each epoch of ``layer`` with UMAP into ``k``
dimensions and keeps the result in ``RUN/comparisons/hybrid/``: a derived layer the
Grand Tour and direct manipulation can run on (the viewer reads it from the
comparisons endpoints). The caveat, stated in the page: the tour of it is linear in
the UMAP coordinates, **no longer linear in the activations**, so what the article
proves about linear views (a change of the picture is a change of the data) does not
hold for it; and UMAP is fitted per epoch, so its axes mean different things at
different epochs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from grandtour import defaults
from grandtour.compare import methods
from grandtour.compare.embed import check_epochs, open_run, settings_of
from grandtour.compare.storage import Comparisons, entry_key
from grandtour.errors import GrandTourError

#: What a hybrid's caveat says wherever it is shown.
CAVEAT = ("UMAP, then the Grand Tour: views are linear in the UMAP coordinates, no longer in the "
          "activations, so a change of the picture need not be a change of the data")


def parse_hybrid(text: str) -> tuple[str, int]:
    """``"umap:8"`` -> ``("umap", 8)``; GrandTourError if it is not ``umap:<k>``, 3 <= k <= 64."""
    name, _, k = str(text).partition(":")
    try:
        dims = int(k)
    except ValueError:
        dims = -1
    if name != "umap" or not 3 <= dims <= 64:
        raise GrandTourError(f"--hybrid takes umap:<k> with 3 <= k <= 64 dimensions, got {text!r}")
    return name, dims


def hybrid_key(split: str, layer: str, dims: int) -> str:
    return entry_key(split, layer, f"umap{int(dims)}")


def hybrid(run, layer: str, dims: int, epochs: Sequence[int] | None = None, split: str = "test", *,
           seed: int = defaults.SEED, progress: bool = True) -> np.ndarray:
    """UMAP of ``layer`` into ``dims`` dimensions at each epoch, ``(E, N, dims)`` float32, stored."""
    from tqdm.auto import tqdm

    run = open_run(run)
    run.layer(layer)
    run.check_split(split)
    chosen = check_epochs(run, epochs)
    key = hybrid_key(split, layer, dims)
    with Comparisons.open(run) as store:
        store.start("hybrid", key, {**settings_of("umap", seed, 0.0), "dims": int(dims)})
        have = set(store.stored_epochs("hybrid", key, run))
        todo = [e for e in chosen if e not in have]
        for epoch in tqdm(todo, desc=f"hybrid umap:{dims} {layer}", unit="epoch", leave=False,
                          disable=None if progress else True):
            X = methods.check_points(run.activations(layer, epoch, split), f"{layer} at epoch {epoch}")
            t0 = time.perf_counter()
            Z = methods.umap(X, seed, n_components=int(dims))
            store.put("hybrid", key, run, epoch, Z, time.perf_counter() - t0)
        return np.stack([store.get("hybrid", key, e) for e in chosen]).astype(np.float32)
