"""``grandtour align RUN --dask SCHEDULER``: the epochs of an alignment spread over a Dask cluster.

The process that runs the command holds the run's writer lock for the whole alignment
and alone commits. It first does serially what later epochs depend on, with
:func:`~grandtour.align.aligner.align_run` itself: the reductions of the wide layers and
the first epoch still to align (which stores the maps that do not change with
training). Every other epoch is one task on the cluster: a worker opens
the run (a local path every worker sees, or a URL), aligns the epoch's layers, each from
each of its inputs, writes their arrays into ``RUN/alignment/`` through the store
(:meth:`~grandtour.store.DerivedGroup.delegate`: arrays only, never the record) and
returns the epoch's record entry. The client commits the entries in epoch order, one
commit per epoch, as the serial command does, so the group is byte for byte the serial
one (``tests/test_distributed.py``) and an interrupted alignment resumes the same way.

A task is an epoch, not a (layer, epoch) pair: a layer's transition needs the
activations of its inputs at the same epoch, which an epoch's task reads once.

``SCHEDULER`` is the address of a running scheduler (``tcp://host:8786``) or
``local:N`` for a :class:`distributed.LocalCluster` of N single-threaded worker
processes on this machine.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grandtour.align.reduction import DEFAULT_THRESHOLD
from grandtour.errors import GrandTourError
from grandtour.store import Run, RunLock
from grandtour.store.location import is_remote

_LOCAL = re.compile(r"^local(?::(\d+))?$")


@contextmanager
def dask_client(scheduler: str):
    """A ``distributed.Client`` of ``scheduler`` (an address, or ``local:N``), closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise GrandTourError(f"--dask needs dask.distributed ({err}); install it: "
                             "pip install 'grandtour[cluster]'") from None
    text = str(scheduler).strip()
    m = _LOCAL.match(text)
    if m:
        n = int(m.group(1) or 2)
        if n < 1:
            raise GrandTourError(f"--dask {text}: a local cluster needs at least 1 worker (local:N)")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            yield client
        return
    if "://" not in text and ":" not in text:
        raise GrandTourError(f"--dask {text!r} is neither a scheduler address (tcp://host:8786) nor "
                             "local:N (a cluster of N worker processes on this machine)")
    try:
        client = Client(text, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise GrandTourError(f"cannot reach the Dask scheduler at {text} ({err}); start one "
                             "(`dask scheduler`) or use --dask local:N") from None
    with client:
        yield client


def _align_one_epoch(run_url: str, epoch: int, threshold: int, record: dict) -> tuple[int, dict, dict]:
    """A task: align ``epoch`` of the run, write its arrays, return its record entry."""
    from grandtour.align.aligner import Aligner, _align_epoch
    from grandtour.align.storage import ALIGNMENT_GROUP, _AlignmentStore
    from grandtour.store import DerivedGroup

    run = Run.open(run_url)
    store = _AlignmentStore(DerivedGroup.delegate(run.path, ALIGNMENT_GROUP, record))
    aligner = Aligner(run, threshold=threshold)
    aligner.store = store
    summary: dict[str, Any] = {"methods": {}, "fallbacks": {}}
    store.save = lambda: None  # the client commits, in epoch order
    _align_epoch(run, aligner, store, epoch, summary)
    return epoch, store.commit["epochs"][str(epoch)], summary


def align_run_dask(run_path, scheduler: str, epochs: Iterable[int] | None = None,
                   threshold: int = DEFAULT_THRESHOLD, force: bool = False, progress: bool = True) -> dict:
    """:func:`~grandtour.align.aligner.align_run` with the epochs spread over a Dask cluster.

    Same parameters and summary as ``align_run``, plus ``scheduler`` (see the module).
    The stored alignment is identical to the serial one.
    """
    from grandtour.align.aligner import align_run
    from grandtour.align.storage import _VERSION_KEY, ALIGNMENT_GROUP, ALIGNMENT_VERSION, _AlignmentStore

    run = Run.open(run_path.path if isinstance(run_path, Run) else run_path)
    url = str(run.path) if is_remote(run.path) else str(Path(run.path).resolve())
    with RunLock(run.path):  # held across both phases; align_run's writers share it
        requested = list(run.epochs) if epochs is None else sorted({int(e) for e in epochs})
        for e in requested:
            run.check_epoch(e)
        stored = _AlignmentStore.read(run) if not force else None
        done = set(stored.commit["epochs"]) if stored is not None and stored.threshold == int(threshold) else set()
        skipped = [e for e in requested if str(e) in done]
        todo = [e for e in requested if str(e) not in done]
        summary = align_run(run.path, epochs=todo[:1], threshold=threshold, force=force, progress=progress)
        summary["epochs_skipped"] = skipped
        rest = todo[1:]
        if not rest:
            return summary
        group = run.open_group(ALIGNMENT_GROUP, version_key=_VERSION_KEY, version=ALIGNMENT_VERSION)
        store = _AlignmentStore(group)
        try:
            with dask_client(scheduler) as client:
                record = copy.deepcopy(store.commit)
                futures = [client.submit(_align_one_epoch, url, e, int(threshold), record, pure=False)
                           for e in rest]
                for future in futures:  # commit in epoch order, as the serial command does
                    epoch, entry, part = future.result()
                    store.commit["epochs"][str(epoch)] = entry
                    store.save()
                    summary["epochs_aligned"].append(epoch)
                    summary["methods"].update(part["methods"])
                    for label, note in part["fallbacks"].items():
                        summary["fallbacks"].setdefault(label, note)
        finally:
            group.close()
    return summary
