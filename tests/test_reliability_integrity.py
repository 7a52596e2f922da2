"""Fault injection, part 2: damaged chunks, edited metadata, bad inputs, full and read-only disks.

Every corruption here is one a reader used to trust (the issue lists them): each must be
detected, named (array and chunk, or record and field), and must disable only what
needs the damaged part. docs/reliability.md tabulates these cases.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from reliability_run import V, adversarial_data, create, epoch_data, flip_byte, make, snapshot  # noqa: E402

from grandtour.errors import StoreError  # noqa: E402
from grandtour.store import Run, RunWriter, check_command, check_run  # noqa: E402
from grandtour.store.codec import with_checksum  # noqa: E402
from grandtour.store.schema import CHECKSUM_KEY, INTEGRITY_KEY  # noqa: E402


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Epochs 0-2, an adversarial record and an alignment group."""
    path = make(tmp_path / "run", epochs=range(3))
    with RunWriter.open(path) as w:
        w.write_adversarial("default", **adversarial_data(1))
    with Run.open(path).create_group("alignment", {V: 1}) as group:
        group.write("basis", np.arange(12.0).reshape(4, 3))
        group.commit()
    return path


def group(run: Run):
    return run.group("alignment", version_key=V, version=1)


#: (array, chunk key, a read that needs that chunk): one per kind of array.
CHUNKS = [
    ("activations/test/fc", "c/1/0/0", lambda r: r.activations("fc", 1, "test")),
    ("activations/train/input", "c/0/0/0", lambda r: r.activations("input", 2, "train")),
    ("predictions/test", "c/1/0", lambda r: r.predictions(1, "test")),
    ("metrics/train/loss", "c/1", lambda r: r.metrics("train")),
    ("metrics/test/class_accuracy", "c/2/0", lambda r: r.metrics("test")),
    ("params/fc/weight", "c/1/0/0", lambda r: r.params("fc", 1)),
    ("probes/test/labels", "c/0", lambda r: r.labels("test")),
    ("probes/train/images", "c/0/0/0/0", lambda r: r.images("train")),
    ("adversarial/default/0/activations/fc", "c/1/0/0", lambda r: r.adversarial().activations("fc", 1)),
    ("adversarial/default/0/images", "c/2/0/0/0/0", lambda r: r.adversarial().images(2)),
    ("adversarial/default/0/predictions", "c/0/0", lambda r: r.adversarial()),
    ("alignment/basis", "c/0/0", lambda r: group(r).read("basis")),
]
IDS = [name for name, _, _ in CHUNKS]


@pytest.mark.parametrize(("array", "key", "read"), CHUNKS, ids=IDS)
def test_a_flipped_byte_in_each_kind_of_array_is_detected_and_named(run_dir, array, key, read):
    run = Run.open(run_dir)
    read(run)  # intact: it reads
    flip_byte(run_dir / array / key)
    with pytest.raises(StoreError, match="fails its checksum") as err:
        read(Run.open(run_dir))
    assert array.split("/", 1)[1] in str(err.value) and key in str(err.value)
    report = check_run(run_dir)
    assert not report.ok and any(key in d.what for d in report.damage), report.format()
    # Only what needs the chunk is lost: another epoch of the run still reads.
    np.testing.assert_array_equal(Run.open(run_dir).predictions(0, "train"), epoch_data(0)["predictions"]["train"])


@pytest.mark.parametrize(("array", "key", "read"), CHUNKS, ids=IDS)
def test_a_missing_chunk_of_each_kind_of_array_is_detected_not_read_as_fill(run_dir, array, key, read):
    (run_dir / array / key).unlink()
    with pytest.raises(StoreError, match="missing") as err:
        read(Run.open(run_dir))
    assert key in str(err.value)
    assert not check_run(run_dir).ok


# --------------------------------------------------------------------------- edited metadata


def edit_json(path: Path, change, *, rechecksum: bool) -> None:
    doc = json.loads(path.read_text())
    target = doc.get("attributes", doc) if path.name == "zarr.json" and "attributes" in doc else doc
    change(target)
    if rechecksum and CHECKSUM_KEY in target:
        target.update(with_checksum(target))
    path.write_text(json.dumps(doc))


def _dup_slot(c):
    c["epochs"][1]["slot"] = c["epochs"][0]["slot"]


def _dup_epoch(c):
    c["epochs"].append(dict(c["epochs"][-1], slot=7))


def _set(key, value, i=0):
    def change(c):
        c["epochs"][i][key] = value
    return change


