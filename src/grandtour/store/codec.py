"""How values are encoded on disk: float16 with a power-of-two scale, chunks, JSON records.

Zarr is imported lazily (:func:`zarr_module`): ``grandtour --help`` must work without
the ``store`` extra.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from grandtour import defaults
from grandtour.errors import StoreError
from grandtour.store import faults
from grandtour.store.schema import CHECKSUM_KEY, temp_name

#: Largest finite float16. Larger activations are stored divided by a power of two.
FLOAT16_MAX = 65504.0
#: Largest finite |activation| a run takes: reads return float32, and a value read back
#: is ``float16 * scale`` with float16 rounding up by at most 2**-11 (so a margin below
#: float32's 3.4028e38). A larger finite value is refused, never turned into inf or NaN.
FLOAT32_SAFE_MAX = float(np.finfo(np.float32).max) / (1 + 2.0**-10)
#: Largest chunk we aim for; only the first (example, or row) axis is split to stay under it.
CHUNK_BYTES = defaults.CHUNK_BYTES
#: Zstandard level of every compressed array: on ReLU activations stored as float16,
#: ~0.6 of the raw size, at ~3x the speed of level 3.
ZSTD_LEVEL = 1


def zarr_module():
    """The ``zarr`` package, imported on first use."""
    import zarr  # imported lazily: `grandtour --help` must work without the store extra

    return zarr


def compressors(compress: bool = True) -> list:
    """The bytes-to-bytes codecs of every array: Zstandard (unless ``compress`` is False,
    for tiny arrays), then a crc32c checksum of the stored bytes, verified on every read."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return ([ZstdCodec(level=ZSTD_LEVEL)] if compress else []) + [Crc32cCodec()]


#: The runtime configuration of every array the store writes: a chunk holding only the
#: fill value is written too (zarr skips it by default), so a chunk file missing from a
#: committed slot is damage, never "all fill values".
ARRAY_CONFIG = {"write_empty_chunks": True}


def now() -> str:
    """The current time, ISO 8601 in UTC to the second (``created``, ``written``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def rows_per_chunk(n: int, row_bytes: int) -> int:
    """Rows of ``row_bytes`` bytes each per chunk, so a chunk stays under :data:`CHUNK_BYTES`."""
    return max(1, min(n, CHUNK_BYTES // max(1, row_bytes)))


def row_chunks(data: np.ndarray) -> tuple[int, ...]:
    """Chunks of a whole array: split along the first axis only, ``()`` for a scalar."""
    if not data.ndim:
        return ()
    row = int(np.prod(data.shape[1:], dtype=np.int64)) * data.itemsize
    return (rows_per_chunk(data.shape[0], row),) + tuple(data.shape[1:])


# ----------------------------------------------------------------------------- float16


def encode_float16(x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Float16 copy of ``x`` (..., dim), a power-of-two scale, and per-row non-finite flags.

    Values are stored as ``x / scale``; ``scale`` is the smallest power of two that brings
    the largest finite ``|x|`` under the float16 maximum (65504), so finite values never
    become ``inf``. Non-finite values from the model are kept as they are.

    Returns
    -------
    y : ndarray of float16, same shape as x
    scale : float, a power of two (1.0 unless some ``|x| > 65504``)
    bad_rows : ndarray of bool, shape ``x.shape[:-1]``: rows with a NaN or infinite entry
    """
    finite = np.isfinite(x)
    bad_rows = ~finite.all(axis=-1)
    peak = finite_peak(x, finite)
    if peak > FLOAT32_SAFE_MAX:
        raise StoreError(f"an activation of magnitude {peak:.4g} is beyond what a run stores "
                         f"({FLOAT32_SAFE_MAX:.4g}, about float32's largest value: reads return "
                         "float32); rescale the activations before writing them")
    scale = 1.0
    if peak > FLOAT16_MAX:
        k = math.ceil(math.log2(peak / FLOAT16_MAX))
        while peak / 2.0**k > FLOAT16_MAX:  # guard against log2 rounding
            k += 1
        scale = 2.0**k
        x = x / scale  # exact: dividing by a power of two
    with np.errstate(over="ignore", under="ignore"):
        y = x.astype(np.float16)
    return y, scale, bad_rows


