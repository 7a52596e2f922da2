"""Datasets: the images a network sees, as ``uint8`` arrays of shape ``(N, C, H, W)``.

Four datasets, each read from its standard file format (no torchvision):

``digits``
    scikit-learn's bundled 8x8 digits (1797 images, values 0..16), scaled to 0..255 by
    ``round(v * 255 / 16)``. They have no official split, so we make one: a stratified
    split with :data:`DIGITS_TEST_FRACTION` of each class in the test set, drawn with
    ``numpy.random.default_rng(DIGITS_SPLIT_SEED)``; both splits keep the original order.
``mnist``, ``fashion-mnist``
    The four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each gzipped or raw.
``cifar10``
    The python-pickle batches of ``cifar-10-batches-py``: every ``data_batch_<k>``
    present (at least one) for training, ``test_batch`` for testing. The pickles are
    read by a restricted unpickler that builds nothing but plain containers and numeric
    arrays, so a hostile file cannot run code.

Where the files are looked for, in order (``root=None``):

1. every directory in ``$GRANDTOUR_DATA`` (``os.pathsep``-separated),
2. ``$XDG_CACHE_HOME/grandtour/<name>`` (``~/.cache/grandtour/<name>``), where
   ``download=True`` puts them,
3. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist`` package).

Each of these, like an explicit ``root``, may be the directory holding the files or a
parent holding them in a sub-directory named for the dataset (``mnist/``,
``fashion-mnist/`` or ``fashion_mnist/``, ``cifar-10-batches-py/``); the sub-directory
wins when both exist, because MNIST and Fashion-MNIST files have the same names.

Examples
--------
>>> from grandtour.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.x_train.shape[1:], ds.x_train.dtype, ds.class_names[:3]
((1, 8, 8), dtype('uint8'), ('0', '1', '2'))
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from grandtour.errors import CorruptFileError, DatasetNotFoundError, GrandTourError

__all__ = [
    "BASE_URLS",
    "CHECKSUMS",
    "CLASS_NAMES",
    "DATASETS",
    "Dataset",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
]

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(d) for d in range(10)),
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}

#: Test share of each digit class, and the seed of the (documented, fixed) digits split.
DIGITS_TEST_FRACTION = 1 / 3
DIGITS_SPLIT_SEED = 0

#: Where ``download=True`` fetches from. Module-level so a mirror (or a test's
#: ``file://`` directory) can replace it.
BASE_URLS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}

#: MD5 of the official files (the values torchvision checks). A file without an entry
#: (or with ``None``) is validated by parsing it instead.
CHECKSUMS: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
}

#: Sub-directory names under which a parent directory may hold each dataset.
SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist",),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar-10-batches-py",),
}

#: System-wide install locations searched last (Debian: ``apt-get install dataset-fashion-mnist``).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

_IDX_FILES = {  # split -> (images, labels), file names without ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGE_SIZE = (28, 28)
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = re.compile(r"data_batch_(\d+)")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}
_CHUNK = 1 << 22
_DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class Dataset:
    """A labelled image dataset split into train and test.

    Attributes
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (or a user's name).
    x_train, x_test : ndarray of shape (N, C, H, W), uint8
        Pixels, 0..255. C is 1 for the grey datasets, 3 (R, G, B) for CIFAR-10.
    y_train, y_test : ndarray of shape (N,), int64
        Class indices into ``class_names``.
    class_names : tuple of str
    source : str
        Where the files were read from (a directory), or ``"scikit-learn"``.

    Integer labels of another integer dtype are converted to int64; anything else that
    breaks the shapes above raises ``ValueError``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        n_classes = len(self.class_names)
        image_shape = None
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), np.asarray(getattr(self, f"y_{split}"))
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"Dataset {self.name!r}: x_{split} must be a uint8 array of shape "
                                 f"(N, C, H, W), got {getattr(x, 'dtype', type(x))} "
                                 f"{getattr(x, 'shape', '')}")
            if image_shape is not None and x.shape[1:] != image_shape:
                raise ValueError(f"Dataset {self.name!r}: train images are {image_shape}, "
                                 f"test images {x.shape[1:]}")
            image_shape = x.shape[1:]
            if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"Dataset {self.name!r}: y_{split} must be ({x.shape[0]},) "
                                 f"integers, got {y.dtype} {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ValueError(f"Dataset {self.name!r}: y_{split} has labels in "
                                 f"[{y.min()}, {y.max()}], outside 0..{n_classes - 1} "
                                 f"({n_classes} class names)")
            object.__setattr__(self, f"y_{split}", y.astype(np.int64, copy=False))

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.class_names)}, source={self.source!r})")