COMMIT_EDITS = [
    ("duplicated slot", _dup_slot, "slot 0 is used by two epochs"),
    ("slot -1", _set("slot", -1), "slot -1 is not a non-negative"),
    ("slot out of range", _set("slot", 99), "uses slot 99"),
    ("duplicated epoch", _dup_epoch, "epoch 2 is listed twice"),
    ("float slot", _set("slot", 1.5), "slot 1.5"),
    ("epoch beyond 2^31", _set("epoch", 2**31), "epoch 2147483648 is not an integer"),
    ("scale not a power of two", _set("scale", {"test": {"fc": 3.0}}), "not a power of two"),
    ("non-finite count beyond N", _set("nonfinite", {"test": {"fc": 9}}), "row count in 0..4"),
    ("adversarial path out of the run",
     lambda c: c["adversarial"]["default"].update(path="../../elsewhere"), "points to '../../elsewhere'"),
    ("version 99", lambda c: c.update(grandtour_store_version=99), "Upgrade grandtour"),
    ("version 0", lambda c: c.update(grandtour_store_version=0), "which no grandtour wrote"),
]


@pytest.mark.parametrize(("what", "change", "match"), COMMIT_EDITS, ids=[c[0] for c in COMMIT_EDITS])
def test_each_commit_record_edit_is_refused(run_dir, what, change, match):
    commit = run_dir / "commit.json"
    edit_json(commit, change, rechecksum=False)  # as an editor would: the checksum catches it
    with pytest.raises(StoreError, match="checksum does not match"):
        Run.open(run_dir)
    edit_json(commit, lambda c: None, rechecksum=True)  # a consistent checksum: the checks catch it
    with pytest.raises(StoreError, match=match):
        Run.open(run_dir)
    with pytest.raises(StoreError, match=match):
        RunWriter.open(run_dir)
    if "Upgrade" in match:  # nothing this grandtour can check: `grandtour check` exits 2
        with pytest.raises(StoreError, match=match):
            check_run(run_dir)
    else:
        assert not check_run(run_dir).ok


ROOT_EDITS = [
    ("store version 99", lambda a: a.update(grandtour_store_version=99), "Upgrade grandtour"),
    ("store version '1'", lambda a: a.update(grandtour_store_version="1"), "which no grandtour wrote"),
    ("store version true", lambda a: a.update(grandtour_store_version=True), "which no grandtour wrote"),
    ("a class renamed", lambda a: a["class_names"].__setitem__(0, "z"), "checksum does not match"),
    ("probe size 100", lambda a: a["probes"]["test"].update(size=100), "checksum does not match"),
]


@pytest.mark.parametrize(("what", "change", "match"), ROOT_EDITS, ids=[c[0] for c in ROOT_EDITS])
def test_each_root_metadata_edit_is_refused(run_dir, what, change, match):
    edit_json(run_dir / "zarr.json", change, rechecksum=False)
    with pytest.raises(StoreError, match=match):
        Run.open(run_dir)


ARRAY_EDITS = [
    ("activations 100 rows", "activations/train/fc", lambda d: d["shape"].__setitem__(1, 100),
     r"activations/train/fc.*shape is \(3, 100, 3\)"),
    ("labels 100 rows", "probes/test/labels", lambda d: d.update(shape=[100]), r"probes/test/labels.*\(100,\)"),
    ("predictions short", "predictions/train", lambda d: d["shape"].__setitem__(0, 2), "uses slot 2"),
    ("metrics dtype", "metrics/test/loss", lambda d: d.update(data_type="float32"), "data type"),
    ("checksum codec removed", "activations/test/softmax",
     lambda d: d.update(codecs=[c for c in d["codecs"] if c["name"] != "crc32c"]), "no crc32c"),
]


@pytest.mark.parametrize(("what", "array", "change", "match"), ARRAY_EDITS, ids=[c[0] for c in ARRAY_EDITS])
def test_each_array_metadata_edit_is_refused_on_open(run_dir, what, array, change, match):
    meta = run_dir / array / "zarr.json"
    doc = json.loads(meta.read_text())
    change(doc)
    meta.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match=match):
        Run.open(run_dir)
    report = check_run(run_dir)
    assert not report.ok and any(array in d.what for d in report.damage)


