"""MNIST and Fashion-MNIST: the IDX file format, gzipped or raw."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from grandtour.data.dataset import CLASS_NAMES, Dataset
from grandtour.errors import CorruptFileError, DatasetNotFoundError

_IDX_FILES = {  # split -> (images, labels), file names without ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGE_SIZE = (28, 28)
#: Bytes read at a time: a lying header or a gzip bomb cannot make us allocate more.
_CHUNK = 1 << 22


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or raw.

    The header is ``0x00 0x00 <type> <rank>`` then ``rank`` big-endian uint32
    dimensions; the payload must hold exactly their product of items.

    Parameters
    ----------
    path : str or Path
        Compression is detected from the content (gzip magic), not the name.

    Returns
    -------
    ndarray of shape given by the header
        uint8 for type 0x08 (the MNIST files); int8, int16, int32, float32, float64 for
        0x09, 0x0B, 0x0C, 0x0D, 0x0E, in native byte order. Writable.

    Raises
    ------
    CorruptFileError
        Wrong magic, unknown type, truncated header or payload, or trailing bytes.
    DatasetNotFoundError
        The file does not exist.
    """
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=raw) as f:
                    return _parse_idx(f, path, file_size=None)
            return _parse_idx(raw, path, file_size=os.fstat(raw.fileno()).st_size)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{path} does not exist") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise CorruptFileError(f"{path}: damaged gzip stream ({err}); the file is truncated or "
                               "corrupt: delete it and get it again") from err


def _idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in `directory` (raw preferred over .gz), and the names missing."""
    found, missing = {}, []
    for stems in _IDX_FILES.values():
        for stem in stems:
            for candidate in (directory / stem, directory / f"{stem}.gz"):
                if candidate.is_file():
                    found[stem] = candidate
                    break
            else:
                missing.append(f"{stem}[.gz]")
    return found, missing


def _load_idx_dataset(name: str, directory: Path) -> Dataset:
    files, _ = _idx_files(directory)
    n_classes = len(CLASS_NAMES[name])
    splits = {}
    for split, (image_stem, label_stem) in _IDX_FILES.items():
        image_path, label_path = files[image_stem], files[label_stem]
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IDX_IMAGE_SIZE:
            raise CorruptFileError(
                f"{image_path}: expected uint8 images of shape (N, 28, 28) (IDX magic 0x00000803), "
                f"got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise CorruptFileError(
                f"{label_path}: expected uint8 labels of shape (N,) (IDX magic 0x00000801), "
                f"got {labels.dtype} {labels.shape}")
        if images.shape[0] != labels.shape[0]:
            raise CorruptFileError(
                f"{image_path} holds {images.shape[0]} images but {label_path} holds "
                f"{labels.shape[0]} labels; one of them is from another release or damaged: "
                "get both again")
        if labels.size and labels.max() >= n_classes:
            raise CorruptFileError(f"{label_path}: label {labels.max()} is outside 0..{n_classes - 1}")
        splits[split] = (images[:, None], labels.astype(np.int64))
    return Dataset(name, *splits["train"], *splits["test"], CLASS_NAMES[name], str(directory))



_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _parse_idx(f, path: Path, *, file_size: int | None) -> np.ndarray:
    header = f.read(4)
    if len(header) < 4:
        raise CorruptFileError(f"{path}: {len(header)} bytes, shorter than the 4-byte IDX header "
                               "(truncated or empty): delete it and get it again")
    zero, code, rank = header[:2], header[2], header[3]
    if zero != b"\x00\x00" or code not in _IDX_TYPES:
        raise CorruptFileError(
            f"{path}: not an IDX file: magic 0x{header.hex()} (expected 0x00000803 for images, "
            "0x00000801 for labels); is it the right file, or an HTML error page saved by a download?")
    dims_raw = f.read(4 * rank)
    if len(dims_raw) < 4 * rank:
        raise CorruptFileError(f"{path}: truncated IDX header ({rank} dimensions announced)")
    shape = struct.unpack(f">{rank}I", dims_raw)
    dtype = _IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a hostile header cannot wrap it
    if file_size is not None:
        # Raw file: check before reading, so a lying header cannot make us allocate.
        got = file_size - 4 - 4 * rank
        if got != expected:
            raise CorruptFileError(_payload_message(path, shape, expected, got))
    payload = bytearray()
    while len(payload) < expected:  # in chunks: a gzip bomb's header cannot make us allocate
        chunk = f.read(min(_CHUNK, expected - len(payload)))
        if not chunk:
            break
        payload += chunk
    if len(payload) < expected:
        raise CorruptFileError(_payload_message(path, shape, expected, len(payload)))
    if f.read(1):
        raise CorruptFileError(_payload_message(path, shape, expected, None))
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array if dtype.byteorder in "=|" else array.astype(dtype.newbyteorder("="))


def _payload_message(path: Path, shape, expected: int, got: int | None) -> str:
    what = "more" if got is None or got > expected else f"only {got}"
    return (f"{path}: the header announces shape {tuple(shape)} ({expected} payload bytes) but the "
            f"file holds {what}; it is truncated or damaged: delete it and get it again")
