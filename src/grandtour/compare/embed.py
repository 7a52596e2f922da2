"""``embed``: a layer's 2-D embeddings epoch by epoch, computed once and kept in the run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grandtour import defaults
from grandtour.compare import methods
from grandtour.compare.storage import Comparisons, entry_key
from grandtour.errors import GrandTourError
from grandtour.store import Run


def open_run(run) -> Run:
    """``run`` itself, or the run at that path; refreshed so new epochs count."""
    if isinstance(run, Run):
        run.refresh()
        return run
    return Run.open(Path(run))


def check_epochs(run: Run, epochs: Sequence[int] | None) -> list[int]:
    """The chosen epochs (default: all completed ones), each checked, sorted, distinct."""
    chosen = list(run.epochs) if epochs is None else [run.check_epoch(e) for e in epochs]
    if not chosen:
        raise GrandTourError(f"run {run.path} has no completed epochs to embed")
    return sorted(set(chosen))


def settings_of(method: str, seed: int, lam: float) -> dict:
    """What an embedding depends on besides the data: a stored one with other settings is redone."""
    doc: dict = {"seed": int(seed)}
    if method in ("tsne", "dtsne"):
        doc["perplexity"] = defaults.TSNE_PERPLEXITY
    if method in ("tsne", "dtsne", "umap"):
        doc["pca_dims"] = defaults.COMPARE_PCA_DIMS
    if method == "umap":
        doc["n_neighbors"] = defaults.UMAP_NEIGHBORS
    if method == "dtsne":
        doc["lambda"] = float(lam)
    return doc


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing in a log or a test.
    return tqdm(total=total, desc=desc, unit="epoch", disable=None if progress else True, leave=False)


def embed(run, layer: str, method: str, epochs: Sequence[int] | None = None, split: str = "test", *,
          seed: int = defaults.SEED, lam: float = defaults.DTSNE_LAMBDA, progress: bool = True,
          force: bool = False) -> np.ndarray:
    """The 2-D pictures of ``layer`` at ``epochs`` by ``method``, stored in the run.

    Parameters
    ----------
    run : Run or path
    layer : str
    method : {"linear", "pca", "tsne", "dtsne", "umap"}
        See :mod:`grandtour.compare.methods`; ``dtsne`` embeds the chosen epochs jointly.
    epochs : sequence of int, optional
        Default: every completed epoch.
    split : str
    seed : int
    lam : float
        Dynamic t-SNE's temporal-coherence weight (``dtsne`` only).
    progress : bool
        Show a progress bar (on a terminal).
    force : bool
        Recompute what is stored.

    Returns
    -------
    ndarray of shape (E, N, 2), float32
        In the order of the sorted, distinct ``epochs``.

    Already stored epochs (same settings, same run data) are read, not recomputed; each
    newly computed epoch is committed as soon as it is done, so an interrupted call
    keeps what it finished. ``dtsne`` is stored for exactly the epoch set it embedded.
    """
    run = open_run(run)
    method = methods.check_method(method)
    run.layer(layer)
    run.check_split(split)
    chosen = check_epochs(run, epochs)
    key = entry_key(split, layer, method)
    with Comparisons.open(run) as store:
        todo = plan(store, run, layer, method, chosen, split, seed=seed, lam=lam, force=force)
        for epoch, Y, seconds in compute(run, layer, method, todo, split, seed=seed, lam=lam,
                                         progress=progress):
            store.put("embeddings", key, run, epoch, Y, seconds)
        return np.stack([store.get("embeddings", key, e) for e in chosen]).astype(np.float32)


def plan(store: Comparisons, run: Run, layer: str, method: str, chosen: list[int], split: str, *,
         seed: int, lam: float, force: bool) -> list[int]:
    """The epochs of ``chosen`` still to embed by ``method`` (its entry started or kept for
    these settings): all of ``chosen`` for ``dtsne`` when any is missing (it embeds them
    jointly), else the per-epoch ones not stored for the run's current data."""
    key = entry_key(split, layer, method)
    joint = None if method in methods.PER_EPOCH else chosen
    entry = store.start("embeddings", key, settings_of(method, seed, lam), joint)
    if force:
        entry["epochs"].clear()
    have = set(store.stored_epochs("embeddings", key, run))
    todo = [e for e in chosen if e not in have]
    return todo if method in methods.PER_EPOCH or not todo else list(chosen)


def compute(run: Run, layer: str, method: str, epochs: Sequence[int], split: str, *, seed: int,
            lam: float = defaults.DTSNE_LAMBDA, progress: bool = False):
    """Yield ``(epoch, picture, seconds)`` for each of ``epochs`` embedded by ``method``: one
    at a time for a per-epoch method (each yielded when done), all at the end for ``dtsne``
    (one joint embedding of ``epochs``; ``seconds`` its time divided among them). The one
    computation of both ``embed`` and a task of ``compare --dask``."""
    if not epochs:
        return
    if method in methods.PER_EPOCH:
        function = methods.PER_EPOCH_FUNCTIONS[method]
        with _bar(len(epochs), f"{method} {layer}", progress) as bar:
            for epoch in epochs:
                X = methods.check_points(run.activations(layer, epoch, split), f"{layer} at epoch {epoch}")
                t0 = time.perf_counter()
                Y = function(X, seed)
                yield epoch, Y, time.perf_counter() - t0
                bar.update(1)
        return
    Xs = [methods.check_points(run.activations(layer, e, split), f"{layer} at epoch {e}") for e in epochs]
    from tqdm.auto import tqdm

    from grandtour.compare.dynamic_tsne import SCHEDULE, dynamic_tsne

    iterations = sum(n for n, _, _ in SCHEDULE)
    with tqdm(total=iterations, desc=f"dtsne {layer}", unit="it", leave=False,
              disable=None if progress else True) as bar:
        t0 = time.perf_counter()
        Ys = dynamic_tsne(Xs, seed=seed, lam=lam, progress=lambda: bar.update(1))
        per_epoch = (time.perf_counter() - t0) / len(epochs)
    for epoch, Y in zip(epochs, Ys):
        yield epoch, Y, per_epoch


def _by_stored_epoch(run, layer: str, method: str, split: str, read) -> dict:
    """``{epoch: read(store, key, epoch)}`` over the stored epochs of (split, layer, method)."""
    run = open_run(run)
    store = Comparisons.read(run)
    if store is None:
        return {}
    key = entry_key(split, layer, method)
    return {e: read(store, key, e) for e in store.stored_epochs("embeddings", key, run)}


def stored(run, layer: str, method: str, split: str = "test") -> dict[int, np.ndarray]:
    """The stored pictures of (split, layer, method) by epoch, read-only (``{}`` if none)."""
    return _by_stored_epoch(run, layer, method, split, lambda store, key, e: store.get("embeddings", key, e))


def stored_seconds(run, layer: str, method: str, split: str = "test") -> dict[int, float]:
    """Seconds each stored epoch of (split, layer, method) took to embed."""
    return _by_stored_epoch(run, layer, method, split, lambda store, key, e: store.seconds("embeddings", key, e))