def test_a_damaged_group_disables_only_what_needs_it(run_dir):
    for garbage in ("{not json", json.dumps({V: 1, "epochs": 1, CHECKSUM_KEY: "sha256:0"})):
        (run_dir / "alignment" / "commit.json").write_text(garbage)
        run = Run.open(run_dir)  # the run, its metadata and its activations are untouched
        assert run.epochs == [0, 1, 2]
        assert run.activations("fc", 2, "test").shape == (4, 3)
        assert run.adversarial().steps == 2
        with pytest.raises(StoreError, match=r"alignment record .* corrupt.*--force"):
            group(run)
        report = check_run(run_dir)
        assert [d.where for d in report.damage] == ["alignment group"], report.format()


def test_runs_written_before_checksums_stay_readable(run_dir):
    want = snapshot(run_dir)
    # What an older grandtour wrote: no integrity attribute, no record checksums.
    edit_json(run_dir / "zarr.json", lambda a: [a.pop(INTEGRITY_KEY), a.pop(CHECKSUM_KEY)], rechecksum=False)
    edit_json(run_dir / "commit.json", lambda c: c.pop(CHECKSUM_KEY), rechecksum=False)
    edit_json(run_dir / "alignment" / "commit.json", lambda c: c.pop(CHECKSUM_KEY), rechecksum=False)
    assert snapshot(run_dir) == want
    report = check_run(run_dir)
    assert report.ok and any("before chunk checksums" in n for n in report.notes)
    # A commit record without its checksum is damage only in a run that promises them.
    edit_json(run_dir / "zarr.json", lambda a: a.update({INTEGRITY_KEY: 1}), rechecksum=False)
    with pytest.raises(StoreError, match="no checksum"):
        Run.open(run_dir)


def test_check_command_exit_codes(run_dir, tmp_path, capsys):
    assert check_command(Namespace(run=str(run_dir))) == 0
    assert "ok (3 epochs" in capsys.readouterr().out
    flip_byte(run_dir / "activations" / "test" / "fc" / "c" / "2" / "0" / "0")
    assert check_command(Namespace(run=str(run_dir))) == 1
    out = capsys.readouterr().out
    assert "DAMAGED, 1 problem" in out and "activations/test/fc" in out and "c/2/0/0" in out
    (tmp_path / "plain").mkdir()
    for not_a_run in (tmp_path / "nowhere", tmp_path / "plain"):
        assert check_command(Namespace(run=str(not_a_run))) == 2
        assert "grandtour check:" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad inputs


