"""Dataset loaders: IDX, CIFAR-10 pickles, digits, file search, downloads, hostile files.

Every fixture is written here, small, in the real formats; nothing touches the network
(downloads go to ``file://`` URLs) or the user's real cache (HOME is a tmp directory).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from grandtour import data
from grandtour.data import Dataset, load_dataset, read_cifar_batch, read_idx
from grandtour.errors import CorruptFileError, DatasetNotFoundError

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real search place is visible: HOME, the cache, $GRANDTOUR_DATA, /usr/share."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("GRANDTOUR_DATA", raising=False)
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "usr-share" / "fashion-mnist",))


# --------------------------------------------------------------------------- fixture writers


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_file(path: Path, payload: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist(directory: Path, *, gz: bool = True, n_train: int = 12, n_test: int = 7,
                seed: int = 0) -> dict[str, np.ndarray]:
    """The four IDX files of a tiny MNIST-like set; returns what was written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write_file(directory / stem, idx_bytes(array), gz)
    return arrays


class Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle did (the official CIFAR-10 files):
    every ``str``/``bytes`` as a byte string (BINSTRING), numpy under ``numpy.core``."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def dump(obj, protocol) -> bytes:
    if protocol == "py2":
        buf = io.BytesIO()
        Py2Pickler(buf, protocol=2).dump(obj)
        return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return pickle.dumps(obj, protocol=protocol)


