"""``grandtour compare RUN --dask SCHEDULER``: the embeddings spread over a Dask cluster.

The process that runs the command holds the run's writer lock throughout and alone
commits the comparisons' record. It plans what is missing exactly as the serial command
does (:func:`~grandtour.compare.embed.plan`: settings, ``--force``, what is stored for the
run's current data), then submits one task per (method, epoch) of a per-epoch method
(``linear``, ``pca``, ``tsne``, ``umap``) and one task per (layer, split) for ``dtsne``,
whose epochs are one joint optimisation (the coherence term ties each epoch's picture to
the next), so its epochs cannot be split. A worker opens the run (a path every worker
sees, or a URL), computes the pictures with :func:`~grandtour.compare.embed.compute`, the
serial command's own code, writes them into ``RUN/comparisons/`` through the store
(:meth:`~grandtour.store.DerivedGroup.delegate`: arrays only) and returns their times; the
client lists each in the record and commits, one commit per finished task, in the order
the serial command computes them. Every method is seeded and single-threaded, so the
pictures are the serial ones (``tests/test_distributed.py``); an interrupted command keeps
the tasks it committed, and the next one computes the rest.

``SCHEDULER`` is read by the same parser as ``align --dask``
(:func:`grandtour.align.distributed.dask_client`): ``tcp://host:8786`` or ``local:N``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from grandtour import defaults
from grandtour.compare import methods
from grandtour.compare.embed import check_epochs, compute, open_run, plan
from grandtour.compare.storage import Comparisons, entry_key
from grandtour.store import DerivedGroup, Run
from grandtour.store.location import is_remote
from grandtour.store.schema import COMPARISONS_GROUP

# The runs a worker process has open, by location: a task reuses one (its metadata read
# once) while the epochs it is asked for carry the tokens the client saw.
_OPEN: dict[str, Run] = {}


def _worker_run(where: str, tokens: dict[int, str]) -> Run:
    run = _OPEN.get(where)
    if run is not None and any(run.epoch_token(e) != t for e, t in tokens.items()):
        run.refresh()
    if run is None or any(run.epoch_token(e) != t for e, t in tokens.items()):
        run = _OPEN[where] = Run.open(where)
    return run


def _embed_task(where: str, layer: str, method: str, epochs: list[int], split: str, seed: int, lam: float,
                tokens: dict[int, str], record: dict) -> list[tuple[int, float]]:
    """A task: embed ``epochs`` by ``method``, write the pictures, return ``(epoch, seconds)``."""
    from grandtour.errors import StoreError

    run = _worker_run(where, tokens)
    if any(run.epoch_token(e) != t for e, t in tokens.items()):
        raise StoreError(f"run {where} as a worker reads it is not the run the client compares "
                         "(re-created meanwhile?); run the command again")
    store = Comparisons(DerivedGroup.delegate(run.path, COMPARISONS_GROUP, record))
    key = entry_key(split, layer, method)
    done = []
    for epoch, Y, seconds in compute(run, layer, method, epochs, split, seed=seed, lam=lam):
        store.write("embeddings", key, epoch, Y)
        done.append((int(epoch), float(seconds)))
    return done


def embed_dask(run, layer: str, chosen_methods: Sequence[str], epochs: Sequence[int] | None, split: str,
               scheduler: str, *, seed: int = defaults.SEED, lam: float = defaults.DTSNE_LAMBDA,
               force: bool = False) -> int:
    """Store the pictures of ``layer`` by each of ``chosen_methods`` at ``epochs`` (as
    :func:`~grandtour.compare.embed.embed` would, method by method), computed on the Dask
    cluster ``scheduler``. Returns the number of tasks run (0: everything was stored)."""
    from grandtour.align.distributed import dask_client

    run = open_run(run)
    run.layer(layer)
    run.check_split(split)
    chosen = check_epochs(run, epochs)
    where = str(run.path) if is_remote(run.path) else str(Path(run.path).resolve())
    with Comparisons.open(run) as store:
        work: list[tuple[str, list[int]]] = []
        for method in chosen_methods:
            method = methods.check_method(method)
            todo = plan(store, run, layer, method, chosen, split, seed=seed, lam=lam, force=force)
            if method in methods.PER_EPOCH:
                work += [(method, [e]) for e in todo]
            elif todo:
                work.append((method, todo))
        if not work:
            return 0
        store.commit()  # the entries started (or cleared by force) before any task lists into them
        record = copy.deepcopy(store.group.record)  # as of the tasks' start; the client changes its own
        with dask_client(scheduler) as client:
            futures = [client.submit(_embed_task, where, layer, method, todo, split, int(seed), float(lam),
                                     {e: run.epoch_token(e) for e in todo}, record, pure=False)
                       for method, todo in work]
            for (method, _), future in zip(work, futures):  # in the serial command's order
                key = entry_key(split, layer, method)
                for epoch, seconds in future.result():
                    store.note("embeddings", key, run, epoch, seconds)
                store.commit()
    return len(work)
