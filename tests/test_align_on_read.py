"""What `grandtour align` no longer does per epoch (issue 14), and why nothing changes for readers.

Reduced coordinates ``X R`` are computed when read instead of stored (layout version 2):
every reader gets the very numbers a version-1 alignment stored, and version-1 alignments
still read. Each transition is checked on a fixed, seeded sample of the probe points,
says so, and a wrong input is still caught on that sample.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")
pytest.importorskip("scipy")

from grandtour.align import (
    Aligner,
    AlignmentWarning,
    align_run,
    layer_coordinates,
    load_transition,
)
from grandtour.align import reduction as align_reduction
from grandtour.align import storage as align_storage
from grandtour.align import transitions as align_transitions
from grandtour.errors import StoreError
from grandtour.store import Run, encode_float16

N = {"train": 400, "test": 200}  # 600 points: more than the 256 each check uses
EPOCHS = 2
THRESHOLD = 6  # "x" (8 dims) and "fc" (12) are reduced, "out" (3) is not


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _make_run(path, *, residual: bool) -> Run:
    """x -> fc (linear) -> act (GELU) -> out (linear). With ``residual``, act is recorded as
    GELU(fc + x[:, :1]), a skip the recorded graph does not show: act's input is not fc."""
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((EPOCHS, 12, 8)) / 3
    b1 = rng.standard_normal((EPOCHS, 12)) / 3
    w2 = rng.standard_normal((EPOCHS, 3, 12)) / 3
    acts, labels = {}, {}
    for split, n in N.items():
        x = rng.standard_normal((n, 8))
        fc = np.einsum("ni,eoi->eno", x, w1) + b1[:, None, :]
        act = _gelu(fc + (x[None, :, :1] if residual else 0.0))
        acts[split] = {"x": x, "fc": fc, "act": act, "out": np.einsum("eni,eoi->eno", act, w2)}
        labels[split] = np.arange(n) % 3
    return Run.from_arrays(path, acts, labels, layer_kinds={"fc": "linear", "act": "gelu", "out": "linear"},
                           params={"fc": {"weight": w1, "bias": b1}, "out": {"weight": w2}},
                           layer_configs={"act": {"approximate": "none"}})


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    path = tmp_path_factory.mktemp("onread") / "run"
    _make_run(path, residual=False)
    align_run(path, threshold=THRESHOLD, progress=False)
    return path


def _as_version_1(src, dst):
    """A copy of the aligned run as a version-1 alignment stored it: the reduced coordinates of
    every (layer, epoch, split), float16 with their scale, and the variance each keeps."""
    shutil.copytree(src, dst)
    run = Run.open(dst)
    store = align_storage._AlignmentStore.read(run, writable=True)
    try:
        for info in run.layers:
            red = store.reduction(info.name)
            if red is None:
                continue
            for epoch in ([run.epochs[0]] if info.static else run.epochs):
                doc = {"scale": {}, "variance_kept": {}}
                for split in run.splits:
                    # what align_run stored before layout version 2, line for line
                    x = run.activations(info.name, epoch, split).astype(np.float64)
                    z = (x.astype(np.float32) @ red.basis).astype(np.float64)
                    y, sc, _ = encode_float16(z)
                    store.write(f"coords/{split}/{info.name}/{'static' if info.static else epoch}", y)
                    doc["scale"][split], doc["variance_kept"][split] = sc, align_reduction._variance_kept(x, z)
                if info.static:
                    store.commit["static_coords"][info.name] = doc
                else:
                    store.commit["epochs"][str(epoch)].setdefault("coords", {})[info.name] = doc
        store.commit[align_storage._VERSION_KEY] = 1
        store.save()
    finally:
        store._group.close()
    return dst