def write_cifar(directory: Path, *, train_batches=(1,), n_per_batch: int = 6, n_test: int = 5,
                protocol=4, meta: bool = True, seed: int = 0) -> dict[str, dict]:
    """``cifar-10-batches-py`` files; returns {file name: the dict pickled}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in [*((f"data_batch_{k}", n_per_batch) for k in train_batches), ("test_batch", n_test)]:
        batch = {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        (directory / name).write_bytes(dump(batch, protocol))
        written[name] = batch
    if meta:
        names = [n.upper().encode() for n in data.CLASS_NAMES["cifar10"]]  # distinguishable from defaults
        (directory / "batches.meta").write_bytes(dump({b"label_names": names, b"num_vis": 3072}, protocol))
    return written


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_round_trip(tmp_path, gz):
    written = write_mnist(tmp_path / "m", gz=gz)
    for stem, array in written.items():
        path = tmp_path / "m" / (stem + (".gz" if gz else ""))
        back = read_idx(path)
        assert back.dtype == np.uint8 and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
    ds = load_dataset("mnist", tmp_path / "m")
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (7, 1, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[:, 0], written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, written["t10k-labels-idx1-ubyte"])
    assert ds.class_names == tuple("0123456789")
    assert ds.x_train.flags.writeable  # torch.from_numpy warns on read-only arrays


def test_idx_wider_types_are_big_endian(tmp_path):
    # IDX stores multi-byte items big-endian; reading them natively would scramble them.
    ints = np.array([[1, -2, 70000], [2**31 - 1, 0, -(2**31)]], dtype=np.int32)
    floats = np.array([0.5, -3.25, 1e30], dtype=np.float32)
    np.testing.assert_array_equal(read_idx(write_file(tmp_path / "i", idx_bytes(ints, 0x0C), False)), ints)
    np.testing.assert_array_equal(read_idx(write_file(tmp_path / "f", idx_bytes(floats, 0x0D), True)), floats)


@pytest.mark.parametrize("payload", [
    b"<html><body>404 Not Found</body></html>",              # an error page saved as the file
    struct.pack(">BBBBI", 0, 0, 0x07, 1, 3) + b"abc",         # unknown type code
    struct.pack(">BBBBI", 1, 0, 0x08, 1, 3) + b"abc",         # first bytes not zero
], ids=["html", "type-code", "nonzero-lead"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_wrong_magic_is_corrupt_and_named(tmp_path, payload, gz):
    path = write_file(tmp_path / "train-images-idx3-ubyte", payload, gz)
    with pytest.raises(CorruptFileError, match="magic") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_labels_file_in_the_images_slot_is_refused(tmp_path):
    # A valid IDX file of the wrong kind (magic 0x0801 where 0x0803 belongs).
    write_mnist(tmp_path / "m")
    labels = np.zeros(12, dtype=np.uint8)
    write_file(tmp_path / "m" / "train-images-idx3-ubyte", idx_bytes(labels), True)
    with pytest.raises(CorruptFileError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path / "m")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("change", ["truncated", "trailing", "header-only"])
def test_payload_length_must_match_header(tmp_path, gz, change):
    written = write_mnist(tmp_path / "m", gz=gz)
    full = idx_bytes(written["t10k-images-idx3-ubyte"])
    bad = {"truncated": full[:-10], "trailing": full + b"\0", "header-only": full[:6]}[change]
    path = write_file(tmp_path / "m" / "t10k-images-idx3-ubyte", bad, gz)
    with pytest.raises(CorruptFileError) as err:
        load_dataset("mnist", tmp_path / "m")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_a_header_whose_size_overflows_int64_is_a_clear_error(tmp_path, gz):
    # 3 dims whose product is ~2**95 bytes: an int64 product would wrap (to 2**31 here).
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**31)
    path = write_file(tmp_path / "x-idx3-ubyte", header + bytes(16), gz)
    with pytest.raises(CorruptFileError) as err:
        read_idx(path)
    message = str(err.value)
    assert str(path) in message and f"({(2**32 - 1) ** 2 * 2**31} payload bytes)" in message


def test_truncated_gzip_stream_names_the_file(tmp_path):
    written = write_mnist(tmp_path / "m", gz=True)
    path = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(written["train-images-idx3-ubyte"]))[:-30])
    with pytest.raises(CorruptFileError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path / "m")


def test_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path / "m", n_train=12)
    write_file(tmp_path / "m" / "train-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)), True)
    with pytest.raises(CorruptFileError) as err:
        load_dataset("mnist", tmp_path / "m")
    message = str(err.value)
    assert "12" in message and "11" in message
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message


def test_label_outside_the_classes_is_refused(tmp_path):
    write_mnist(tmp_path / "m")
    write_file(tmp_path / "m" / "t10k-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 2, 3, 4, 5, 10], np.uint8)), True)
    with pytest.raises(CorruptFileError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", tmp_path / "m")


def test_fashion_mnist_class_names(tmp_path):
    write_mnist(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion_mnist", tmp_path)
    assert ds.name == "fashion-mnist"
    assert ds.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


# --------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("train_batches", [(1,), (2, 1), (10, 2, 1)], ids=["1-batch", "2-batches", "3-batches"])
@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_cifar_batches(tmp_path, train_batches, protocol):
    directory = tmp_path / "cifar-10-batches-py"
    written = write_cifar(directory, train_batches=train_batches, protocol=protocol)
    # One pixel set by hand: image 0 of batch 1, row 3, column 5 is (R, G, B) = (10, 20, 30).
    batch1 = written["data_batch_1"]
    batch1[b"data"][0, [0 * 1024 + 3 * 32 + 5, 1 * 1024 + 3 * 32 + 5, 2 * 1024 + 3 * 32 + 5]] = (10, 20, 30)
    (directory / "data_batch_1").write_bytes(dump(batch1, protocol))

    ds = load_dataset("cifar10", tmp_path)
    n = 6 * len(train_batches)
    assert ds.x_train.shape == (n, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert tuple(ds.x_train[0, :, 3, 5]) == (10, 20, 30)
    # Training batches in numeric order (data_batch_2 before data_batch_10).
    order = [f"data_batch_{k}" for k in sorted(train_batches)]
    np.testing.assert_array_equal(ds.y_train, np.concatenate([written[b][b"labels"] for b in order]))
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][b"labels"])
    i, y, x = 4, 17, 30  # any other pixel: channel c of (y, x) sits at c * 1024 + y * 32 + x
    last = written[order[-1]][b"data"]
    assert tuple(ds.x_train[n - 6 + i, :, y, x]) == tuple(last[i, [c * 1024 + y * 32 + x for c in range(3)]])
    assert ds.class_names == tuple(c.upper() for c in data.CLASS_NAMES["cifar10"])  # read from batches.meta
    assert ds.source == str(directory)


def test_read_cifar_batch_alone(tmp_path):
    written = write_cifar(tmp_path, protocol="py2")
    images, labels = read_cifar_batch(tmp_path / "test_batch")
    assert images.shape == (5, 3, 32, 32) and labels.dtype == np.int64
    np.testing.assert_array_equal(images.reshape(5, -1), written["test_batch"][b"data"])


def test_cifar_without_meta_uses_official_names(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", meta=False)
    assert load_dataset("cifar10", tmp_path).class_names == data.CLASS_NAMES["cifar10"]


@pytest.mark.parametrize("batch", [
    {b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]},
    {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
    {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
    {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
    {b"data": np.zeros((2, 3072), np.uint8)},
    [1, 2, 3],
], ids=["width", "dtype", "label-count", "label-range", "no-labels", "not-a-dict"])
def test_cifar_bad_batch_is_corrupt_and_named(tmp_path, batch):
    directory = tmp_path / "cifar-10-batches-py"
    write_cifar(directory)
    (directory / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(CorruptFileError, match="test_batch"):
        load_dataset("cifar10", tmp_path)


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _CallsExec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("kind", ["os.system", "exec"])
def test_hostile_pickle_is_refused_and_not_executed(tmp_path, protocol, kind):
    def hostile(marker: Path) -> bytes:
        payload = (_RunsShell(f"touch {marker}") if kind == "os.system"
                   else _CallsExec(f"open({str(marker)!r}, 'w').close()"))
        return pickle.dumps({b"data": payload, b"labels": [0]}, protocol=protocol)

    # Control: the plain unpickler *does* run it, so the file is genuinely hostile.
    pickle.loads(hostile(tmp_path / "control"))
    assert (tmp_path / "control").exists()

    marker = tmp_path / "pwned"
    directory = tmp_path / "cifar-10-batches-py"
    write_cifar(directory)
    (directory / "data_batch_1").write_bytes(hostile(marker))
    with pytest.raises(CorruptFileError, match="data_batch_1") as err:
        load_dataset("cifar10", tmp_path)
    assert "refusing" in str(err.value)
    assert not marker.exists()


def test_shared_reference_bomb_is_walked_once(tmp_path, monkeypatch):
    # 2**22 paths through 23 small shared lists: walking each path takes seconds and hundreds of MB.
    nested = [b"x"]
    for _ in range(22):
        nested = [nested, nested]
    (tmp_path / "b").write_bytes(pickle.dumps({b"data": nested, b"labels": [0]}, protocol=4))
    from grandtour.data import safe_pickle

    calls = 0
    walk = safe_pickle._resolve

    def counting(obj, memo=None):  # the walk recurses through the module's name: every visit counts
        nonlocal calls
        calls += 1
        return walk(obj, memo)

    monkeypatch.setattr(safe_pickle, "_resolve", counting)
    with pytest.raises(CorruptFileError, match="'data' must be uint8"):
        read_cifar_batch(tmp_path / "b")
    # Each shared list is entered once per reference (2 per level), never once per path (2**22).
    assert calls <= 4 * 25


def test_object_array_in_a_pickle_is_refused(tmp_path):
    batch = {b"data": np.array([[1, "a"]], dtype=object), b"labels": [0]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(CorruptFileError, match="refusing"):
        read_cifar_batch(tmp_path / "b")


# --------------------------------------------------------------------------- finding files


def test_missing_dataset_lists_every_place_and_how_to_get_it(tmp_path, monkeypatch):
    env_dir = tmp_path / "env-data"
    env_dir.mkdir()
    monkeypatch.setenv("GRANDTOUR_DATA", str(env_dir))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion-mnist")
    message = str(err.value)
    for place in (env_dir, tmp_path / "home" / ".cache" / "grandtour" / "fashion-mnist",
                  tmp_path / "usr-share" / "fashion-mnist"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert data.BASE_URLS["fashion-mnist"] in message
    assert "--download" in message and "--data-dir" in message

    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and data.BASE_URLS["mnist"] in message
    assert "apt-get" not in message  # only Fashion-MNIST has a Debian package
    assert str(tmp_path / "home") not in message.split("To get it")[0]  # an explicit root is the only place


def test_missing_cifar_file_is_named(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        load_dataset("cifar10", tmp_path)


def test_root_may_be_parent_or_direct(tmp_path):
    written = write_mnist(tmp_path / "parent" / "mnist")
    by_parent = load_dataset("mnist", tmp_path / "parent")
    direct = load_dataset("mnist", tmp_path / "parent" / "mnist")
    assert by_parent.source == direct.source == str(tmp_path / "parent" / "mnist")
    np.testing.assert_array_equal(by_parent.x_train[:, 0], written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(direct.x_train, by_parent.x_train)

    write_cifar(tmp_path / "parent" / "cifar-10-batches-py")
    assert load_dataset("cifar10", tmp_path / "parent").x_test.shape == \
        load_dataset("cifar10", tmp_path / "parent" / "cifar-10-batches-py").x_test.shape


def test_named_subdirectory_wins_over_files_in_the_parent(tmp_path):
    # MNIST and Fashion-MNIST files share names: a parent holding MNIST's directly and a
    # fashion-mnist/ sub-directory must give Fashion-MNIST the sub-directory's files.
    mnist = write_mnist(tmp_path, seed=1)
    fashion = write_mnist(tmp_path / "fashion-mnist", seed=2)
    np.testing.assert_array_equal(load_dataset("fashion-mnist", tmp_path).y_train,
                                  fashion["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(load_dataset("mnist", tmp_path).y_train, mnist["train-labels-idx1-ubyte"])


def test_search_order_env_then_cache_then_system(tmp_path, monkeypatch):
    system = write_mnist(tmp_path / "usr-share" / "fashion-mnist", seed=1)
    assert load_dataset("fashion-mnist").source == str(tmp_path / "usr-share" / "fashion-mnist")
    cache = write_mnist(tmp_path / "home" / ".cache" / "grandtour" / "fashion-mnist", seed=2)
    np.testing.assert_array_equal(load_dataset("fashion-mnist").y_train, cache["train-labels-idx1-ubyte"])
    env = write_mnist(tmp_path / "env" / "fashion_mnist", seed=3)
    monkeypatch.setenv("GRANDTOUR_DATA", os.pathsep.join([str(tmp_path / "empty"), str(tmp_path / "env")]))
    np.testing.assert_array_equal(load_dataset("fashion-mnist").y_train, env["train-labels-idx1-ubyte"])
    assert not np.array_equal(system["train-labels-idx1-ubyte"], env["train-labels-idx1-ubyte"])


def test_unknown_dataset_name():
    with pytest.raises(data.GrandTourError, match="cifar10"):
        load_dataset("imagenet")


# --------------------------------------------------------------------------- digits


def test_digits_split():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = load_dataset("digits")
    bunch = sklearn_datasets.load_digits()
    n = len(bunch.target)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert len(ds.y_train) + len(ds.y_test) == n
    for c in range(10):
        n_c = int((bunch.target == c).sum())
        assert int((ds.y_test == c).sum()) == round(n_c / 3)  # stratified: every class at 1/3
        assert int((ds.y_train == c).sum()) == n_c - round(n_c / 3)
    # The two splits partition the images, each scaled by round(v * 255 / 16).
    expected = np.rint(bunch.images * 255 / 16).astype(np.uint8).reshape(n, -1)
    got = np.concatenate([ds.x_train, ds.x_test]).reshape(n, -1)
    np.testing.assert_array_equal(np.unique(got, axis=0, return_counts=True)[1],
                                  np.unique(expected, axis=0, return_counts=True)[1])
    np.testing.assert_array_equal(np.unique(got, axis=0), np.unique(expected, axis=0))
    assert got.max() == 255
    again = load_dataset("digits")  # the split is fixed
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_dataset_validates_its_arrays():
    x = np.zeros((3, 1, 8, 8), np.uint8)
    ds = Dataset("t", x, np.array([0, 1, 2], np.int32), x, np.array([0, 0, 1]), ("a", "b", "c"), "test")
    assert ds.y_train.dtype == np.int64
    with pytest.raises(ValueError, match="outside"):
        Dataset("t", x, np.array([0, 1, 3]), x, np.array([0, 0, 1]), ("a", "b", "c"), "test")
    with pytest.raises(ValueError, match="uint8"):
        Dataset("t", x.astype(np.float32), np.array([0, 1, 2]), x, np.array([0, 0, 1]), ("a", "b", "c"), "test")


# --------------------------------------------------------------------------- downloading


@pytest.fixture
def mnist_mirror(tmp_path, monkeypatch):
    """A file:// mirror of the four .gz files, with their MD5s as the known checksums."""
    mirror = tmp_path / "mirror"
    written = write_mnist(mirror, gz=True, seed=5)
    monkeypatch.setitem(data.BASE_URLS, "mnist", mirror.as_uri() + "/")
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {f"{s}.gz": md5(mirror / f"{s}.gz") for s in IDX_STEMS})
    return written


