"""The run store: round trips, append-only epochs, crash safety, concurrent readers, validation.

Float16 tolerance: a stored activation ``x`` reads back as ``y`` with
``|x - y| <= 2**-11 * |x| + 2**-24 * scale`` (half a float16 ulp, or half the spacing of
float16 subnormals), where ``scale`` is 1 unless the layer needed a power-of-two scale.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

import grandtour  # noqa: E402
from grandtour import store  # noqa: E402
from grandtour.cli import main  # noqa: E402
from grandtour.errors import CorruptFileError, StoreError  # noqa: E402
from grandtour.store import (  # noqa: E402
    LayerInfo,
    ProbeSet,
    Run,
    RunWriter,
    StoreKeyError,
    format_info,
)

CLASSES = ["zero", "one", "two"]
# Deterministic per-(epoch, split, layer) data shared with the subprocesses below. Values are
# float16-exact, so a reader can compare them for equality: any trace of another epoch, or of
# the NaN fill of an unwritten chunk, shows.
FIXTURE_SRC = textwrap.dedent("""
    import numpy as np
    from grandtour.store import LayerInfo, ProbeSet

    SIZES = {"train": 6, "test": 5}
    LAYERS = [
        LayerInfo("input", "input", (1, 3, 3), static=True),
        LayerInfo("conv1", "conv2d", (2, 3, 3), module="Conv2d(1, 2, 3, padding=1)",
                  config={"kernel_size": (3, 3), "padding": (1, 1), "out_channels": 2}),
        LayerInfo("fc1", "linear", (4,), config={"in_features": 18, "out_features": 4}),
        LayerInfo("softmax", "softmax", (3,)),
    ]

    def probes():
        return {s: ProbeSet(labels=np.arange(n) % 3, indices=np.arange(n) * 7 + 1,
                            images=(np.arange(n * 9).reshape(n, 1, 3, 3) * (5 + i)).astype(np.uint8))
                for i, (s, n) in enumerate(SIZES.items())}

    def act(epoch, split, layer, scale=1):
        li = [l.name for l in LAYERS].index(layer.name if hasattr(layer, "name") else layer)
        lay = LAYERS[li]
        n = SIZES[split]
        seed = [epoch if not lay.static else 0, li, list(SIZES).index(split)]
        x = np.random.default_rng(seed).standard_normal((n, lay.dim)) * scale
        return x.astype(np.float16).astype(np.float32)

    def epoch_data(epoch, *, with_static=True, scale=1):
        acts = {s: {l.name: act(epoch, s, l, scale) for l in LAYERS if with_static or not l.static}
                for s in SIZES}
        preds = {s: (np.arange(n) + epoch) % 3 for s, n in SIZES.items()}
        mets = {s: {"loss": 1.0 / (epoch + 1), "accuracy": (epoch % 7) / 7,
                    "class_loss": np.arange(3) + epoch, "class_accuracy": np.full(3, 0.25 + i)}
                for i, s in enumerate(SIZES)}
        params = {"fc1": {"weight": np.full((4, 18), epoch, np.float64), "bias": np.arange(4.0) * epoch},
                  "conv1": {"weight": np.full((2, 1, 3, 3), -epoch, np.float32)}}
        return dict(activations=acts, predictions=preds, metrics=mets, params=params)
