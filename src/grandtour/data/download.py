"""Fetching the official files (MD5-checked), and saying how to get them when they are missing."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from grandtour.data.cifar import _CIFAR_ARCHIVE, _CIFAR_DIR, _extract_cifar
from grandtour.data.idx import _CHUNK, _IDX_FILES, _idx_files, read_idx
from grandtour.data.locate import _download_dir
from grandtour.errors import CorruptFileError, DatasetNotFoundError

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
_DOWNLOAD_TIMEOUT_S = 60


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
