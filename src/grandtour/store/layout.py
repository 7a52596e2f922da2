"""An open run directory: its root metadata, its commit record, its arrays by name.

:class:`Layout` is shared by the reader (:class:`~grandtour.store.Run`) and the writer
(:class:`~grandtour.store.RunWriter`); it also decides what a run directory is, and
what may be deleted when a run is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import StoreError
from grandtour.store.codec import file_stamp, write_json_atomic, zarr_module
from grandtour.store.schema import (
    COMMIT_FILE,
    RUN_ENTRIES,
    STORE_VERSION,
    VERSION_KEY,
    ZARR_META,
    CommitRecord,
    LayerInfo,
    RootMeta,
    is_run_metadata,
    is_temp_entry,
    is_temp_leftover,
    probe_size,
)
from grandtour.store.validate import StoreKeyError


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a grandtour run's root metadata (complete or not)."""
    meta = path / ZARR_META
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return is_run_metadata(doc)


def missing_run_message(path: Path) -> str | None:
    """Why ``path`` cannot be opened as a run (and what to do), or None if it can."""
    if not path.exists():
        return (f"no run at {path}: the directory does not exist. Make one with "
                "`grandtour train --out DIR` or `grandtour import FILE.npz --out DIR`")
    if not path.is_dir():
        return f"{path} is a file, not a run directory; give the directory a run was written to"
    if not is_run_dir(path):
        return (f"{path} is not a grandtour run (no {ZARR_META} with a '{VERSION_KEY}' "
                "attribute); give a directory written by `grandtour train` or `grandtour import`")
    if not (path / COMMIT_FILE).is_file():
        return (f"{path} is an incomplete run: its commit record {COMMIT_FILE} is missing (it was "
                "interrupted while being created). Create it again with --overwrite")
    return None


class Layout:
    """Metadata and commit record of a run, shared by :class:`Run` and :class:`RunWriter`."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        msg = missing_run_message(path)
        if msg:
            raise StoreError(msg)
        zarr = zarr_module()
        self.path = path
        self.read_only = read_only
        try:
            self.root = zarr.open_group(
                zarr.storage.LocalStore(path, read_only=read_only), mode="r" if read_only else "r+",
                zarr_format=3)
            attrs = dict(self.root.attrs)
        except Exception as err:  # noqa: BLE001 - any zarr failure here is a corrupt root
            raise StoreError(f"cannot read the root metadata {path / ZARR_META}: {err}. "
                             "The run is corrupt; re-create it") from None
        version = RootMeta.version_of(attrs)
        if not isinstance(version, int) or version > STORE_VERSION:
            raise StoreError(f"{path} was written with store version {version!r}; this grandtour "
                             f"reads versions up to {STORE_VERSION}. Upgrade grandtour")
        try:
            meta = RootMeta.from_attributes(attrs)
            self.sizes = {s: probe_size(meta.probes[s]) for s in meta.splits}
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"the root metadata {path / ZARR_META} lacks or garbles the field "
                             f"{err}; the run is corrupt, re-create it") from None
        self.meta = meta
        self.dataset: str = meta.dataset
        self.class_names: list[str] = meta.class_names
        self.layers: list[LayerInfo] = meta.layers
        self.splits: list[str] = meta.splits
        self.probe_info: dict[str, dict] = meta.probes
        self.config: dict = meta.config
        self.created: str = meta.created
        self.uid: str = meta.uid
        self.by_name = {layer.name: layer for layer in self.layers}
        self.commit = self.read_commit()

    def recreated(self) -> bool:
        """Whether the run was re-created in place since this layout read its metadata.

        A new run in the same directory has a new ``created`` time or ``uid``; reading
        the small root metadata file is enough to tell (False if it cannot be read now:
        reading the commit record then reports what is wrong).
        """
        try:
            doc = json.loads((self.path / ZARR_META).read_text(encoding="utf-8"))
            meta = RootMeta.identity_of(doc["attributes"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return meta != (self.created, self.uid)

    @property
    def commit_path(self) -> Path:
        return self.path / COMMIT_FILE

    def commit_stamp(self) -> tuple:
        """Changes whenever the commit record is replaced (stat-based, no read)."""
        return file_stamp(self.commit_path)

    def read_commit(self) -> CommitRecord:
        cpath = self.commit_path
        try:
            return CommitRecord.from_json(json.loads(cpath.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise StoreError(f"the commit record {cpath} is missing; the run is incomplete. "
                             "Re-create it with --overwrite") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise StoreError(f"the commit record {cpath} is corrupt ({err}); it lists the completed "
                             "epochs, so the run cannot be read. Re-create it") from None

    def write_commit(self, record: CommitRecord) -> None:
        write_json_atomic(self.commit_path, record.to_json())
        self.commit = record

    def layer(self, name: str) -> LayerInfo:
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise StoreKeyError(f"no layer {name!r} in run {self.path}; layers: "
                                f"{', '.join(self.by_name)}") from None

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise StoreKeyError(f"no split {split!r} in run {self.path}; splits: "
                                f"{', '.join(self.splits)}")
        return split

    def array(self, name: str):
        try:
            node = self.root[name]
        except Exception:  # noqa: BLE001 - missing or unreadable metadata
            raise StoreError(f"array {name!r} of run {self.path} is missing or its metadata is "
                             "corrupt; the run is damaged, re-create it") from None
        if not hasattr(node, "shape"):
            raise StoreError(f"{name!r} in run {self.path} is a group, expected an array")
        return node

    def read(self, name: str, index: Any = slice(None)) -> np.ndarray:
        arr = self.array(name)
        try:
            return np.asarray(arr[index])
        except Exception as err:  # noqa: BLE001 - a chunk that does not decode
            raise StoreError(f"array {name!r} of run {self.path} is corrupt (reading {index!r} "
                             f"failed: {type(err).__name__}: {err}); re-create the run") from None


def prepare_directory(path: Path, overwrite: bool) -> None:
    """Make ``path`` an empty directory, deleting it first only if it is a grandtour run."""
    if path.is_symlink():
        raise StoreError(f"{path} is a symbolic link; give the real directory for the run")
    if path.exists():
        if not path.is_dir():
            raise StoreError(f"{path} exists and is a file; choose another path for the run")
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            if not is_run_dir(path):
                raise StoreError(
                    f"{path} exists and is not a grandtour run (it holds {', '.join(entries[:5])}"
                    f"{', ...' if len(entries) > 5 else ''}); refusing to write into it or delete "
                    "it, even with overwrite. Choose another path")
            foreign = [e for e in entries if e not in RUN_ENTRIES and not is_temp_entry(e)]
            if foreign:
                raise StoreError(f"{path} is a grandtour run but also holds {', '.join(foreign)}; "
                                 "refusing to delete it. Move those files or choose another path")
            if not overwrite:
                raise StoreError(f"a run already exists at {path}; pass overwrite=True (--overwrite) "
                                 "to replace it, or resume it (--resume)")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def remove_leftovers(path: Path) -> None:
    """Delete temporary files a killed writer left (zarr's ``*.partial``, our ``.*.tmp``)."""
    for dirpath, _, files in os.walk(path):
        for f in files:
            if is_temp_leftover(f):
                try:
                    os.unlink(os.path.join(dirpath, f))
                except OSError:
                    pass