""")
FIX: dict = {}
exec(compile(FIXTURE_SRC, "<store fixture>", "exec"), FIX)
LAYERS: list[LayerInfo] = FIX["LAYERS"]
SIZES: dict[str, int] = FIX["SIZES"]
act = FIX["act"]
epoch_data = FIX["epoch_data"]


def new_run(path: Path, epochs=(), **kw) -> RunWriter:
    w = RunWriter.create(path, dataset="toy", class_names=CLASSES, layers=LAYERS,
                         probes=FIX["probes"](), config={"lr": 0.01, "seed": 3}, **kw)
    for e in epochs:
        w.write_epoch(e, **epoch_data(e))
    return w


def check_epoch(run: Run, epoch: int) -> None:
    """Every array of ``epoch`` reads back exactly as written (the fixture is float16-exact)."""
    d = epoch_data(epoch)
    for split in SIZES:
        for layer in LAYERS:
            np.testing.assert_array_equal(run.activations(layer.name, epoch, split),
                                          d["activations"][split][layer.name],
                                          err_msg=f"{split}/{layer.name} at epoch {epoch}")
        np.testing.assert_array_equal(run.predictions(epoch, split), d["predictions"][split])


def env_with_src() -> dict:
    env = dict(os.environ)
    src = str(Path(grandtour.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_script(body: str, *args: str, **popen) -> subprocess.Popen:
    code = FIXTURE_SRC + "\nimport sys, os, time, signal\nfrom grandtour.store import RunWriter\n" \
        + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env_with_src(), **popen)


def chunk_files(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            if "/c/" in os.path.join(d, f).replace(os.sep, "/"):
                st = os.stat(os.path.join(d, f))
                out[os.path.relpath(os.path.join(d, f), path)] = (st.st_ino, st.st_mtime_ns)
    return out


# --------------------------------------------------------------------------- round trip


def test_round_trip_of_everything(tmp_path):
    rng = np.random.default_rng(1)
    w = new_run(tmp_path / "run")
    written = {}
    for e in range(3):
        d = epoch_data(e)
        # Not float16-exact, and spanning magnitudes down to float16 subnormals.
        for split, n in SIZES.items():
            d["activations"][split]["fc1"] = rng.standard_normal((n, 4)) * 10.0 ** rng.integers(-6, 4, (n, 4))
        w.write_epoch(e, **d)
        written[e] = d
    run = Run.open(tmp_path / "run")
    assert run.dataset == "toy" and run.class_names == CLASSES and run.splits == ["train", "test"]
    assert run.config == {"lr": 0.01, "seed": 3}
    assert run.epochs == [0, 1, 2]
    # Layers come back in network order, config as JSON (tuples -> lists).
    assert [lay.name for lay in run.layers] == [lay.name for lay in LAYERS]
    for got, want in zip(run.layers, LAYERS, strict=True):
        assert (got.kind, got.shape, got.module, got.static) == (want.kind, want.shape, want.module, want.static)
        assert got.config == json.loads(json.dumps(want.config))
        assert got.dim == want.dim
    assert run.layer("conv1").config["kernel_size"] == [3, 3]
    probes = FIX["probes"]()
    for split in SIZES:
        np.testing.assert_array_equal(run.labels(split), probes[split].labels)
        np.testing.assert_array_equal(run.indices(split), probes[split].indices)
        np.testing.assert_array_equal(run.images(split), probes[split].images)
        assert run.images(split).dtype == np.uint8
    for e, d in written.items():
        for split in SIZES:
            for layer in LAYERS:
                x = d["activations"][split][layer.name]
                y = run.activations(layer.name, e, split)
                assert y.dtype == np.float32 and y.shape == (SIZES[split], layer.dim)
                assert np.all(np.abs(y - x) <= 2.0**-11 * np.abs(x) + 2.0**-24), (split, layer.name)
            np.testing.assert_array_equal(run.predictions(e, split), d["predictions"][split])
        np.testing.assert_array_equal(run.params("fc1", e)["weight"], np.full((4, 18), e, np.float32))
        np.testing.assert_array_equal(run.params("fc1", e)["bias"], np.arange(4.0) * e)
        assert run.params("conv1", e)["weight"].dtype == np.float32
        assert run.params("softmax", e) == {}
    for i, split in enumerate(SIZES):
        m = run.metrics(split)
        np.testing.assert_array_equal(m["loss"], [1.0, 0.5, 1 / 3])
        np.testing.assert_array_equal(m["accuracy"], [0, 1 / 7, 2 / 7])
        np.testing.assert_array_equal(m["class_loss"], [np.arange(3) + e for e in range(3)])
        np.testing.assert_array_equal(m["class_accuracy"], np.full((3, 3), 0.25 + i))
    # The activations really are float16 on disk, one epoch per chunk.
    arr = zarr.open_array(tmp_path / "run" / "activations" / "train" / "conv1", mode="r")
    assert arr.dtype == np.float16 and arr.shape == (3, 6, 18) and arr.chunks == (1, 6, 18)
    assert zarr.open_group(tmp_path / "run", mode="r").attrs["grandtour_store_version"] == 1


def test_static_layer_is_stored_once_and_served_for_every_epoch(tmp_path):
    w = new_run(tmp_path / "run", epochs=[0])
    d = epoch_data(1, with_static=False)  # may be omitted once committed
    w.write_epoch(1, **d)
    d = epoch_data(2)
    d["activations"]["train"]["input"] = d["activations"]["train"]["input"] + 100  # ignored
    w.write_epoch(2, **d)
    run = Run.open(tmp_path / "run")
    first = run.activations("input", 0, "train")
    np.testing.assert_array_equal(first, act(0, "train", "input"))
    for e in (1, 2):
        np.testing.assert_array_equal(run.activations("input", e, "train"), first)
    for split in SIZES:
        arr = zarr.open_array(tmp_path / "run" / "activations" / split / "input", mode="r")
        assert arr.shape[0] == 1
        prefix = os.path.join("activations", split, "input")
        files = [f for f in chunk_files(tmp_path / "run") if f.startswith(prefix)]
        assert len(files) == 1


def test_static_layer_is_required_until_first_commit(tmp_path):
    w = new_run(tmp_path / "run")
    with pytest.raises(StoreError, match="input.*static"):
        w.write_epoch(0, **epoch_data(0, with_static=False))


def test_epochs_map_to_slots_in_append_order(tmp_path):
    w = new_run(tmp_path / "run")
    for e in (5, 0, 12):
        w.write_epoch(e, **epoch_data(e))
    assert w.epochs == [0, 5, 12]
    run = Run.open(tmp_path / "run")
    assert run.epochs == [0, 5, 12]
    commit = json.loads((tmp_path / "run" / "commit.json").read_text())
    assert [(c["epoch"], c["slot"]) for c in commit["epochs"]] == [(5, 0), (0, 1), (12, 2)]
    for e in (0, 5, 12):
        check_epoch(run, e)
    # Metrics are aligned with the sorted epochs, not with the slots.
    np.testing.assert_allclose(run.metrics("train")["loss"], [1.0, 1 / 6, 1 / 13])
    np.testing.assert_array_equal(run.metrics("test")["class_loss"][:, 0], [0, 5, 12])
    with pytest.raises(StoreError, match="already in run"):
        w.write_epoch(5, **epoch_data(5))
    with pytest.raises(StoreError, match=">= 0"):
        w.write_epoch(-1, **epoch_data(1))


def test_writing_an_epoch_leaves_other_epochs_chunks_untouched(tmp_path):
    w = new_run(tmp_path / "run", epochs=[0, 1])
    before = chunk_files(tmp_path / "run")
    assert any("activations" in f for f in before)
    w.write_epoch(2, **epoch_data(2))
    after = chunk_files(tmp_path / "run")
    # zarr replaces a rewritten file through a rename, so the inode would change too.
    changed = [f for f, st in before.items() if after.get(f) != st]
    assert changed == []
    assert len(after) > len(before)


def test_reading_one_slice_reads_only_its_chunk(tmp_path):
    new_run(tmp_path / "run", epochs=[0, 1, 2])
    base = tmp_path / "run" / "activations" / "train" / "fc1" / "c"
    for slot in ("0", "2"):  # garbage in the other epochs' chunks: decoding them would fail
        for f in (base / slot).rglob("*"):
            if f.is_file():
                f.write_bytes(b"not zstd at all")
    run = Run.open(tmp_path / "run")
    np.testing.assert_array_equal(run.activations("fc1", 1, "train"), act(1, "train", "fc1"))
    with pytest.raises(StoreError, match="activations/train/fc1"):
        run.activations("fc1", 2, "train")


def test_large_layers_are_chunked_along_examples_only(tmp_path, monkeypatch):
    monkeypatch.setattr(store.codec, "CHUNK_BYTES", 2 * 18 * 4)  # four conv1 rows per chunk
    new_run(tmp_path / "run", epochs=[0, 1])
    arr = zarr.open_array(tmp_path / "run" / "activations" / "train" / "conv1", mode="r")
    assert arr.chunks == (1, 4, 18)
    check_epoch(Run.open(tmp_path / "run"), 1)


def test_reading_some_rows_reads_and_checks_only_the_chunks_that_hold_them(tmp_path, monkeypatch):
    monkeypatch.setattr(store.codec, "CHUNK_BYTES", 2 * 18 * 4)  # conv1: rows 0-3, then 4-5
    new_run(tmp_path / "run", epochs=[0, 1])
    run = Run.open(tmp_path / "run")
    assert run.chunk_rows("train") == 4 and run.chunk_rows("test") == 4  # conv1 is the widest
    rows = np.array([0, 2, 3])
    y, scale = run.activations_float16("conv1", 1, "train", rows)
    assert y.dtype == np.float16 and y.shape == (3, 18) and scale == 1.0
    np.testing.assert_array_equal(y, act(1, "train", "conv1")[rows])
    second = tmp_path / "run" / "activations" / "train" / "conv1" / "c" / "1" / "1" / "0"
    second.write_bytes(b"not zstd at all")  # rows 4-5 of epoch 1
    np.testing.assert_array_equal(run.activations_float16("conv1", 1, "train", rows)[0],
                                  act(1, "train", "conv1")[rows])
    with pytest.raises(StoreError, match=r"c/1/1/0 fails its checksum"):
        run.activations_float16("conv1", 1, "train", np.array([1, 5]))
    second.unlink()
    with pytest.raises(StoreError, match=r"c/1/1/0 is missing"):
        run.activations_float16("conv1", 1, "train", np.array([4]))
    with pytest.raises(StoreKeyError, match="outside the 6 rows"):
        run.activations_float16("conv1", 1, "train", np.array([2, 6]))
# --------------------------------------------------------------------------- values


def test_values_beyond_float16_are_scaled_not_infinite(tmp_path):
    w = new_run(tmp_path / "run")
    d = epoch_data(0)
    x = act(0, "train", "fc1") * 1e7  # up to ~3e7, far beyond float16's 65504
    d["activations"]["train"]["fc1"] = x
    w.write_epoch(0, **d)
    run = Run.open(tmp_path / "run")
    y = run.activations("fc1", 0, "train")
    assert np.isfinite(y).all()
    raw, scale = run.activations_float16("fc1", 0, "train")
    assert raw.dtype == np.float16 and scale > 1 and np.log2(scale) == int(np.log2(scale))
    assert np.all(np.abs(y - x) <= 2.0**-11 * np.abs(x) + 2.0**-24 * scale)
    assert run.activations_float16("fc1", 0, "test")[1] == 1.0  # only where needed
    assert run.nonfinite(0)["train"]["fc1"] == 0


def test_static_layer_keeps_its_scale_and_non_finite_count(tmp_path):
    w = new_run(tmp_path / "run")
    d = epoch_data(0)
    x = act(0, "test", "input") * 1e6
    x[2, 1] = np.nan
    d["activations"]["test"]["input"] = x
    w.write_epoch(0, **d)
    w.write_epoch(1, **epoch_data(1, with_static=False))
    run = Run.open(tmp_path / "run")
    for e in (0, 1):
        y = run.activations("input", e, "test")
        ok = np.isfinite(x)
        assert np.all(np.abs(y[ok] - x[ok]) <= 2.0**-11 * np.abs(x[ok]) + 1.0)
        assert np.isnan(y[2, 1])
        assert run.nonfinite(e)["test"]["input"] == 1 and run.nonfinite(e)["train"]["input"] == 0
    np.testing.assert_array_equal(run.activations("input", 1, "train"), act(0, "train", "input"))


def test_non_finite_activations_are_stored_and_counted(tmp_path):
    w = new_run(tmp_path / "run")
    d = epoch_data(0)
    x = act(0, "test", "softmax") * 1e6
    x[1, 0], x[3, :] = np.nan, np.inf
    d["activations"]["test"]["softmax"] = x
    w.write_epoch(0, **d)
    w.write_epoch(1, **epoch_data(1))
    run = Run.open(tmp_path / "run")
    y = run.activations("softmax", 0, "test")
    assert np.isnan(y[1, 0]) and np.isposinf(y[3]).all()
    finite = np.isfinite(x)
    assert np.all(np.abs(y[finite] - x[finite]) <= 2.0**-11 * np.abs(x[finite]) + 1.0)
    assert run.nonfinite(0)["test"]["softmax"] == 2
    assert run.nonfinite(0)["train"]["softmax"] == 0
    assert all(c == 0 for counts in run.nonfinite(1).values() for c in counts.values())


# --------------------------------------------------------------------------- crash safety

KILL_AT_HOOK = """
    path, stage = sys.argv[1], sys.argv[2]
    def hook(at):
        if at == stage:
            os.kill(os.getpid(), signal.SIGKILL)
    RunWriter._test_hook = hook
    w = RunWriter.open(path)
    epoch = len(w.epochs)
    bad = epoch_data(epoch)
    for split in bad["activations"]:
        for layer in bad["activations"][split]:
            bad["activations"][split][layer] = bad["activations"][split][layer] * 0 + 999
    w.write_epoch(epoch, **bad)