def finite_peak(x: np.ndarray, finite: np.ndarray | None = None) -> float:
    """The largest finite ``|x|`` (0 if none), in float64 whatever the dtype of ``x``."""
    if x.size == 0:
        return 0.0
    if finite is None:
        finite = np.isfinite(x)
    if finite.all():
        return float(np.abs(x).max())
    return float(np.abs(x[finite]).max()) if finite.any() else 0.0


def decode_float16(y: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`encode_float16`: ``y * scale`` as float32."""
    out = y.astype(np.float32)
    if scale != 1.0:
        with np.errstate(over="ignore"):
            out *= np.float32(scale)
    return out


# ----------------------------------------------------------------------------- JSON


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, type)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def jsonable(obj: Any, what: str) -> Any:
    """Round-trip through JSON so what is held in memory is exactly what a reader gets."""
    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what} must be JSON-serialisable (str, numbers, lists, dicts): {err}") from None


def json_checksum(doc: dict) -> str:
    """Checksum of a JSON record, all fields but :data:`~schema.CHECKSUM_KEY` (canonical form)."""
    body = {k: v for k, v in doc.items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_checksum(doc: dict) -> dict:
    """``doc`` plus its checksum (a new dict)."""
    return {**{k: v for k, v in doc.items() if k != CHECKSUM_KEY}, CHECKSUM_KEY: json_checksum(doc)}


def checksum_ok(doc: dict) -> bool | None:
    """True if ``doc`` carries a matching checksum, False if it does not match, None if absent."""
    if CHECKSUM_KEY not in doc:
        return None
    return doc[CHECKSUM_KEY] == json_checksum(doc)


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (pid and random token: never shared)."""
    return path.with_name(temp_name(path.name, os.getpid(), secrets.token_hex(4)))


def write_json_atomic(path: Path, obj: Any, *, stage: str = "commit_tmp") -> None:
    """Write JSON so a reader sees either the old file or the new one, never a torn one.

    Locally the temporary file has a unique name and is removed if the write fails (disk
    full, read-only directory: a :class:`StoreError` saying so); on object storage the
    record is one ``PUT`` (:func:`grandtour.store.location.replace_atomic`). ``stage`` is
    the fault point before the switch (:mod:`grandtour.store.faults`).
    """
    from grandtour.store.location import replace_atomic

    data = json.dumps(obj, indent=1).encode("utf-8")
    with disk_errors(path, "writing a record"):
        replace_atomic(path, data, before_replace=lambda: faults.point(stage))


# ----------------------------------------------------------------------------- disk errors

#: errno values that mean "this directory cannot be written".
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def disk_error_message(err: OSError, path: Path, doing: str) -> str:
    """What went wrong writing under ``path``, and what to do."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device holding {path} while {doing}; nothing was "
                "committed, so the run holds what it held before. Free some space, then "
                "resume (--resume), or write the run elsewhere")
    if err.errno in _READ_ONLY:
        return (f"cannot write to {path} while {doing}: {err.strerror or err}; the directory is "
                "read-only or not yours. Choose a directory you can write to (--out)")
    return f"cannot write to {path} while {doing}: {type(err).__name__}: {err}"


@contextmanager
def disk_errors(path: Path, doing: str) -> Iterator[None]:
    """Turn an OSError of a write (disk full, read-only) into a StoreError saying so."""
    try:
        yield
    except StoreError:
        raise
    except OSError as err:
        raise StoreError(disk_error_message(err, Path(path), doing)) from None


def file_stamp(path: Path) -> tuple:
    """A token that changes whenever ``path`` is replaced: (inode, mtime ns, size); () if absent.

    :func:`write_json_atomic` renames a new file into place, so the inode changes even
    when the modification time does not (coarse file-system clocks).
    """
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# ----------------------------------------------------------------------------- threads


def parallel(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on a few threads: each item is a different array, and
    zarr's I/O and zstd release the GIL, so an epoch's arrays are written side by side."""
    items = list(items)
    workers = min(8, os.cpu_count() or 1, len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))
