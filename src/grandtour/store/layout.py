"""An open run directory: its root metadata, its commit record, its arrays by name.

:class:`Layout` is shared by the reader (:class:`~grandtour.store.Run`) and the writer
(:class:`~grandtour.store.RunWriter`); it also decides what a run directory is, and
what may be deleted when a run is replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import StoreError
from grandtour.store import integrity
from grandtour.store.codec import (
    ARRAY_CONFIG,
    checksum_ok,
    file_stamp,
    with_checksum,
    write_json_atomic,
    zarr_module,
)
from grandtour.store.location import as_path, remove_file, rmtree, walk_files, zarr_store
from grandtour.store.schema import (
    ADVERSARIAL,
    COMMIT_FILE,
    LOCK_FILE,
    MIN_STORE_VERSION,
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
from grandtour.store.validate import StoreKeyError, is_int

#: What to do about damage in a run's own files (not a derived group's).
RESTORE = "restore the run from a copy, or re-create it (`grandtour check RUN` lists all damage)"


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


def _own_entries(path: Path) -> list[str]:
    """The entries of ``path`` other than the lock file and temporary files."""
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE and not is_temp_entry(p.name))


def is_unfinished_creation(path: Path) -> bool:
    """A directory a ``RunWriter.create`` was killed in before its root metadata was written:
    nothing but the lock file (proof grandtour made it) and entries a run has."""
    if not (path / LOCK_FILE).is_file() or (path / ZARR_META).exists():
        return False
    return all(e in RUN_ENTRIES for e in _own_entries(path))


def missing_run_message(path: Path) -> str | None:
    """Why ``path`` cannot be opened as a run (and what to do), or None if it can."""
    if not path.exists():
        return (f"no run at {path}: the directory does not exist. Make one with "
                "`grandtour train --out DIR` or `grandtour import FILE.npz --out DIR`")
    if not path.is_dir():
        return f"{path} is a file, not a run directory; give the directory a run was written to"
    fresh = ("it was interrupted while being created, before its first commit, so it holds "
             "nothing to resume. Start it afresh: the same command with --overwrite (not --resume)")
    if not is_run_dir(path):
        if is_unfinished_creation(path):
            return f"{path} is an incomplete run: {fresh}"
        empty = " (it is empty)" if not _own_entries(path) else ""
        return (f"{path} is not a grandtour run{empty} (no {ZARR_META} with a '{VERSION_KEY}' "
                "attribute); give a directory written by `grandtour train` or `grandtour import`")
    if not (path / COMMIT_FILE).is_file():
        return f"{path} is an incomplete run: its commit record {COMMIT_FILE} is missing; {fresh}"
    return None


def check_version(version: Any, what: str) -> str | None:
    """Why a store version cannot be read (and what to do), or None if it can."""
    if not is_int(version) or version < MIN_STORE_VERSION:
        return (f"{what} has store version {version!r}, which no grandtour wrote (versions are "
                f"integers from {MIN_STORE_VERSION}); the file was edited or damaged: {RESTORE}")
    if version > STORE_VERSION:
        return (f"{what} was written with store version {version}; this grandtour reads versions "
                f"{MIN_STORE_VERSION} to {STORE_VERSION}. Upgrade grandtour")
    return None


class Layout:
    """Metadata and commit record of a run, shared by :class:`Run` and :class:`RunWriter`."""

    def __init__(self, path: Path, *, read_only: bool, verify_arrays: bool = True) -> None:
        path = as_path(path)
        msg = missing_run_message(path)
        if msg:
            raise StoreError(msg)
        zarr = zarr_module()
        self.path = path
        self.read_only = read_only
        try:
            self.root = zarr.open_group(
                zarr_store(path, read_only=read_only), mode="r" if read_only else "r+",
                zarr_format=3)
            attrs = dict(self.root.attrs)
        except Exception as err:  # noqa: BLE001 - any zarr failure here is a corrupt root
            raise StoreError(f"cannot read the root metadata {path / ZARR_META}: {err}. "
                             "The run is corrupt; re-create it") from None
        msg = check_version(RootMeta.version_of(attrs), f"the root metadata {path / ZARR_META}")
        if msg:
            raise StoreError(msg)
        if checksum_ok(attrs) is False:
            raise StoreError(f"the root metadata {path / ZARR_META} was changed or damaged: its "
                             f"checksum does not match its content; {RESTORE}")
        try:
            meta = RootMeta.from_attributes(attrs)
            self.sizes = {s: probe_size(meta.probes[s]) for s in meta.splits}
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"the root metadata {path / ZARR_META} lacks or garbles the field "
                             f"{err}; the run is corrupt, {RESTORE}") from None
        problems = root_problems(meta, self.sizes)
        if problems:
            raise StoreError(f"the root metadata {path / ZARR_META} is inconsistent: "
                             f"{'; '.join(problems[:3])}; {RESTORE}")
        self.meta = meta
        self.attrs = attrs
        self.integrity: int = meta.integrity
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
        problems = integrity.array_problems(self) if verify_arrays else []
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise StoreError(f"run {path} is damaged: {'; '.join(problems[:3])}{more}; the arrays' "
                             f"metadata disagrees with the run's; {RESTORE}")

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
        """The commit record, checked (checksum, version, consistency); StoreError if damaged."""
        cpath = self.commit_path
        corrupt = f"the commit record {cpath} is corrupt"
        lists = "it lists the completed epochs, so the run cannot be read"
        try:
            doc = json.loads(cpath.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise TypeError(f"expected an object, got {type(doc).__name__}")
        except FileNotFoundError:
            raise StoreError(f"the commit record {cpath} is missing; the run is incomplete. "
                             "Re-create it with --overwrite") from None
        except (OSError, ValueError, TypeError) as err:
            raise StoreError(f"{corrupt} ({err}); {lists}. {RESTORE}") from None
        found = checksum_ok(doc)
        if found is False or (found is None and self.integrity):
            why = "its checksum does not match its content" if found is False else "it has no checksum"
            raise StoreError(f"{corrupt}: {why} (it was edited or damaged); {lists}. {RESTORE}")
        msg = check_version(doc.get(VERSION_KEY), f"the commit record {cpath}")
        if msg:
            raise StoreError(msg)
        problems = integrity.commit_problems(doc, splits=self.splits, sizes=self.sizes,
                                             layers=self.layers)
        if problems:
            raise StoreError(f"{corrupt}: {'; '.join(problems[:3])}; {RESTORE}")
        try:
            return CommitRecord.from_json(doc)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise StoreError(f"{corrupt} ({err}); {lists}. {RESTORE}") from None

    def write_commit(self, record: CommitRecord) -> None:
        write_json_atomic(self.commit_path, with_checksum(record.to_json()))
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
        """The zarr array ``name``; writable layouts write chunks of fill values too."""
        try:
            node = self.root[name]
        except Exception:  # noqa: BLE001 - missing or unreadable metadata
            raise StoreError(f"array {name!r} of run {self.path} is missing or its metadata is "
                             f"corrupt; the run is damaged: {RESTORE}") from None
        if not hasattr(node, "shape"):
            raise StoreError(f"{name!r} in run {self.path} is a group, expected an array")
        return node if self.read_only else node.with_config(ARRAY_CONFIG)

    def read(self, name: str, index: Any = slice(None), *, slots: list[int] | None = None,
             rows: np.ndarray | None = None, context: str = "") -> np.ndarray:
        """Read ``arr[index]``: an int picks one slot (or step) of the leading axis.

        ``rows``: with an int ``index``, only those rows (sorted indices along the second
        axis) of that slot, and only the chunks that hold them are read and checked.

        ``slots``: for a whole read of an array with an epoch axis, the committed slots,
        whose chunks must exist (other slots may be partial). A chunk file missing where
        one was written, or one that fails its checksum, is a StoreError naming the array
        and the chunk. ``context`` (e.g. ``"epoch 3 (slot 3)"``) goes into the message.
        """
        return read_checked(self.array(name), self.path / name, name, index, slots=slots, rows=rows,
                            where=f"array {name!r} of run {self.path}", context=context,
                            todo=RESTORE)


def read_checked(arr: Any, array_dir: Path, name: str, index: Any = slice(None), *,
                 slots: list[int] | None = None, rows: np.ndarray | None = None, where: str,
                 context: str = "", todo: str) -> np.ndarray:
    """``arr[index]`` with the chunk checks of :meth:`Layout.read` (shared with derived groups)."""
    at = f" at {context}" if context else ""
    shape, chunks = tuple(arr.shape), tuple(arr.chunks)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if not is_int(index) or len(shape) < 2:
            raise ValueError("rows= reads rows of one slot: index must be an int")
        if rows.size and (rows.min() < 0 or rows.max() >= shape[1]):
            raise StoreKeyError(f"rows {int(rows.min())}..{int(rows.max())} are outside the "
                                f"{shape[1]} rows of {where}")
    if is_int(index):
        if not shape or not 0 <= index < shape[0]:
            raise StoreError(f"{where} is damaged{at}: index {index} is outside its shape {shape} "
                             f"(the metadata was changed); {todo}")
        leading: list[int] | None = [int(index)]
    elif slots is not None:
        if slots and (not shape or max(slots) >= shape[0]):
            raise StoreError(f"{where} is damaged: shape {shape} lacks slot {max(slots)}; {todo}")
        leading = list(slots)
    else:
        leading = None
    coords = integrity.chunk_coords(shape, chunks, leading)
    if rows is not None:
        held = {int(c) for c in np.unique(rows // int(chunks[1]))}
        coords = [c for c in coords if c[1] in held]
    # Arrays with a checksum codec were written with every chunk (fill values included), so
    # an absent chunk file is damage; older arrays may lack chunks that held only fill values.
    if _checksummed(arr):
        missing = integrity.missing_chunks(array_dir, arr, coords)
        if missing:
            raise StoreError(f"{where} is damaged{at}: chunk {', '.join(missing[:3])} "
                             f"{'is' if len(missing) == 1 else 'are'} missing ({array_dir / missing[0]} "
                             f"does not exist); {todo}")
    try:
        # `...`, not `:`, for a whole read: a 0-d array takes no slice.
        if rows is not None:
            return np.asarray(arr.oindex[index, rows])
        return np.asarray(arr[...] if index == slice(None) else arr[index])
    except Exception as err:  # noqa: BLE001 - a chunk that fails its checksum or does not decode
        bad = _bad_chunks(arr, coords, shape, chunks)
        which = f"chunk {', '.join(bad[:3])} " if bad else ""
        raise StoreError(f"{where} is damaged{at}: {which}fails its checksum or does not decode "
                         f"({type(err).__name__}: {err}); {todo}") from None


def _checksummed(arr: Any) -> bool:
    """Whether the array's chunks carry a crc32c checksum (so every chunk was written)."""
    from zarr.codecs import Crc32cCodec

    return any(isinstance(c, Crc32cCodec) for c in getattr(arr.metadata, "codecs", ()))


