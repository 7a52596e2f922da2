"""Derived groups of a run: what is computed from it (the alignment, the comparisons).

``RUN/<name>/`` is a Zarr v3 group plus its own commit record (``schema.COMMIT_FILE``),
written like the run itself: arrays first, the record replaced atomically last.
Readers trust only the record: an array it does not mention does not exist for them.
What the record holds is up to the owner of the group (``grandtour.align`` for
``alignment``); the store only asks that it is a JSON object with an integer version
under a key the owner names.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import StoreError
from grandtour.store import faults
from grandtour.store.codec import (
    ARRAY_CONFIG,
    checksum_ok,
    compressors,
    disk_errors,
    file_stamp,
    row_chunks,
    with_checksum,
    write_json_atomic,
    zarr_module,
)
from grandtour.store.layout import read_checked
from grandtour.store.location import as_path, rmtree, zarr_store
from grandtour.store.lock import RunLock
from grandtour.store.schema import CHECKSUM_KEY, COMMIT_FILE, DERIVED_GROUPS

# The command that (re)writes each group, for the message of a damaged one.
_WRITER_COMMAND = {"alignment": "grandtour align", "comparisons": "grandtour compare"}


def _check_group_name(name: str) -> str:
    if name not in DERIVED_GROUPS:
        raise ValueError(f"unknown derived group {name!r}; derived groups: {', '.join(DERIVED_GROUPS)}")
    return name


def _redo(name: str, run_path: Path) -> str:
    """What to do about a damaged group: rerun its command with --force."""
    return f"rerun with --force: `{_WRITER_COMMAND.get(name, 'grandtour')} {run_path} --force`"


def record_path(run_path: Path, name: str) -> Path:
    """The commit record of group ``name``: ``RUN/<name>/`` + ``schema.COMMIT_FILE``."""
    return as_path(run_path) / _check_group_name(name) / COMMIT_FILE


class DerivedGroup:
    """One derived group of a run, opened read-only or for writing.

    Use :meth:`Run.group`, :meth:`Run.open_group` or :meth:`Run.create_group`; do not
    construct it directly.

    Attributes
    ----------
    name : str
        One of :data:`~grandtour.store.schema.DERIVED_GROUPS`, e.g. ``"alignment"``.
    path : Path
        ``RUN/<name>``.
    record : dict
        The committed record, as read (or as given to :meth:`Run.create_group`). A writer
        changes it in place; :meth:`commit` persists it.
    stamp : tuple
        Identifies the record file read (or last committed): it changes whenever that
        file is replaced. Compare it with :meth:`Run.group_stamp` to see a new commit.

    A writable group holds the run's writer lock (:class:`~grandtour.store.lock.RunLock`)
    until :meth:`close` (or its garbage collection); ``with`` closes it.
    """

    def __init__(self, run_path: Path, name: str, record: dict, *, writable: bool, stamp: tuple,
                 lock: RunLock | None = None) -> None:
        self.name = _check_group_name(name)
        self.run_path = as_path(run_path)
        self.path = self.run_path / name
        self.record = record
        self.stamp = stamp
        self.writable = writable
        self._zarr_groups: dict[bool, Any] = {}
        self._lock = lock
        self._delegated = False
        self._release = weakref.finalize(self, lock.release) if lock is not None else None

    def __enter__(self) -> DerivedGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the writer lock of a writable group (idempotent); it can no longer write."""
        if self._release is not None:
            self._release()
        self.writable = False

    def __repr__(self) -> str:
        return f"DerivedGroup({self.name!r}, {str(self.path)!r}, writable={self.writable})"

    # -- opening --------------------------------------------------------------------

    @classmethod
    def load(cls, run_path: Path, name: str, *, version_key: str, version: int,
             writable: bool) -> DerivedGroup | None:
        """The committed group ``name`` of the run, None if it was never written.

        Raises
        ------
        StoreError
            If its record is unreadable or not a JSON object, or ``record[version_key]``
            is not an integer ``<= version`` (written by a newer grandtour).
        """
        cpath = record_path(run_path, name)
        if not cpath.is_file():
            return None
        lock = RunLock(run_path).acquire() if writable else None
        try:
            stamp = file_stamp(cpath)
            doc = _read_record(cpath, name, as_path(run_path), version_key)
            found = doc[version_key]
            if not isinstance(found, int) or isinstance(found, bool) or found > version:
                raise StoreError(f"{cpath} was written by a newer grandtour ({version_key} {found!r}; "
                                 f"this one reads up to {version}); upgrade grandtour, or "
                                 f"{_redo(name, as_path(run_path))}")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(run_path, name, doc, writable=writable, stamp=stamp, lock=lock)

    @classmethod
    def create(cls, run_path: Path, name: str, record: dict) -> DerivedGroup:
        """A new, empty group ``name`` with ``record`` committed; a previous one is deleted."""
        path = as_path(run_path) / _check_group_name(name)
        if not isinstance(record, dict):
            raise TypeError(f"the record of a derived group must be a dict, got {type(record).__name__}")
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise StoreError(f"{path} is not a directory (a file or a link); the {name} group of the "
                             "run goes there. Move it away and try again")
        lock = RunLock(run_path).acquire()
        try:
            with disk_errors(path, f"writing the {name} group"):
                if path.exists():
                    rmtree(path)  # only RUN/<name>: the run itself is untouched
                faults.point("group_cleared")
                path.mkdir(parents=True)
            group = cls(run_path, name, record, writable=True, stamp=(), lock=lock)
        except BaseException:
            lock.release()
            raise
        group.commit()
        return group

    @classmethod
    def delegate(cls, run_path, name: str, record: dict) -> DerivedGroup:
        """The group ``name`` for writing arrays on behalf of the process that holds the run's
        writer lock and commits (a task of ``grandtour align --dask``, on another process or
        host): it takes no lock and :meth:`commit` refuses. ``record`` is the holder's record
        as of the task's start (a copy is kept). What it writes stays invisible until the
        holder commits a record that lists it."""
        group = cls(run_path, name, json.loads(json.dumps(record)), writable=True, stamp=())
        group._delegated = True
        return group

    # -- arrays ---------------------------------------------------------------------

    def _zarr_group(self, writable: bool):
        if writable not in self._zarr_groups:
            zarr = zarr_module()
            self._zarr_groups[writable] = zarr.open_group(
                zarr_store(self.path, read_only=not writable),
                mode="a" if writable else "r", zarr_format=3)
        return self._zarr_groups[writable]

    def has(self, array: str) -> bool:
        """Whether the array ``array`` (a path in the group, e.g. ``"maps/fc1/3/basis_in"``) exists."""
        try:
            node = self._zarr_group(False)[array]
        except Exception:  # noqa: BLE001 - no group yet, or no such array
            return False
        return hasattr(node, "shape")

    def read(self, array: str) -> np.ndarray:
        """The whole array ``array``; StoreError naming the group, the array and the chunk
        if it is missing, fails its checksum or a chunk file is missing."""
        where = f"{self.name} array {array!r} in {self.path}"
        try:
            arr = self._zarr_group(False)[array]
            if not hasattr(arr, "shape"):
                raise TypeError("a group, not an array")
        except Exception as err:  # noqa: BLE001 - missing or unreadable metadata: a damaged group
            raise StoreError(f"{where} is missing or corrupt ({type(err).__name__}); "
                             f"{_redo(self.name, self.run_path)}") from None
        return read_checked(arr, self.path / array, array, where=where,
                            todo=_redo(self.name, self.run_path))

    def write(self, array: str, data: np.ndarray) -> None:
        """Write (or replace) the array ``array``: Zstandard level 1, chunked along its first axis.

        Not visible to readers until the record that lists it is committed.
        """
        self._check_writable()
        data = np.asarray(data)
        if data.ndim:  # ascontiguousarray would make a 0-d array 1-d
            data = np.ascontiguousarray(data)
        with disk_errors(self.path, f"writing {self.name} array {array!r}"):
            self._zarr_group(True).create_array(array, data=data, chunks=row_chunks(data),
                                                overwrite=True, compressors=compressors(),
                                                config=ARRAY_CONFIG)

    def commit(self) -> None:
        """Persist :attr:`record` atomically (readers see the old record or the new one)."""
        self._check_writable()
        if self._delegated:
            raise StoreError(f"the {self.name} group of {self.run_path} was opened to write arrays for the "
                             "process that holds the run's lock (DerivedGroup.delegate); that process commits")
        cpath = self.path / COMMIT_FILE
        if self._lock is not None:
            self._lock.confirm()  # on object storage: renew the lease now, or refuse if it was lost
        write_json_atomic(cpath, with_checksum(self.record))  # raises StoreError if the disk is full
        self.stamp = file_stamp(cpath)

    def _check_writable(self) -> None:
        if not self.writable:
            raise StoreError(f"the {self.name} group of {self.run_path} was opened read-only "
                             "(Run.group) or closed; open it with Run.open_group or Run.create_group "
                             "to write")


def _read_record(cpath: Path, name: str, run_path: Path, version_key: str) -> dict:
    """A group's record as a dict without its checksum; StoreError if it is damaged."""
    try:
        doc = json.loads(cpath.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
        doc[version_key]  # KeyError if absent
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"the {name} record {cpath} is corrupt ({type(err).__name__}: {err}); "
                         f"{_redo(name, run_path)}") from None
    if checksum_ok(doc) is False:
        raise StoreError(f"the {name} record {cpath} is corrupt: its checksum does not match its "
                         f"content (it was edited or damaged); {_redo(name, run_path)}")
    doc.pop(CHECKSUM_KEY, None)
    return doc