# --------------------------------------------------------------------------- public API


def load_dataset(name: str, root: str | Path | None = None, *, download: bool = False) -> Dataset:
    """Load a dataset's train and test splits.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (``fashion_mnist``
        and ``cifar-10`` are accepted too).
    root : str or Path, optional
        The directory holding the files, or a parent holding them in ``mnist/``,
        ``fashion-mnist/`` (``fashion_mnist/``) or ``cifar-10-batches-py/``. When given,
        nothing else is searched. Default: the places in the module docstring. Ignored
        for ``digits`` (bundled with scikit-learn).
    download : bool
        If the files are not found, fetch the official ones (MD5-checked) into ``root``
        (its dataset sub-directory, unless ``root`` is already named for the dataset) or
        into ``~/.cache/grandtour/<name>``. Off by default: nothing touches the network
        unless asked.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetNotFoundError
        The files are not where we looked; the message lists every place and how to get them.
    CorruptFileError
        A file is there but truncated or not in the expected format; the message names it.
    """
    name = _canonical(name)
    if name == "digits":
        return _load_digits()
    found, looked = _locate(name, root)
    if found is None and download:
        _download(name, _download_dir(name, root))
        found, looked = _locate(name, root)
    if found is None:
        raise DatasetNotFoundError(_not_found_message(name, root, looked))
    if name == "cifar10":
        return _load_cifar10(found)
    return _load_idx_dataset(name, found)


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


# --------------------------------------------------------------------------- loaders


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise GrandTourError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits  # the `torch` extra; imported only when asked

    bunch = load_digits()
    # 0..16 -> 0..255; the half-way values (v = 8: 127.5) round to even, like round().
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255 / 16)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = _stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    x = images[:, None]
    return Dataset("digits", x[train], labels[train], x[test], labels[test],
                   CLASS_NAMES["digits"], "scikit-learn")


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices; ``round(n_c * test_fraction)`` of each class to test."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[: int(round(len(members) * test_fraction))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


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


# --------------------------------------------------------------------------- finding files


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def _cache_dir(name: str) -> Path:
    return _cache_home() / "grandtour" / name


def _candidates(name: str, base: Path) -> list[Path]:
    # The named sub-directory first: a parent may hold MNIST files directly *and* a
    # fashion-mnist/ with files of the same names.
    return [base / sub for sub in SUBDIRS[name]] + [base]


def _search_bases(name: str, root: str | Path | None) -> list[Path]:
    if root is not None:
        return [Path(root).expanduser()]
    bases = [Path(p).expanduser() for p in os.environ.get("GRANDTOUR_DATA", "").split(os.pathsep) if p]
    return bases + [_cache_dir(name), *SYSTEM_DIRS.get(name, ())]