def test_an_import_label_of_10_to_the_12_or_negative_is_refused_before_anything_is_written(tmp_path):
    acts = {"x": np.zeros((2, 3, 4))}
    with pytest.raises(StoreError, match="at most 32767 classes"):
        Run.from_arrays(tmp_path / "run", acts, np.array([0, 1, 10**12]))
    with pytest.raises(StoreError, match="below the smallest allowed value 0"):
        Run.from_arrays(tmp_path / "run", acts, np.array([0, -1, 2]))
    np.savez(tmp_path / "big.npz", labels=np.array([0, 1, 10**12]), **{"act/x": np.zeros((3, 4))})
    with pytest.raises(StoreError, match="at most 32767 classes"):
        Run.from_npz(tmp_path / "big.npz", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_activations_beyond_float32_are_refused_not_turned_into_nan(tmp_path):
    huge = np.ones((3, 4))
    huge[1, 2] = 1e300
    with pytest.raises(StoreError, match=r"1e\+300.*rescale"):
        Run.from_arrays(tmp_path / "imported", {"x": huge}, np.arange(3))
    assert not (tmp_path / "imported").exists()
    path = make(tmp_path / "run", epochs=[0])
    before = snapshot(path)
    d = epoch_data(1)
    d["activations"]["test"]["fc"] = d["activations"]["test"]["fc"] * 1e299
    with RunWriter.open(path) as w:
        with pytest.raises(StoreError, match="beyond what a run stores"):
            w.write_epoch(1, **d)
        adv = adversarial_data(1)
        adv["epoch"], adv["activations"]["fc"] = 0, adv["activations"]["fc"] * 1e300
        with pytest.raises(StoreError, match="beyond what a run stores"):
            w.write_adversarial("default", **adv)
    assert snapshot(path) == before
    assert json.loads((path / "activations/test/fc/zarr.json").read_text())["shape"][0] == 1  # not grown
    # Large but representable: a power-of-two scale computed in float64, read back finite.
    big = np.random.default_rng(0).standard_normal((3, 4)) * 1e37
    run = Run.from_arrays(tmp_path / "big", {"x": big}, np.arange(3))
    _, scale = run.activations_float16("x", 0, "train")
    assert np.isfinite(scale) and scale == 2.0 ** round(np.log2(scale))
    back = run.activations("x", 0, "train")
    assert np.isfinite(back).all()
    assert np.all(np.abs(back - big) <= 2.0**-11 * np.abs(big) + 2.0**-24 * scale)


def test_epochs_above_2_to_the_31_are_refused(tmp_path):
    with pytest.raises(StoreError, match="2147483648 is outside 0..2147483647"):
        Run.from_arrays(tmp_path / "imported", {"x": np.zeros((1, 3, 2))}, np.arange(3), epochs=[2**31])
    assert not (tmp_path / "imported").exists()
    with create(tmp_path / "run") as w:
        with pytest.raises(StoreError, match="epochs are at most 2147483647"):
            w.write_epoch(2**31, **epoch_data(0))
        w.write_epoch(2**31 - 1, **epoch_data(0))
    assert Run.open(tmp_path / "run").epochs == [2**31 - 1]


def _failing_put(monkeypatch, after: int, code: int) -> list[int]:
    """Make zarr's chunk and metadata writes fail with ``code`` from call ``after`` on."""
    from zarr.storage import _local

    calls = [0]
    real = _local._put

    def put(*args, **kw):
        calls[0] += 1
        if calls[0] > after:
            raise OSError(code, os.strerror(code))
        return real(*args, **kw)

    monkeypatch.setattr(_local, "_put", put)
    return calls


def test_disk_full_at_every_write_of_an_epoch_leaves_the_run_as_before(tmp_path, monkeypatch):
    template = make(tmp_path / "template", epochs=[0, 1])
    before = snapshot(template)
    with monkeypatch.context() as m:  # how many writes an epoch makes
        calls = _failing_put(m, 10**9, errno.ENOSPC)
        with RunWriter.open(shutil.copytree(template, tmp_path / "count")) as w:
            w.write_epoch(2, **epoch_data(2))
        n_writes = calls[0]
    assert n_writes > 10
    for after in range(n_writes):
        path = shutil.copytree(template, tmp_path / f"full{after}")
        with monkeypatch.context() as m:
            _failing_put(m, after, errno.ENOSPC)
            with RunWriter.open(path) as w, pytest.raises(StoreError, match="no space left.*resume"):
                w.write_epoch(2, **epoch_data(2))
        assert snapshot(path) == before, f"failed write {after + 1} of {n_writes} changed the run"
        assert not [p for p in path.rglob("*") if p.name.endswith((".partial", ".tmp"))]
    path = shutil.copytree(template, tmp_path / "full")
    with monkeypatch.context() as m:  # the commit record itself: the disk fills on its fsync
        def fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        m.setattr(os, "fsync", fsync)
        with RunWriter.open(path) as w, pytest.raises(StoreError, match="no space left"):
            w.write_epoch(2, **epoch_data(2))
    assert snapshot(path) == before and check_run(path).ok
    with RunWriter.open(path) as w:  # space freed: the epoch is written
        w.write_epoch(2, **epoch_data(2))
    assert Run.open(path).epochs == [0, 1, 2]


@pytest.mark.parametrize("after", [0, 5, 20])
def test_disk_full_while_creating_writes_nothing(tmp_path, monkeypatch, after):
    with monkeypatch.context() as m:
        _failing_put(m, after, errno.ENOSPC)
        with pytest.raises(StoreError, match="no space left"):
            create(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()


def test_a_read_only_output_directory_is_a_message_and_writes_nothing(tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if "ro" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", mkdir)
        with pytest.raises(StoreError, match="read-only.*Choose a directory you can write to"):
            create(tmp_path / "ro" / "run")
    assert not (tmp_path / "ro").exists()
    path = make(tmp_path / "run", epochs=[0])
    (path / "writer.lock").unlink()
    real_open = os.open

    def open_(p, flags, *a, **kw):
        if str(p).endswith("writer.lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(p, flags, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(os, "open", open_)
        with pytest.raises(StoreError, match="read-only"):
            RunWriter.open(path)
        with pytest.raises(StoreError, match="read-only"):
            Run.open(path).create_group("alignment", {V: 1})
        assert Run.open(path).epochs == [0]  # reading a read-only run needs no lock
    with monkeypatch.context() as m:
        _failing_put(m, 0, errno.EACCES)
        with RunWriter.open(path) as w, pytest.raises(StoreError, match="read-only or not yours"):
            w.write_epoch(1, **epoch_data(1))
    assert Run.open(path).epochs == [0]