"""


@pytest.mark.parametrize(("stage", "first"), [
    ("resized", False), ("activations", False), ("before_commit", False),
    ("before_commit", True),  # the static input half-written, then committed by the resume
])
def test_kill_inside_write_epoch_reopens_cleanly_and_resumes(tmp_path, stage, first):
    path = tmp_path / "run"
    done = [] if first else [0, 1]
    new_run(path, epochs=done)
    proc = run_script(KILL_AT_HOOK, str(path), stage)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    run = Run.open(path)
    assert run.epochs == done
    for e in done:
        check_epoch(run, e)
    # Resume: the interrupted epoch is written again into the partial slot.
    w = RunWriter.open(path)
    e = len(done)
    w.write_epoch(e, **epoch_data(e))
    w.write_epoch(e + 1, **epoch_data(e + 1))
    run.refresh()
    assert run.epochs == done + [e, e + 1]
    for ep in run.epochs:
        check_epoch(run, ep)
    assert zarr.open_array(path / "activations" / "train" / "fc1", mode="r").shape[0] == e + 2
    assert not [p for p in path.rglob("*") if p.name.endswith((".partial", ".tmp"))]


KILL_ANYTIME = """
    path = sys.argv[1]
    w = RunWriter.open(path)
    for epoch in range(len(w.epochs), 10_000):
        w.write_epoch(epoch, **epoch_data(epoch))
        print(epoch, flush=True)
