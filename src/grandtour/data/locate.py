"""Where a dataset's files are looked for, and where a download puts them."""

from __future__ import annotations

import os
from pathlib import Path

from grandtour.data.cifar import _CIFAR_ARCHIVE, _cifar_files
from grandtour.data.idx import _idx_files

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



def _download_dir(name: str, root: str | Path | None) -> Path:
    """Where downloaded files land: found again by :func:`_locate` for the same `root`."""
    base = _cache_dir(name) if root is None else Path(root).expanduser()
    return base if base.name in SUBDIRS[name] else base / SUBDIRS[name][0]