def test_download_is_opt_in(mnist_mirror):
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist")


def test_download_to_cache_then_found_without_network(tmp_path, mnist_mirror, monkeypatch):
    ds = load_dataset("mnist", download=True)
    cache = tmp_path / "home" / ".cache" / "grandtour" / "mnist"
    assert ds.source == str(cache)
    np.testing.assert_array_equal(ds.x_test[:, 0], mnist_mirror["t10k-images-idx3-ubyte"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in IDX_STEMS)  # no .part left
    monkeypatch.setitem(data.BASE_URLS, "mnist", (tmp_path / "gone").as_uri() + "/")
    assert load_dataset("mnist", download=True).source == str(cache)  # already there: no fetch


def test_download_into_root_goes_to_the_named_subdirectory(tmp_path, mnist_mirror):
    ds = load_dataset("mnist", tmp_path / "data", download=True)
    assert ds.source == str(tmp_path / "data" / "mnist")
    assert load_dataset("mnist", tmp_path / "data").source == ds.source


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, mnist_mirror, monkeypatch):
    monkeypatch.setitem(data.CHECKSUMS["mnist"], "t10k-images-idx3-ubyte.gz", "0" * 32)
    with pytest.raises(CorruptFileError, match="MD5"):
        load_dataset("mnist", tmp_path / "data", download=True)
    left = {p.name for p in (tmp_path / "data" / "mnist").iterdir()}
    assert "t10k-images-idx3-ubyte.gz" not in left and not any(n.endswith(".part") for n in left)