def _locate(name: str, root: str | Path | None) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The first directory holding a complete copy, and every (place, why not) looked at."""
    looked = []
    for base in _search_bases(name, root):
        if not base.is_dir():
            looked.append((base, "does not exist"))
            continue
        for directory in _candidates(name, base):
            if not directory.is_dir():
                continue
            if name == "cifar10":
                *_, missing = _cifar_files(directory)
            else:
                _, missing = _idx_files(directory)
            if not missing:
                return directory, looked
            note = "missing " + ", ".join(missing)
            if directory == base and not any((base / s).is_dir() for s in SUBDIRS[name]):
                note += "; no " + " or ".join(f"{s}/" for s in SUBDIRS[name]) + " inside"
            if name == "cifar10" and (directory / _CIFAR_ARCHIVE).is_file():
                note += f"; {_CIFAR_ARCHIVE} is there: extract it (tar xzf) or pass --download"
            looked.append((directory, note))
    return None, looked


def _not_found_message(name: str, root, looked: list[tuple[Path, str]]) -> str:
    title = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}[name]
    lines = [f"{title} not found. Looked in:"]
    lines += [f"  - {place} ({why})" for place, why in looked]
    if root is None and not os.environ.get("GRANDTOUR_DATA"):
        lines.append("  (GRANDTOUR_DATA is not set)")
    lines.append("To get it, any one of:")
    if name == "fashion-mnist":
        lines.append("  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist "
                     "(installs to /usr/share/datasets/fashion-mnist, searched by default)")
    if name == "cifar10":
        url = BASE_URLS[name].rstrip("/") + "/" + _CIFAR_ARCHIVE
        lines.append(f"  - download {url} and extract it (tar xzf {_CIFAR_ARCHIVE}); it makes "
                     f"{_CIFAR_DIR}/ (data_batch_1..5, test_batch, batches.meta)")
    else:
        files = ", ".join(f"{stem}.gz" for pair in _IDX_FILES.values() for stem in pair)
        lines.append(f"  - download {files} from {BASE_URLS[name]} into one directory")
    lines.append(f"  - let grandtour fetch them: --download (Python: load_dataset({name!r}, "
                 f"download=True)); they go to {_download_dir(name, root)}")
    lines.append("  - point at the directory holding them, or its parent: --data-dir DIR "
                 "(Python: root=DIR), or set GRANDTOUR_DATA=DIR")
    return "\n".join(lines)


# --------------------------------------------------------------------------- downloading


def _download_dir(name: str, root: str | Path | None) -> Path:
    """Where downloaded files land: found again by :func:`_locate` for the same `root`."""
    base = _cache_dir(name) if root is None else Path(root).expanduser()
    return base if base.name in SUBDIRS[name] else base / SUBDIRS[name][0]


def _download(name: str, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    base = BASE_URLS[name].rstrip("/") + "/"
    sums = CHECKSUMS.get(name, {})
    if name == "cifar10":
        archive = target / _CIFAR_ARCHIVE
        _fetch(base + _CIFAR_ARCHIVE, archive, md5=sums.get(_CIFAR_ARCHIVE))
        _extract_cifar(archive, target)
        archive.unlink()
        return
    files, _ = _idx_files(target)
    for stem in (s for pair in _IDX_FILES.values() for s in pair):
        if stem not in files:  # keep what an earlier (interrupted) download finished
            _fetch(base + f"{stem}.gz", target / f"{stem}.gz", md5=sums.get(f"{stem}.gz"),
                   check=read_idx)


def _fetch(url: str, dest: Path, *, md5: str | None,
           check: Callable[[Path], object] | None = None) -> None:
    """Download `url` to `dest` via a temporary file renamed only once it is verified."""
    print(f"grandtour: downloading {url} -> {dest}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError,
                    ConnectionError) as err:
                raise DatasetNotFoundError(
                    f"could not download {url}: {getattr(err, 'reason', err)}. Check the network, "
                    f"or fetch the file by other means into {dest.parent}") from err
        if md5 is not None and digest.hexdigest() != md5:
            raise CorruptFileError(
                f"{url}: downloaded file has MD5 {digest.hexdigest()}, the official one is {md5}; "
                "the download was damaged or the mirror serves another file: try again, or "
                f"fetch it by other means into {dest.parent}")
        if check is not None:
            check(tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; a dataset file is not a secret
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------- IDX parsing

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
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
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


# --------------------------------------------------------------------------- safe unpickling


class _DTypeSpec:
    """Stands in for ``numpy.dtype`` in a pickle: only plain numeric dtypes, built fresh.

    A pickled dtype is ``dtype(code, align, copy)`` then a ``BUILD`` with its state; we
    never hand that state to numpy (it can set internal flags), we read the byte order.
    """

    _CODE = re.compile(r"[?biuf][1248]")

    def __init__(self, code, *_):
        code = code.decode("ascii", "replace") if isinstance(code, bytes) else code
        if not isinstance(code, str) or not self._CODE.fullmatch(code):
            raise pickle.UnpicklingError(f"refusing to build dtype {code!r}: only plain numeric "
                                         "dtypes are allowed")
        self.dtype = np.dtype(code)

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("refusing a structured or sub-array dtype")
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if order in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        elif order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"unknown byte order {order!r}")


class _ArraySpec:
    """Stands in for ``numpy.ndarray`` rebuilt by ``_reconstruct`` + ``BUILD``."""

    array: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, fortran, data); older pickles omit version
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("unexpected ndarray state")
        shape, dtype, fortran, data = state
        self.array = _array_from(data, dtype, shape, "F" if fortran else "C")


_NDARRAY = object()  # what the pickle gets for numpy.ndarray: a token, never callable


def _array_from(data, dtype, shape, order) -> np.ndarray:
    if not isinstance(dtype, _DTypeSpec):
        raise pickle.UnpicklingError("ndarray without a plain numeric dtype")
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("ndarray data must be raw bytes (object arrays are refused)")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
    if int(np.prod(shape, dtype=np.int64)) * dtype.dtype.itemsize != len(data):
        raise pickle.UnpicklingError(f"ndarray of shape {shape} does not match its {len(data)} bytes")
    order = order.decode("ascii") if isinstance(order, bytes) else order
    return np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order="F" if order == "F" else "C")


def _reconstruct(subtype, shape, typecode) -> _ArraySpec:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays can be rebuilt")
    return _ArraySpec()


def _frombuffer(buffer, dtype, shape, order) -> np.ndarray:  # how protocol 5 pickles arrays
    return _array_from(buffer, dtype, shape, order)


def _latin1_encode(text, encoding="utf-8", errors="strict") -> bytes:  # protocol 2's bytes
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


_SAFE_GLOBALS: dict[tuple[str, str], object] = {
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTypeSpec,
    ("_codecs", "encode"): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a dataset pickle holds only containers, "
                "numbers, strings and numeric arrays") from None


def _resolve(obj, memo: dict | None = None):
    """Replace the stand-ins by the arrays they built.

    Memoised by identity: a pickle can share one list many times over (a "billion
    laughs" bomb), and each shared object must be walked once, not once per reference.
    """
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key][1]
    if isinstance(obj, _ArraySpec):
        if obj.array is None:
            raise pickle.UnpicklingError("ndarray without data")
        out = obj.array
    elif isinstance(obj, dict):
        out = {k: _resolve(v, memo) for k, v in obj.items()}
    elif isinstance(obj, list):
        out = [_resolve(v, memo) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_resolve(v, memo) for v in obj)
    elif isinstance(obj, _DTypeSpec):
        out = obj.dtype
    else:
        return obj
    memo[key] = (obj, out)  # keep obj alive so its id is not reused during the walk
    return out


def _load_pickle(path: Path):
    try:
        with path.open("rb") as f:
            return _resolve(_SafeUnpickler(f, encoding="bytes").load())
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{path} does not exist") from err
    except Exception as err:  # noqa: BLE001 - any failure to parse a foreign file is "corrupt"
        raise CorruptFileError(f"{path}: not a CIFAR-10 python batch, or not a safe one: "
                               f"{type(err).__name__}: {err}") from err


def _get(mapping: dict, key: str):
    """A CIFAR dict's entry under the bytes key (``encoding="bytes"``) or the str key."""
    value = mapping.get(key.encode())
    return mapping.get(key) if value is None else value