def test_an_alignment_stores_no_reduced_coordinates(aligned):
    record = json.loads((aligned / "alignment" / "commit.json").read_text())
    assert record["grandtour_alignment_version"] == align_storage.ALIGNMENT_VERSION == 2
    assert set(record["reductions"]) == {"x", "fc", "act"}
    assert not (aligned / "alignment" / "coords").exists()
    assert not record["static_coords"] and all("coords" not in e for e in record["epochs"].values())
    run = Run.open(aligned)
    red = Aligner(run).reduction("fc")
    z = layer_coordinates(run, "fc", 1, "test")
    # X R (float32), rounded to float16 as the run stores activations
    np.testing.assert_allclose(z, run.activations("fc", 1, "test").astype(np.float64) @ red.basis.astype(np.float64),
                               rtol=2e-3, atol=2e-3)
    assert np.array_equal(z.astype(np.float16).astype(np.float64), z)


def test_readers_get_the_same_bytes_with_and_without_stored_coordinates(aligned, tmp_path, monkeypatch):
    wire = pytest.importorskip("grandtour.server.wire")
    old = _as_version_1(aligned, tmp_path / "v1")
    v1, v2 = Aligner(old), Aligner(aligned)
    assert v1.store.commit["grandtour_alignment_version"] == 1
    calls = []
    real = align_reduction.reduced_coordinates
    monkeypatch.setattr("grandtour.align.aligner.reduced_coordinates",
                        lambda x, b: calls.append(1) or real(x, b))
    for layer in ("fc", "act", "out"):
        for split in N:
            a, b = v1.transition(layer, 1, split), v2.transition(layer, 1, split)
            for name in ("start", "end", "basis_in", "basis_out", "singular_values", "offset"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{layer} {name}")
            assert (a.variance_kept, a.exact, a.note, a.residual, a.checked) == \
                   (b.variance_kept, b.exact, b.note, b.residual, b.checked)
            ra, rb = wire.transition_response(a, "u"), wire.transition_response(b, "u")
            assert ra.body == rb.body and dict(ra.headers) == dict(rb.headers)
            assert wire.basis_response(a).body == wire.basis_response(b).body
    n_v2 = len(calls)
    assert n_v2 > 0  # version 2 computed them ...
    for split in N:  # ... version 1 reads them as stored: nothing is computed
        for layer in ("x", "fc", "act"):
            np.testing.assert_array_equal(Aligner(old).coordinates(layer, 0, split),
                                          Aligner(aligned).coordinates(layer, 0, split))
    assert len(calls) == n_v2 + 3 * len(N)  # only the version-2 reads computed


def test_new_epochs_of_a_version_1_alignment_are_stored_as_version_2(aligned, tmp_path):
    old = _as_version_1(aligned, tmp_path / "v1")
    record = json.loads((old / "alignment" / "commit.json").read_text())
    del record["epochs"]["1"]  # as if epoch 1 had not been aligned yet
    store = align_storage._AlignmentStore.read(Run.open(old), writable=True)
    store.commit["epochs"].pop("1")
    store.save()
    store._group.close()
    assert align_run(old, threshold=THRESHOLD, progress=False)["epochs_aligned"] == [1]
    record = json.loads((old / "alignment" / "commit.json").read_text())
    assert record["grandtour_alignment_version"] == 2
    assert "coords" in record["epochs"]["0"] and "coords" not in record["epochs"]["1"]
    for epoch in (0, 1):  # the stored epoch and the new one both read
        tr = load_transition(old, "act", epoch, "train")
        assert tr.exact and tr.reduced == (True, True)
        np.testing.assert_array_equal(tr.end, load_transition(aligned, "act", epoch, "train").end)


def test_every_check_uses_a_fixed_seeded_sample_and_says_so(aligned):
    total = sum(N.values())
    rows = align_transitions.check_rows(list(N.values()))
    assert [len(r) for r in rows] == [round(256 * n / total) for n in N.values()]  # 171 + 85 = 256
    assert all(np.array_equal(a, b) for a, b in zip(rows, align_transitions.check_rows(list(N.values())), strict=True))
    assert align_transitions.check_rows([100, 100]) is None  # few points: all of them
    record = json.loads((aligned / "alignment" / "commit.json").read_text())
    for epoch in map(str, range(EPOCHS)):
        for layer, entry in record["epochs"][epoch]["layers"].items():
            assert entry["exact"] and entry["checked"] == [256, total], layer
            assert f"checked on a fixed sample of 256 of {total} points" in entry["note"]
    tr = load_transition(aligned, "fc", 1, "test")
    assert tr.checked == (256, total) and tr.residual < 1e-2


def test_a_wrong_input_is_caught_on_the_sample(tmp_path):
    """act is recorded as GELU(fc + skip): read from fc, GELU misses it on the sampled points too."""
    path = tmp_path / "run"
    run = _make_run(path, residual=True)
    with pytest.warns(AlignmentWarning, match="not this layer's input"):
        summary = align_run(path, threshold=THRESHOLD, progress=False)
    assert set(summary["fallbacks"]) == {"act"}
    tr = load_transition(run, "act", 1, "train")
    assert not tr.exact and tr.residual > align_transitions.VERIFY_RTOL
    assert f"checked on a fixed sample of 256 of {sum(N.values())} points" in tr.note
    assert load_transition(run, "fc", 1, "train").exact and load_transition(run, "out", 1, "train").exact


@pytest.mark.parametrize("sizes, most, block", [([400, 200], 32, 50), ([1000, 300], 40, 64),
                                                 ([999, 1], 17, 7), ([100, 100], 150, 30)])
def test_a_sample_of_a_long_split_comes_from_a_few_runs_of_consecutive_rows(sizes, most, block):
    """Rows a read costs in whole chunks: each split's share is drawn among the fewest runs of
    `block` rows (starting at multiples of it) that hold 4 times the share, not all rows."""
    rows = align_reduction.sample_rows(sizes, most, 0, [block] * len(sizes))
    again = align_reduction.sample_rows(sizes, most, 0, [block] * len(sizes))
    assert sum(len(r) for r in rows) == most
    for n, r, r2 in zip(sizes, rows, again, strict=True):
        np.testing.assert_array_equal(r, r2)
        assert np.all(np.diff(r) > 0) and (r.size == 0 or (r[0] >= 0 and r[-1] < n))
        touched = np.unique(r // block)
        needed = -(-align_reduction.BLOCK_SPARE * len(r) // block)  # runs of `block` rows
        assert len(touched) <= min(-(-n // block), needed + 1), (n, touched)
    # A split held in one chunk: the same sample as without chunks (stored runs keep theirs).
    whole = align_reduction.sample_rows(sizes, most, 0)
    for r, w in zip(align_reduction.sample_rows(sizes, most, 0, [max(sizes)] * len(sizes)), whole,
                    strict=True):
        np.testing.assert_array_equal(r, w)


def test_the_check_reads_only_the_chunks_holding_its_sample(tmp_path, monkeypatch):
    """A run stored in many chunks per split: every check reads a few of them. Garbage in every
    other chunk of fc goes unread, and each transition is still checked and exact."""
    from grandtour import store as grandtour_store

    monkeypatch.setattr(grandtour_store.codec, "CHUNK_BYTES", 2 * 12 * 50)  # fc: 50 rows a chunk
    monkeypatch.setattr(align_transitions, "CHECK_POINTS", 32)
    path = tmp_path / "run"
    run = _make_run(path, residual=False)
    assert [run.chunk_rows(s) for s in N] == [50, 50]
    rows = Aligner(run).check_rows()
    assert [len(r) for r in rows] == [21, 11]
    held = {s: set((r // 50).tolist()) for s, r in zip(N, rows, strict=True)}
    assert len(held["train"]) <= 2 and len(held["test"]) <= 1  # of 8 and 4
    for split in N:
        for c in (path / "activations" / split / "fc" / "c").rglob("*"):
            if c.is_file() and int(c.parent.name) not in held[split]:
                c.write_bytes(b"not zstd at all")
    align_run(path, threshold=100, progress=False)  # nothing reduced: no fit reads every row
    record = json.loads((path / "alignment" / "commit.json").read_text())
    for epoch in map(str, range(EPOCHS)):
        for layer in ("fc", "act", "out"):
            entry = record["epochs"][epoch]["layers"][layer]
            assert entry["exact"] and entry["checked"] == [32, sum(N.values())], layer
    with pytest.raises(StoreError, match="fails its checksum"):
        run.activations("fc", 1, "train")  # the garbage is there, for a whole read
