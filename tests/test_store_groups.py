"""The store's identity API (tokens, stamps, checks) and its derived groups (RUN/alignment, ...)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from grandtour import store  # noqa: E402
from grandtour.errors import NotAlignedError, StoreError  # noqa: E402
from grandtour.store import DERIVED_GROUPS, DerivedGroup, LayerInfo, ProbeSet, Run, RunWriter, StoreKeyError  # noqa: E402

LAYERS = [LayerInfo("input", "input", (4,), static=True), LayerInfo("fc", "linear", (3,))]
N = 5
V = "grandtour_test_version"  # the version key the owner of a group chooses


def make_run(path, epochs=(0, 1, 2), **kw) -> RunWriter:
    w = RunWriter.create(path, dataset="toy", class_names=["a", "b"], layers=LAYERS,
                         probes={"train": ProbeSet(labels=np.arange(N) % 2),
                                 "test": ProbeSet(labels=np.arange(N) % 2)}, **kw)
    for e in epochs:
        write(w, e)
    return w


def write(w: RunWriter, epoch: int) -> None:
    rng = np.random.default_rng(epoch)
    w.write_epoch(epoch, activations={s: {"input": np.ones((N, 4)), "fc": rng.random((N, 3))}
                                      for s in ("train", "test")})


# --------------------------------------------------------------------------- identity


def test_epoch_token_is_stable_across_reopen_and_changes_when_the_run_is_recreated(tmp_path):
    path = tmp_path / "run"
    make_run(path)
    run = Run.open(path)
    tokens = {e: run.epoch_token(e) for e in run.epochs}
    assert all(len(t) == 20 and int(t, 16) >= 0 for t in tokens.values())
    assert len(set(tokens.values())) == 3  # each epoch its own identity
    assert {e: Run.open(path).epoch_token(e) for e in (0, 1, 2)} == tokens
    assert run.epoch_token(np.int64(1)) == tokens[1]
    assert run.epoch_token(7) == "" and run.epoch_token(True) == ""
    # The same epochs written again (within the same second, too) are other data.
    make_run(path, overwrite=True)
    again = Run.open(path)
    assert all(again.epoch_token(e) not in tokens.values() for e in (0, 1, 2))
    # The old reader still answers for what it loaded until it refreshes.
    assert run.epoch_token(0) == tokens[0]
    run.refresh()
    assert run.epoch_token(0) == again.epoch_token(0)


def test_epoch_token_appears_with_the_commit_after_refresh(tmp_path):
    w = make_run(tmp_path / "run", epochs=(0,))
    run = Run.open(tmp_path / "run")
    write(w, 1)
    assert run.epoch_token(1) == ""  # not yet refreshed: not committed as far as it knows
    run.refresh()
    assert run.epoch_token(1) != "" and run.epoch_token(1) != run.epoch_token(0)


def test_commit_stamp_and_last_commit_time_follow_the_commit_record(tmp_path):
    w = make_run(tmp_path / "run", epochs=(0,))
    run = Run.open(tmp_path / "run")
    before = run.commit_stamp()
    assert before and run.commit_stamp() == before  # cheap and repeatable
    write(w, 1)
    after = run.commit_stamp()
    assert after != before  # replaced, even if within the same clock tick
    commit = tmp_path / "run" / store.COMMIT_FILE
    assert run.last_commit_time() == os.stat(commit).st_mtime
    os.unlink(commit)
    assert run.commit_stamp() == () and run.last_commit_time() is None


def test_adversarial_token_names_the_generation(tmp_path):
    w = make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    assert run.adversarial_token("default") == ""
    rec = dict(epoch=1, source=0, target=1, eps=0.1, split="test", example_index=np.arange(2),
               activations={"fc": np.zeros((3, 2, 3))}, images=np.zeros((3, 2, 1, 2, 2), np.uint8),
               predictions=np.zeros((3, 2), int), target_loss=np.zeros(3))
    w.write_adversarial("default", **rec)
    run.refresh()
    first = run.adversarial_token("default")
    assert first != "" and Run.open(tmp_path / "run").adversarial_token("default") == first
    w.write_adversarial("default", **rec)  # rewritten: a new generation
    run.refresh()
    assert run.adversarial_token("default") not in ("", first)


def test_created_and_probe_info_come_from_the_root_metadata(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    attrs = zarr.open_group(tmp_path / "run", mode="r").attrs
    assert run.created == attrs["created"] and run.created.endswith("+00:00")
    assert run.probe_info == {"train": {"size": N, "indices": False, "images": None},
                              "test": {"size": N, "indices": False, "images": None}}
    run.probe_info["train"]["size"] = 99  # a copy: the run is not changed through it
    assert run.probe_info["train"]["size"] == N and run.size("train") == N


def test_check_epoch_and_check_split_list_what_exists(tmp_path):
    w = make_run(tmp_path / "run")
    write(w, 7)
    run = Run.open(tmp_path / "run")
    assert run.check_epoch(7) == 7
    got = run.check_epoch(np.int32(2))
    assert got == 2 and type(got) is int
    for bad in (5, -1, True, 1.0, "1", None):
        with pytest.raises(StoreKeyError, match=r"0-2, 7") as err:
            run.check_epoch(bad)
        assert isinstance(err.value, KeyError)
    assert run.check_split("test") == "test"
    with pytest.raises(StoreKeyError, match="'valid'.*splits: train, test"):
        run.check_split("valid")


def test_not_aligned_error_is_a_store_lookup_error():
    err = NotAlignedError("run r has not been aligned; run `grandtour align r`")
    assert isinstance(err, StoreError) and isinstance(err, LookupError)
    assert store.NotAlignedError is NotAlignedError


# --------------------------------------------------------------------------- derived groups


def test_group_round_trip(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    assert run.group("alignment", version_key=V, version=1) is None  # never written
    assert run.group_stamp("alignment") == ()
    g = run.create_group("alignment", {V: 1, "epochs": {}})
    basis = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    g.write("maps/fc/0/basis_in", basis)
    g.write("offset", np.arange(3.0))
    g.write("scalar", np.float64(2.5))
    g.record["epochs"]["0"] = {"arrays": ["basis_in"]}
    g.commit()
    assert g.stamp == run.group_stamp("alignment") != ()

    r = run.group("alignment", version_key=V, version=1)
    assert isinstance(r, DerivedGroup) and r.name == "alignment" and not r.writable
    assert r.record == {V: 1, "epochs": {"0": {"arrays": ["basis_in"]}}}
    assert r.stamp == g.stamp
    np.testing.assert_array_equal(r.read("maps/fc/0/basis_in"), basis)
    assert r.read("maps/fc/0/basis_in").dtype == np.float32
    np.testing.assert_array_equal(r.read("offset"), np.arange(3.0))
    assert float(r.read("scalar")) == 2.5
    assert r.has("offset") and r.has("maps/fc/0/basis_in")
    assert not r.has("maps/fc/1/basis_in") and not r.has("maps")  # a group is not an array
    # Zarr v3, Zstandard level 1 then a crc32c checksum, as the arrays of the run.
    arr = zarr.open_array(tmp_path / "run" / "alignment" / "maps" / "fc" / "0" / "basis_in", mode="r")
    assert [(c.to_dict()["name"], (c.to_dict().get("configuration") or {}).get("level"))
            for c in arr.compressors] == [("zstd", 1), ("crc32c", None)]
    # open_group: the same, writable; overwriting an array replaces it.
    w = run.open_group("alignment", version_key=V, version=1)
    w.write("offset", np.zeros(5))
    w.record["more"] = True
    w.commit()
    r2 = run.group("alignment", version_key=V, version=1)
    assert r2.record["more"] is True and r2.read("offset").shape == (5,)


def test_group_arrays_are_chunked_along_their_first_axis_only(tmp_path, monkeypatch):
    make_run(tmp_path / "run")
    monkeypatch.setattr(store.codec, "CHUNK_BYTES", 4 * 3 * 4)  # four float32 rows of 3
    g = Run.open(tmp_path / "run").create_group("comparisons", {V: 1})
    data = np.arange(30, dtype=np.float32).reshape(10, 3)
    g.write("x", data)
    g.commit()
    arr = zarr.open_array(tmp_path / "run" / "comparisons" / "x", mode="r")
    assert arr.chunks == (4, 3)
    np.testing.assert_array_equal(Run.open(tmp_path / "run").group(
        "comparisons", version_key=V, version=1).read("x"), data)


def test_a_reader_sees_only_committed_records(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    g = run.create_group("alignment", {V: 1, "epochs": {}})
    early = run.group("alignment", version_key=V, version=1)
    g.write("coords/0", np.ones((N, 2)))
    g.record["epochs"]["0"] = {"coords": True}
    # Arrays written, record not yet committed: a reader opened now sees the old record.
    mid = run.group("alignment", version_key=V, version=1)
    assert mid.record["epochs"] == {} and early.record["epochs"] == {}
    assert run.group_stamp("alignment") == early.stamp
    g.commit()
    assert run.group_stamp("alignment") != early.stamp  # how a reader learns to reopen
    assert early.record["epochs"] == {}  # a snapshot: what it read, not what is there now
    late = run.group("alignment", version_key=V, version=1)
    assert late.record["epochs"] == {"0": {"coords": True}}
    np.testing.assert_array_equal(late.read("coords/0"), np.ones((N, 2)))


def test_damaged_group_records_and_arrays_are_named(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    g = run.create_group("alignment", {V: 1})
    g.write("basis", np.eye(3))
    g.commit()
    cpath = tmp_path / "run" / "alignment" / store.COMMIT_FILE
    for garbage in ("{not json", "[1, 2]", json.dumps({"other": 1}), ""):
        cpath.write_text(garbage)
        with pytest.raises(StoreError, match=r"alignment record .*alignment.* is corrupt.*--force") as err:
            run.group("alignment", version_key=V, version=1)
        assert str(cpath) in str(err.value)
        with pytest.raises(StoreError, match="corrupt"):
            run.open_group("alignment", version_key=V, version=1)
    cpath.write_text(json.dumps({V: 1}))
    r = run.group("alignment", version_key=V, version=1)
    np.testing.assert_array_equal(r.read("basis"), np.eye(3))
    with pytest.raises(StoreError, match=r"alignment array 'missing'.*missing or corrupt.*--force"):
        r.read("missing")
    (tmp_path / "run" / "alignment" / "basis" / store.schema.ZARR_META).write_text("{")
    with pytest.raises(StoreError, match=r"alignment array 'basis' in .*alignment.*--force"):
        run.group("alignment", version_key=V, version=1).read("basis")


def test_newer_or_odd_group_versions_are_refused(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    run.create_group("alignment", {V: 2})
    with pytest.raises(StoreError, match=r"newer grandtour.*upgrade grandtour.*--force"):
        run.group("alignment", version_key=V, version=1)
    assert run.group("alignment", version_key=V, version=2).record == {V: 2}
    for odd in ("1", 1.0, True, None):
        run.create_group("alignment", {V: odd})
        with pytest.raises(StoreError, match="--force"):
            run.group("alignment", version_key=V, version=3)


def test_create_group_replaces_only_that_group(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    old = run.create_group("alignment", {V: 1})
    old.write("stale", np.ones(3))
    old.commit()
    other = run.create_group("comparisons", {V: 1})
    other.write("keep", np.ones(2))
    other.commit()
    new = run.create_group("alignment", {V: 1, "fresh": True})
    assert not new.has("stale")
    assert sorted(p.name for p in (tmp_path / "run" / "alignment").iterdir()) == [store.COMMIT_FILE]
    assert run.group("comparisons", version_key=V, version=1).has("keep")
    assert Run.open(tmp_path / "run").epochs == [0, 1, 2]  # the run itself is untouched
    # A run holding derived groups is still a run that --overwrite may replace.
    make_run(tmp_path / "run", overwrite=True)
    assert not (tmp_path / "run" / "alignment").exists()


def test_group_names_and_read_only_groups_are_enforced(tmp_path):
    make_run(tmp_path / "run")
    run = Run.open(tmp_path / "run")
    assert DERIVED_GROUPS == ("alignment", "comparisons")
    for call in (lambda: run.group("activations", version_key=V, version=1),
                 lambda: run.open_group("../x", version_key=V, version=1),
                 lambda: run.create_group("probes", {V: 1})):
        with pytest.raises(ValueError, match="alignment, comparisons"):
            call()
    assert (tmp_path / "run" / "probes").is_dir()  # create_group did not touch it
    run.create_group("alignment", {V: 1})
    r = run.group("alignment", version_key=V, version=1)
    with pytest.raises(StoreError, match="read-only.*open_group"):
        r.write("x", np.ones(2))
    with pytest.raises(StoreError, match="read-only"):
        r.commit()
