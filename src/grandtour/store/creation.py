"""Creating a run directory: lock it, write its root, its arrays, and its first commit record.

Used by :meth:`grandtour.store.RunWriter.create`, which validates everything first.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from grandtour.store import faults
from grandtour.store.codec import (
    ARRAY_CONFIG,
    compressors,
    disk_errors,
    rows_per_chunk,
    with_checksum,
    write_json_atomic,
    zarr_module,
)
from grandtour.store.layout import clear_directory
from grandtour.store.location import zarr_store
from grandtour.store.lock import RunLock
from grandtour.store.schema import (
    ACTIVATIONS,
    ADVERSARIAL,
    CLASS,
    COMMIT_FILE,
    DIM,
    EXAMPLE,
    LOCK_FILE,
    METRIC_NAMES,
    METRICS,
    PARAMS,
    PREDICTIONS,
    PROBES,
    SLOT,
    CommitRecord,
    LayerInfo,
    is_per_class,
)

UNDO_CREATION_S = 5.0  # s: how long a failed creation's clean-up waits for zarr's writes


def lock_new_directory(path: Path) -> tuple[RunLock, Path | None]:
    """Make ``path`` (and missing parents) and take its writer lock.

    Returns the lock and the topmost directory this call made (None if ``path`` existed),
    which :func:`undo_creation` removes if the creation fails.
    """
    made = None
    if not path.exists():
        made = path
        while not made.parent.exists() and made.parent != made:
            made = made.parent
    with disk_errors(path, "creating the run directory"):
        path.mkdir(parents=True, exist_ok=True)
    try:
        return RunLock(path).acquire(), made
    except BaseException:
        # Another writer holds it: touch nothing of theirs, only remove the directories this
        # call made if they are still empty.
        for d in ([path, *path.parents] if made is not None else []):
            try:
                d.rmdir()
            except OSError:
                break
            if d == made:
                break
        raise


def undo_creation(path: Path, made: Path | None) -> None:
    """Remove what a failed :meth:`RunWriter.create` wrote (best effort, under its lock).

    Zarr writes chunks concurrently: when one write fails, the others already started
    still land, some of them after a first clean-up (a directory then is not empty, or
    comes back). So the clean-up is repeated until nothing reappears for a moment, for a
    few seconds at most.
    """
    deadline = time.monotonic() + UNDO_CREATION_S
    while True:
        try:
            _remove_created(path, made)
            time.sleep(0.05)  # anything still in flight shows up by now
            if not _anything_left(path, made):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _remove_created(path: Path, made: Path | None) -> None:
    if path.exists():
        clear_directory(path)
    if made is None:
        return
    (path / LOCK_FILE).unlink(missing_ok=True)
    for d in [path, *path.parents]:
        if d.exists():
            d.rmdir()  # only empty directories
        if d == made:
            break


def _anything_left(path: Path, made: Path | None) -> bool:
    if made is not None:
        return made.exists()
    return any(e.name != LOCK_FILE for e in path.iterdir())


def write_new_run(path: Path, attributes: dict, probe_arrays: dict, probe_docs: dict,
                   layers: list[LayerInfo], splits: list[str], n_classes: int) -> None:
    """The root metadata, the probe arrays, every (empty) array, then the commit record."""
    zarr = zarr_module()
    # create_group, not open_group(mode="w"): that would empty the directory, lock file included.
    root = zarr.create_group(store=zarr_store(path), zarr_format=3, attributes=attributes)
    faults.point("create_root")
    comp = compressors()
    for split in splits:
        g = root.require_group(PROBES).require_group(split)
        for name, arr in probe_arrays[split].items():
            row = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.itemsize
            g.create_array(name, data=arr, chunks=(rows_per_chunk(arr.shape[0], row),) + arr.shape[1:],
                           compressors=comp, config=ARRAY_CONFIG)
        n = probe_docs[split]["size"]
        acts = root.require_group(ACTIVATIONS).require_group(split)
        for layer in layers:
            dim = int(math.prod(layer.shape))
            acts.create_array(layer.name, shape=(1 if layer.static else 0, n, dim),
                              chunks=(1, rows_per_chunk(n, 2 * dim), dim), dtype="float16",
                              fill_value=np.nan, compressors=comp, config=ARRAY_CONFIG,
                              dimension_names=(SLOT, EXAMPLE, DIM))
        root.require_group(PREDICTIONS).create_array(
            split, shape=(0, n), chunks=(1, n), dtype="int16", fill_value=-1,
            compressors=comp, config=ARRAY_CONFIG, dimension_names=(SLOT, EXAMPLE))
        mg = root.require_group(METRICS).require_group(split)
        for name in METRIC_NAMES:
            per_class = is_per_class(name)
            mg.create_array(name, shape=(0, n_classes) if per_class else (0,),
                            chunks=(1, n_classes) if per_class else (1,), dtype="float64",
                            fill_value=np.nan, compressors=compressors(False), config=ARRAY_CONFIG,
                            dimension_names=(SLOT, CLASS) if per_class else (SLOT,))
    root.require_group(PARAMS)
    root.require_group(ADVERSARIAL)
    faults.point("create_arrays")
    # Last: until the commit record exists, the directory is not a readable run.
    write_json_atomic(path / COMMIT_FILE, with_checksum(CommitRecord().to_json()))