def test_download_without_checksum_still_parses(tmp_path, mnist_mirror, monkeypatch):
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {})
    (tmp_path / "mirror" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"<html>oops</html>"))
    with pytest.raises(CorruptFileError, match="magic"):
        load_dataset("mnist", tmp_path / "data", download=True)
    assert not (tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz").exists()


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(data.BASE_URLS, "mnist", (tmp_path / "no-such-mirror").as_uri() + "/")
    with pytest.raises(DatasetNotFoundError, match="could not download"):
        load_dataset("mnist", tmp_path / "data", download=True)


def _cifar_archive(tmp_path: Path, extra: dict[str, bytes] | None = None) -> tuple[Path, dict]:
    source = tmp_path / "src"
    written = write_cifar(source / "cifar-10-batches-py", train_batches=(1, 2), protocol="py2")
    mirror = tmp_path / "cifar-mirror"
    mirror.mkdir()
    archive = mirror / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        for name, payload in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive, written


def test_download_cifar_archive(tmp_path, monkeypatch):
    archive, written = _cifar_archive(tmp_path)
    monkeypatch.setitem(data.BASE_URLS, "cifar10", archive.parent.as_uri())
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": md5(archive)})
    ds = load_dataset("cifar10", download=True)
    target = tmp_path / "home" / ".cache" / "grandtour" / "cifar10" / "cifar-10-batches-py"
    assert ds.source == str(target)
    assert ds.x_train.shape == (12, 3, 32, 32)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][b"labels"])
    # The archive and the staging directory are gone; only the batches remain.
    assert sorted(p.name for p in target.iterdir()) == ["batches.meta", "data_batch_1", "data_batch_2", "test_batch"]


def test_download_cifar_archive_with_path_traversal_is_refused(tmp_path, monkeypatch):
    archive, _ = _cifar_archive(tmp_path, {"cifar-10-batches-py/../../../evil": b"x"})
    monkeypatch.setitem(data.BASE_URLS, "cifar10", archive.parent.as_uri())
    monkeypatch.setitem(data.CHECKSUMS, "cifar10", {})
    with pytest.raises(CorruptFileError, match="outside"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