def _bad_chunks(arr: Any, coords: list, shape: tuple, chunks: tuple) -> list[str]:
    """The keys of the chunks in ``coords`` that do not read (the error path only)."""
    bad = []
    for c in coords:
        try:
            arr[integrity.chunk_region(c, shape, chunks)]
        except Exception:  # noqa: BLE001
            bad.append(arr.metadata.encode_chunk_key(c))
    return bad


def root_problems(meta: RootMeta, sizes: dict[str, int]) -> list[str]:
    """What is inconsistent in the root metadata itself (names, counts, sizes)."""
    from grandtour.store.schema import MAX_CLASSES, NAME

    problems = []
    if not 1 <= len(meta.class_names) <= MAX_CLASSES:
        problems.append(f"{len(meta.class_names)} class names (1..{MAX_CLASSES} allowed)")
    names = [layer.name for layer in meta.layers]
    if not names or len(set(n.lower() for n in names)) != len(names):
        problems.append(f"layer names {names} are empty or not unique")
    for layer in meta.layers:
        if not NAME.match(layer.name) or not layer.shape or any(s <= 0 for s in layer.shape):
            problems.append(f"layer {layer.name!r} has a bad name or shape {layer.shape}")
    if not meta.splits or len(set(meta.splits)) != len(meta.splits):
        problems.append(f"splits {meta.splits} are empty or not unique")
    for split in meta.splits:
        if not isinstance(split, str) or not NAME.match(split):
            problems.append(f"split {split!r} is not a valid name")
        elif not is_int(sizes.get(split)) or sizes[split] < 0:
            problems.append(f"split {split!r} has size {sizes.get(split)!r}")
    return problems