"""


def test_kill_at_a_random_moment_never_corrupts_committed_epochs(tmp_path, monkeypatch):
    path = tmp_path / "run"
    new_run(path)
    proc = run_script(KILL_ANYTIME, str(path), stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            assert proc.stdout.readline()
        time.sleep(random.uniform(0.0, 0.05))
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    run = Run.open(path)
    assert len(run.epochs) >= 3 and run.epochs == list(range(len(run.epochs)))
    for e in run.epochs:
        check_epoch(run, e)
    e = len(run.epochs)
    RunWriter.open(path).write_epoch(e, **epoch_data(e))
    run.refresh()
    check_epoch(run, e)


SLOW_WRITER = """
    path, n = sys.argv[1], int(sys.argv[2])
    # Widen the window between an epoch's arrays landing and its commit: a reader that
    # trusted the arrays (their shape, their chunks) instead of commit.json would see it.
    RunWriter._test_hook = lambda at: time.sleep(0.03)
    w = RunWriter.open(path)
    for epoch in range(n):
        w.write_epoch(epoch, **epoch_data(epoch))
"""


def test_concurrent_reader_sees_only_committed_epochs_and_eventually_all(tmp_path):
    path = tmp_path / "run"
    new_run(path)
    n = 10
    reader = Run.open(path)
    assert reader.epochs == []
    proc = run_script(SLOW_WRITER, str(path), str(n))
    seen: list[list[int]] = []
    deadline = time.monotonic() + 45
    try:
        while time.monotonic() < deadline:
            reader.refresh()
            epochs = list(reader.epochs)
            assert epochs == list(range(len(epochs))), epochs
            if not seen or epochs != seen[-1]:
                seen.append(epochs)
            if epochs:
                check_epoch(reader, epochs[-1])  # the newest one is the one most at risk
                assert len(reader.metrics("train")["loss"]) == len(epochs)
            if len(epochs) == n:
                break
    finally:
        rc = proc.wait(timeout=60)
    assert rc == 0
    assert seen[-1] == list(range(n))
    assert len(seen) >= 3  # the reader watched the run grow, not only its end
    for e in range(n):
        check_epoch(reader, e)


# --------------------------------------------------------------------------- validation


def test_write_epoch_validates_shapes_keys_and_values(tmp_path):
    w = new_run(tmp_path / "run", epochs=[0])

    def attempt(change, match, exc=StoreError):
        d = epoch_data(1)
        change(d)
        with pytest.raises(exc, match=match):
            w.write_epoch(1, **d)

    attempt(lambda d: d["activations"]["train"].update(fc1=np.zeros((5, 4))), r"\(5, 4\).*\(6, 4\)")
    attempt(lambda d: d["activations"]["test"].update(conv1=np.zeros((5, 17))), "dim 18")
    attempt(lambda d: d["activations"]["train"].update(fc9=np.zeros((6, 4))), "fc9.*known: input, conv1",
            StoreKeyError)
    attempt(lambda d: d["activations"]["test"].pop("fc1"), "lacks layer 'fc1'")
    attempt(lambda d: d["activations"].pop("test"), "lacks split.*'test'")
    attempt(lambda d: d["activations"].update(valid=d["activations"]["test"]), "valid", StoreKeyError)
    attempt(lambda d: d["predictions"].update(train=np.full(6, 3)), "below 3")
    attempt(lambda d: d["predictions"].update(train=np.zeros(6) + 0.5), "integers")
    attempt(lambda d: d["metrics"]["train"].update(class_loss=np.zeros(4)), r"class_loss.*\(3,\)")
    attempt(lambda d: d["metrics"]["train"].update(top5=0.3), "top5", StoreKeyError)
    attempt(lambda d: d["params"].update(fc7={"weight": np.zeros(3)}), "fc7", StoreKeyError)
    attempt(lambda d: d["params"]["fc1"].update(weight=np.zeros((18, 4))), r"earlier epochs stored \(4, 18\)")
    # Validation happens before any write: nothing grew, and the epoch can still be written.
    assert zarr.open_array(tmp_path / "run" / "activations" / "train" / "fc1", mode="r").shape[0] == 1
    # (N, *layer.shape) is accepted as well as (N, dim).
    d = epoch_data(1)
    d["activations"]["train"]["conv1"] = d["activations"]["train"]["conv1"].reshape(6, 2, 3, 3)
    w.write_epoch(1, **d)
    check_epoch(Run.open(tmp_path / "run"), 1)


def test_reader_lookups_name_what_exists(tmp_path):
    new_run(tmp_path / "run", epochs=[0, 1, 2, 7])
    run = Run.open(tmp_path / "run")
    with pytest.raises(StoreKeyError, match="fc9.*input, conv1, fc1, softmax") as err:
        run.activations("fc9", 0, "train")
    assert isinstance(err.value, KeyError) and "fc9" in str(err.value)
    with pytest.raises(StoreKeyError, match="valid.*train, test"):
        run.activations("fc1", 0, "valid")
    with pytest.raises(StoreKeyError, match="epoch 5.*0-2, 7"):
        run.activations("fc1", 5, "train")
    with pytest.raises(StoreKeyError, match="epoch 5"):
        run.params("fc1", 5)
    with pytest.raises(StoreKeyError, match="no adversarial record 'default'.*none"):
        run.adversarial()
    with pytest.raises(StoreKeyError, match="layers: input"):
        run.layer("nope")


def test_open_explains_what_is_wrong_with_the_path(tmp_path):
    with pytest.raises(StoreError, match="does not exist.*grandtour train"):
        Run.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a grandtour run"):
        Run.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="is a file"):
        RunWriter.open(tmp_path / "plain" / "notes.txt")
    new_run(tmp_path / "run", epochs=[0])
    commit = tmp_path / "run" / "commit.json"
    commit.write_text("{ not json")
    with pytest.raises(StoreError, match="commit.json.*corrupt"):
        Run.open(tmp_path / "run")
    commit.unlink()
    with pytest.raises(StoreError, match="incomplete.*overwrite"):
        Run.open(tmp_path / "run")


def test_damaged_arrays_are_named(tmp_path):
    new_run(tmp_path / "run", epochs=[0, 1])
    run = Run.open(tmp_path / "run")
    # A missing chunk reads back as the NaN fill; the commit record's count exposes it.
    chunk_dir = tmp_path / "run" / "activations" / "test" / "conv1" / "c" / "1"
    for f in chunk_dir.rglob("*"):
        if f.is_file():
            f.unlink()
    with pytest.raises(StoreError, match="activations/test/conv1.*epoch 1.*missing"):
        run.activations("conv1", 1, "test")
    (tmp_path / "run" / "probes" / "train" / "labels" / "zarr.json").unlink()
    with pytest.raises(StoreError, match="probes/train/labels.*missing"):
        run.labels("train")
    np.testing.assert_array_equal(run.labels("test"), np.arange(5) % 3)


def test_create_validates_names_and_writes_nothing_outside_the_run(tmp_path):
    probes = FIX["probes"]()
    for bad in ("../evil", "a/b", ".hidden", "__x", ""):
        with pytest.raises(StoreError, match="invalid layer name"):
            RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES,
                             layers=[LayerInfo(bad, "linear", (2,))], probes=probes)
    with pytest.raises(StoreError, match="invalid split name"):
        RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES, layers=LAYERS,
                         probes={"../x": probes["train"]})
    with pytest.raises(StoreError, match="'FC'.*'fc'"):
        RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES, probes=probes,
                         layers=[LayerInfo("FC", "linear", (2,)), LayerInfo("fc", "linear", (2,))])
    with pytest.raises(StoreError, match="below 3"):
        RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES, layers=LAYERS,
                         probes={"train": ProbeSet(labels=np.array([0, 3]))})
    with pytest.raises(StoreError, match="uint8"):
        RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES, layers=LAYERS,
                         probes={"train": ProbeSet(labels=np.array([0, 1]), images=np.zeros((2, 1, 3, 3)))})
    with pytest.raises(StoreError, match="JSON"):
        RunWriter.create(tmp_path / "run", dataset="toy", class_names=CLASSES, layers=LAYERS,
                         probes=probes, config={"model": object()})
    assert list(tmp_path.iterdir()) == []  # validation failed before anything was made
    new_run(tmp_path / "run", epochs=[0])
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_create_refuses_to_clobber(tmp_path):
    path = tmp_path / "run"
    new_run(path, epochs=[0, 1])
    with pytest.raises(StoreError, match="already exists.*overwrite"):
        new_run(path)
    assert Run.open(path).epochs == [0, 1]
    new_run(path, overwrite=True)
    assert Run.open(path).epochs == []
    # A directory that is not a run is never deleted, even with overwrite.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a grandtour run.*even with overwrite"):
        new_run(other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    # Nor a run holding files a run does not have.
    (path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="notes.txt.*refusing"):
        new_run(path, overwrite=True)
    assert (path / "notes.txt").exists()
    # An existing empty directory is fine.
    (tmp_path / "empty").mkdir()
    new_run(tmp_path / "empty", epochs=[0])
    assert Run.open(tmp_path / "empty").epochs == [0]


def test_update_config_persists(tmp_path):
    w = new_run(tmp_path / "run")
    w.update_config({"resumed_at": 4, "lr": 0.02})
    assert Run.open(tmp_path / "run").config == {"lr": 0.02, "seed": 3, "resumed_at": 4}
    assert RunWriter.open(tmp_path / "run").config == w.config


# --------------------------------------------------------------------------- adversarial


def adversarial_data(steps: int, m: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        epoch=1, source=2, target=0, eps=0.01, split="test", example_index=np.arange(m) + 1,
        activations={"input": rng.standard_normal((steps + 1, m, 1, 3, 3)).astype(np.float16),
                     "fc1": rng.standard_normal((steps + 1, m, 4)).astype(np.float16)},
        images=rng.integers(0, 256, (steps + 1, m, 1, 3, 3), dtype=np.uint8),
        predictions=rng.integers(0, 3, (steps + 1, m)),
        target_loss=np.linspace(2, 0.1, steps + 1))


def test_adversarial_round_trip_and_replace(tmp_path):
    w = new_run(tmp_path / "run", epochs=[0, 1])
    d = adversarial_data(steps=4, m=3)
    w.write_adversarial("default", **d)
    run = Run.open(tmp_path / "run")
    assert run.adversarial_names() == ["default"]
    rec = run.adversarial()
    assert (rec.epoch, rec.source, rec.target, rec.eps, rec.split, rec.steps) == (1, 2, 0, 0.01, "test", 4)
    np.testing.assert_array_equal(rec.example_index, [1, 2, 3])
    np.testing.assert_array_equal(rec.predictions, d["predictions"])
    np.testing.assert_array_equal(rec.target_loss, d["target_loss"])
    for step in range(5):
        np.testing.assert_array_equal(rec.activations("fc1", step), d["activations"]["fc1"][step])
        np.testing.assert_array_equal(rec.activations("input", step), d["activations"]["input"][step].reshape(3, 9))
        np.testing.assert_array_equal(rec.images(step), d["images"][step])
    assert rec.activations("fc1").shape == (5, 3, 4)
    with pytest.raises(StoreKeyError, match="steps 0..4"):
        rec.activations("fc1", 5)
    with pytest.raises(StoreKeyError, match="conv1.*input, fc1"):
        rec.activations("conv1", 0)
    # Replacing a record: a reader sees the new one, the old generation is gone.
    d2 = adversarial_data(steps=2, m=2, seed=1)
    w.write_adversarial("default", **d2)
    w.write_adversarial("eps05", **{**d2, "eps": 0.05})
    run.refresh()
    assert run.adversarial_names() == ["default", "eps05"]
    assert run.adversarial().steps == 2 and run.adversarial("eps05").eps == 0.05
    np.testing.assert_array_equal(run.adversarial().activations("fc1", 2), d2["activations"]["fc1"][2])
    assert sorted(p.name for p in (tmp_path / "run" / "adversarial" / "default").iterdir()) == ["1", "zarr.json"]
    # Epoch data written after the record must not drop it (each commit re-reads the record).
    w.write_epoch(2, **epoch_data(2))
    assert Run.open(tmp_path / "run").adversarial_names() == ["default", "eps05"]


def test_adversarial_validation(tmp_path):
    w = new_run(tmp_path / "run", epochs=[0])
    good = adversarial_data(steps=3, m=2)
    cases = [({"epoch": 4}, "epoch 4 is not a completed epoch", StoreKeyError),
             ({"split": "valid"}, "valid", StoreKeyError),
             ({"target": 3}, "target class 3", StoreError),
             ({"example_index": np.array([0, 5])}, "below 5", StoreError),
             ({"activations": {"fc1": np.zeros((4, 2, 5))}}, r"\(4, 2, 4\)", StoreError),
             ({"images": np.zeros((4, 2, 1, 3, 3))}, "uint8", StoreError),
             ({"target_loss": np.zeros(3)}, r"\(4,\)", StoreError)]
    for change, match, exc in cases:
        with pytest.raises(exc, match=match):
            w.write_adversarial("default", **{**good, "epoch": 0, **change})
    assert Run.open(tmp_path / "run").adversarial_names() == []


# --------------------------------------------------------------------------- import, info


def test_from_arrays(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 1, 3, 0])
    acts = {"input": rng.standard_normal((5, 7)), "hidden": rng.standard_normal((3, 5, 4)),
            "out": rng.standard_normal((3, 5, 4))}
    run = Run.from_arrays(tmp_path / "run", acts, labels, epochs=[10, 20, 30],
                          layer_kinds={"hidden": "relu"})
    assert run.class_names == ["0", "1", "2", "3"]
    assert run.epochs == [10, 20, 30] and run.splits == ["train"]
    assert [(lay.name, lay.kind, lay.shape, lay.static) for lay in run.layers] == [
        ("input", "input", (7,), True), ("hidden", "relu", (4,), False), ("out", "unknown", (4,), False)]
    for i, e in enumerate(run.epochs):
        x = acts["hidden"][i]
        assert np.all(np.abs(run.activations("hidden", e, "train") - x) <= 2.0**-11 * np.abs(x) + 2.0**-24)
        np.testing.assert_array_equal(run.activations("input", e, "train"),
                                      run.activations("input", 10, "train"))
    np.testing.assert_array_equal(run.predictions(20, "train"), np.full(5, -1))
    assert np.isnan(run.metrics("train")["accuracy"]).all()
    with pytest.raises(StoreError, match=r"\(E, 5, dim\)"):
        Run.from_arrays(tmp_path / "bad", {"a": np.zeros((2, 4, 3))}, labels)
    with pytest.raises(StoreError, match="same E"):
        Run.from_arrays(tmp_path / "bad", {"a": np.zeros((2, 5, 3)), "b": np.zeros((3, 5, 3))}, labels)
    with pytest.raises(StoreError, match="already exists"):
        Run.from_arrays(tmp_path / "run", acts, labels)


def test_from_npz_import_command_and_info(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "acts.npz"
    np.savez(npz, labels=np.array([0, 1, 2, 1]), class_names=np.array(["cat", "dog", "cow"]),
             epochs=np.array([1, 2]), layer_kinds=np.array(["linear", "softmax"]),
             images=np.zeros((4, 8, 8), np.uint8), dataset=np.array("farm"),
             **{"act/dense": rng.standard_normal((2, 4, 6)), "act/probs": rng.random((2, 4, 3))})
    assert main(["import", str(npz), "--out", str(tmp_path / "run")]) == 0
    run = Run.open(tmp_path / "run")
    assert run.class_names == ["cat", "dog", "cow"] and run.dataset == "farm"
    assert run.epochs == [1, 2]
    assert [(lay.name, lay.kind) for lay in run.layers] == [("dense", "linear"), ("probs", "softmax")]
    assert run.images("train").shape == (4, 1, 8, 8)
    with np.load(npz) as f:
        x = f["act/dense"][1]
    assert np.all(np.abs(run.activations("dense", 2, "train") - x) <= 2.0**-11 * np.abs(x) + 2.0**-24)
    # The CLI refuses to clobber and explains, without a traceback.
    capsys.readouterr()
    assert main(["import", str(npz), "--out", str(tmp_path / "run")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import", str(npz), "--out", str(tmp_path / "run"), "--overwrite"]) == 0

    capsys.readouterr()
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    for text in ("dense", "linear", "probs", "softmax", "farm", "cat, dog, cow", "epochs    2 completed: 1-2",
                 "train (N=4)"):
        assert text in out, text

    bad = tmp_path / "bad.npz"
    np.savez(bad, labels=np.array([0]), **{"acts/x": np.zeros((1, 2))})
    with pytest.raises(CorruptFileError, match="acts/x"):
        Run.from_npz(bad, tmp_path / "run2")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match="junk.npz"):
        Run.from_npz(tmp_path / "junk.npz", tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


def test_info_summarises_a_trained_run(tmp_path, capsys):
    w = new_run(tmp_path / "run", epochs=[0, 1, 2])
    w.write_adversarial("default", **adversarial_data(steps=3, m=2))
    text = format_info(Run.open(tmp_path / "run"))
    for layer in LAYERS:
        assert layer.name in text and layer.kind in text
    assert "2x3x3" in text and "static" in text
    assert "accuracy  at epoch 2: train 0.2857 (loss 0.3333), test 0.2857" in text
    assert "default: epoch 1, two -> zero, eps 0.01, 3 steps, 2 examples of test" in text
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
