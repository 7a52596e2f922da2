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

One module per concern: :mod:`~grandtour.data.dataset` (the :class:`Dataset` every
loader returns), :mod:`~grandtour.data.digits`, :mod:`~grandtour.data.idx` (MNIST,
Fashion-MNIST), :mod:`~grandtour.data.cifar` (with :mod:`~grandtour.data.safe_pickle`),
:mod:`~grandtour.data.locate` (where files are looked for) and
:mod:`~grandtour.data.download`; :func:`load_dataset` here ties them together.

Examples
--------
>>> from grandtour.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.x_train.shape[1:], ds.x_train.dtype, ds.class_names[:3]
((1, 8, 8), dtype('uint8'), ('0', '1', '2'))
"""

from __future__ import annotations

from pathlib import Path

from grandtour import defaults
from grandtour.data.cifar import _load_cifar10, read_cifar_batch
from grandtour.data.dataset import CLASS_NAMES, Dataset
from grandtour.data.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, _load_digits  # noqa: F401
from grandtour.data.download import BASE_URLS, CHECKSUMS, _download, _not_found_message
from grandtour.data.idx import _load_idx_dataset, read_idx

# SUBDIRS and SYSTEM_DIRS stay reachable here, where they always were (the same objects).
from grandtour.data.locate import SUBDIRS, SYSTEM_DIRS, _download_dir, _locate  # noqa: F401
from grandtour.errors import CorruptFileError, DatasetNotFoundError, GrandTourError  # noqa: F401

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

DATASETS = defaults.DATASETS

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}


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


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise GrandTourError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key
