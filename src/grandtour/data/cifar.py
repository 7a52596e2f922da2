"""CIFAR-10: the python-pickle batches of ``cifar-10-batches-py`` and their archive."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from grandtour.data.dataset import CLASS_NAMES, Dataset
from grandtour.data.safe_pickle import _get, _load_pickle
from grandtour.errors import CorruptFileError

_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = re.compile(r"data_batch_(\d+)")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (``data_batch_<k>`` or ``test_batch``).

    The file is a pickled dict with ``b"data"``, uint8 of shape (N, 3072) (per row 1024
    red, then 1024 green, then 1024 blue values, each plane row-major), and
    ``b"labels"``, N integers. It is read by a restricted unpickler: only containers,
    numbers, strings, bytes and plain numeric numpy arrays can be built, so a hostile
    pickle cannot run code.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    images : ndarray of shape (N, 3, 32, 32), uint8
        Channels R, G, B.
    labels : ndarray of shape (N,), int64

    Raises
    ------
    CorruptFileError
        Not a safe pickle, or not a CIFAR batch; the message names the file.
    """
    path = Path(path)
    batch = _load_pickle(path)
    if not isinstance(batch, dict):
        raise CorruptFileError(f"{path}: expected a pickled dict (a CIFAR batch), "
                               f"got {type(batch).__name__}")
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if data is None or labels is None:
        keys = sorted(k.decode("ascii", "replace") if isinstance(k, bytes) else str(k)
                      for k in batch)
        raise CorruptFileError(f"{path}: a CIFAR-10 batch needs the keys 'data' and 'labels'; "
                               f"it has {keys}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise CorruptFileError(f"{path}: 'data' must be uint8 of shape (N, 3072), got "
                               f"{getattr(data, 'dtype', type(data).__name__)} "
                               f"{getattr(data, 'shape', '')}")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError) as err:
        raise CorruptFileError(f"{path}: 'labels' is not a list of integers ({err})") from err
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) \
            or labels.shape[0] != data.shape[0]:
        raise CorruptFileError(f"{path}: 'labels' must be {data.shape[0]} integers (one per "
                               f"row of 'data'), got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise CorruptFileError(f"{path}: negative label {labels.min()}")
    # Row = 1024 R | 1024 G | 1024 B, each a 32x32 plane: exactly (3, 32, 32) C-order.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32))
    if not images.flags.writeable:
        images = images.copy()
    return images, labels.astype(np.int64)


def _cifar_files(directory: Path) -> tuple[list[Path], Path | None, list[str]]:
    train = sorted((p for p in directory.glob("data_batch_*")
                    if p.is_file() and _CIFAR_TRAIN.fullmatch(p.name)),
                   key=lambda p: int(_CIFAR_TRAIN.fullmatch(p.name).group(1)))
    test = directory / "test_batch"
    missing = ([] if train else ["data_batch_1 (or any data_batch_<k>)"]) + \
              ([] if test.is_file() else ["test_batch"])
    return train, (test if test.is_file() else None), missing


def _load_cifar10(directory: Path) -> Dataset:
    train_paths, test_path, _ = _cifar_files(directory)
    class_names = CLASS_NAMES["cifar10"]
    meta_path = directory / "batches.meta"
    if meta_path.is_file():
        meta = _load_pickle(meta_path)
        names = _get(meta, "label_names") if isinstance(meta, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
            raise CorruptFileError(f"{meta_path}: expected a dict with 'label_names', a list of strings")
        class_names = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)
    parts = []
    for path in [*train_paths, test_path]:
        images, labels = read_cifar_batch(path)
        if labels.size and labels.max() >= len(class_names):
            raise CorruptFileError(f"{path}: label {labels.max()} is outside 0..{len(class_names) - 1} "
                                   f"({len(class_names)} classes in batches.meta)")
        parts.append((images, labels))
    train = parts[:-1]
    x_train = train[0][0] if len(train) == 1 else np.concatenate([p[0] for p in train])
    y_train = train[0][1] if len(train) == 1 else np.concatenate([p[1] for p in train])
    return Dataset("cifar10", x_train, y_train, *parts[-1], class_names, str(directory))



def _extract_cifar(archive: Path, target: Path) -> None:
    """Move the batch files of the CIFAR-10 archive into `target`, never writing elsewhere."""
    staging = Path(tempfile.mkdtemp(prefix=".cifar-extract-", dir=target))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = []
                for m in tar.getmembers():
                    parts = PurePosixPath(m.name).parts
                    if PurePosixPath(m.name).is_absolute() or ".." in parts:
                        raise CorruptFileError(f"{archive}: member {m.name!r} points outside the archive")
                    if m.isfile() and len(parts) == 2 and parts[0] == _CIFAR_DIR:
                        members.append(m)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **kwargs)
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise CorruptFileError(f"{archive}: not a readable .tar.gz ({err})") from err
        extracted = staging / _CIFAR_DIR
        if not (extracted / "test_batch").is_file() or not any(extracted.glob("data_batch_*")):
            raise CorruptFileError(f"{archive}: no {_CIFAR_DIR}/test_batch and data_batch_* inside")
        for path in extracted.iterdir():
            if not (target / path.name).exists():
                os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
