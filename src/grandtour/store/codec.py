"""How values are encoded on disk: float16 with a power-of-two scale, chunks, JSON records.

Zarr is imported lazily (:func:`zarr_module`): ``grandtour --help`` must work without
the ``store`` extra.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from grandtour import defaults
from grandtour.errors import StoreError
from grandtour.store.schema import temp_name

#: Largest finite float16. Larger activations are stored divided by a power of two.
FLOAT16_MAX = 65504.0
#: Largest chunk we aim for; only the first (example, or row) axis is split to stay under it.
CHUNK_BYTES = defaults.CHUNK_BYTES
#: Zstandard level of every compressed array: on ReLU activations stored as float16,
#: ~0.6 of the raw size, at ~3x the speed of level 3.
ZSTD_LEVEL = 1


def zarr_module():
    """The ``zarr`` package, imported on first use."""
    import zarr  # imported lazily: `grandtour --help` must work without the store extra

    return zarr


def compressors() -> list:
    """The compressor list of every compressed array."""
    from zarr.codecs import ZstdCodec

    return [ZstdCodec(level=ZSTD_LEVEL)]


def now() -> str:
    """The current time, ISO 8601 in UTC to the second (``created``, ``written``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    if x.size == 0:
        peak = 0.0
    elif bad_rows.any():
        peak = float(np.abs(x[finite]).max()) if finite.any() else 0.0
    else:
        peak = float(np.abs(x).max())
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


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a reader sees either the old file or the new one, never a torn one."""
    tmp = path.with_name(temp_name(path.name, os.getpid()))
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX and Windows


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