def check_directory(path: Path, overwrite: bool, *, locked: bool = True) -> None:
    """Refuse ``path`` as the directory of a new run unless it is absent, empty, or (with
    ``overwrite``) a grandtour run. Never deletes anything.

    Call it with ``locked=False`` before taking the lock (it then refuses only what is no
    run: no lock file is written there) and again under the lock: whether a run exists
    is decided by the lock's holder, so a second creator is told who is writing it.
    """
    if path.is_symlink():
        raise StoreError(f"{path} is a symbolic link; give the real directory for the run")
    if not path.exists():
        return
    if not path.is_dir():
        raise StoreError(f"{path} exists and is a file; choose another path for the run")
    entries = _own_entries(path)
    if not entries:
        return
    if not is_run_dir(path) and not is_unfinished_creation(path):
        raise StoreError(
            f"{path} exists and is not a grandtour run (it holds {', '.join(entries[:5])}"
            f"{', ...' if len(entries) > 5 else ''}); refusing to write into it or delete "
            "it, even with overwrite. Choose another path")
    foreign = [e for e in entries if e not in RUN_ENTRIES]
    if foreign:
        raise StoreError(f"{path} is a grandtour run but also holds {', '.join(foreign)}; "
                         "refusing to delete it. Move those files or choose another path")
    if locked and not overwrite:
        raise StoreError(f"a run already exists at {path}; pass overwrite=True (--overwrite) "
                         "to replace it, or resume it (--resume)")


def clear_directory(path: Path) -> None:
    """Delete everything in the (locked) run directory ``path`` but its lock file.

    The lock file stays: deleting it would let a second writer lock a new one while the
    first still holds the old.
    """
    for entry in path.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            rmtree(entry)
        else:
            entry.unlink()


def remove_leftovers(path: Path, commit: CommitRecord | None = None) -> None:
    """Delete what a killed writer left: temporary files (zarr's ``*.partial``, our
    ``.*.tmp``) and, given the commit record, adversarial generations it does not list.

    Only under the writer lock: another writer's temporary files would be deleted too.
    """
    for dirpath, f in walk_files(path):
        if is_temp_leftover(f):
            remove_file(dirpath, f)
    if commit is None:
        return
    keep = {entry.path for entry in commit.adversarial.values()}
    adv = path / ADVERSARIAL
    for record in (adv.iterdir() if adv.is_dir() else ()):
        for generation in (record.iterdir() if record.is_dir() else ()):
            rel = f"{ADVERSARIAL}/{record.name}/{generation.name}"
            if generation.is_dir() and generation.name.isdigit() and rel not in keep:
                rmtree(generation, ignore_errors=True)
