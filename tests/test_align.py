"""Layer transitions: every kind starts on the previous layer and ends on this one, linear
parts are aligned by their SVD (so rotations are invisible), convolutions are used as
operators that agree with their dense matrices, wide layers get one fixed reduction."""

from __future__ import annotations

import argparse
import shutil
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
pytest.importorskip("scipy")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from grandtour import align  # noqa: E402
from grandtour.align import (  # noqa: E402
    Aligner,
    AlignmentWarning,
    align_command,
    align_run,
    layer_coordinates,
    layer_map,
    load_reduction,
    load_transition,
    operator_svd,
    transition,
    transition_from_arrays,
)
from grandtour.align import maps as align_maps  # noqa: E402
from grandtour.align import reduction as align_reduction  # noqa: E402
from grandtour.cli import main  # noqa: E402
from grandtour.errors import GrandTourError, StoreError  # noqa: E402
from grandtour.models import build_model, normalize  # noqa: E402
from grandtour.record import Recorder, layer_infos  # noqa: E402
from grandtour.store import LayerInfo, Run, StoreKeyError  # noqa: E402

# Activations read from the store went through float16 (11 significant bits).
F16 = {"rtol": 2e-3, "atol": 2e-3}


def _orthonormal(b: np.ndarray, tol: float = 1e-10) -> bool:
    return np.allclose(b.T @ b, np.eye(b.shape[1]), atol=tol)


def _check_endpoints(tr, x_prev, x, **tol):
    """start/end are the two layers' points up to the returned orthogonal bases."""
    d_in, d_out = tr.basis_in.shape[0], tr.basis_out.shape[0]
    assert tr.start.shape == tr.end.shape == (len(x), max(d_in, d_out))
    np.testing.assert_allclose(tr.start[:, :d_in] @ tr.basis_in.T, x_prev, **tol)
    np.testing.assert_allclose(tr.end[:, :d_out] @ tr.basis_out.T, x, **tol)
    assert not tr.start[:, d_in:].any() and not tr.end[:, d_out:].any()  # zero padding
    np.testing.assert_array_equal(tr.at(0.0), tr.start)
    np.testing.assert_array_equal(tr.at(1.0), tr.end)


def _affine_residual(tr) -> float:
    """Relative size of what is not a coordinate-wise affine function of start."""
    pred = tr.start * tr.gain + tr.offset
    return float(np.linalg.norm(tr.end - pred) / np.linalg.norm(tr.end))


def _info(name, kind, shape, **config):
    return LayerInfo(name, kind, tuple(shape), module=f"{kind}()", config=config)


# ------------------------------------------------------------------------------ linear


@pytest.mark.parametrize("n_in,n_out", [(7, 4), (4, 7), (6, 6)])
def test_linear_transition_is_svd_aligned_and_coordinatewise_affine(n_in, n_out):
    rng = np.random.default_rng(n_in * 10 + n_out)
    w, b = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    x_prev = rng.standard_normal((50, n_in))
    x = x_prev @ w.T + b
    prev, layer = _info("h", "relu", (n_in,)), _info("fc", "linear", (n_out,))
    tr = transition_from_arrays(prev, layer, x_prev, x, {"weight": w, "bias": b})
    assert tr.method == "svd" and tr.exact and tr.k == max(n_in, n_out)
    assert _orthonormal(tr.basis_in) and _orthonormal(tr.basis_out)
    _check_endpoints(tr, x_prev, x, atol=1e-12)
    assert _affine_residual(tr) < 1e-12
    # The gains are the singular values of M = W^T, decreasing, zero-padded to k.
    np.testing.assert_allclose(tr.singular_values, np.linalg.svd(w, compute_uv=False), rtol=1e-12)
    assert not tr.gain[min(n_in, n_out):].any()


@pytest.mark.parametrize("which", ["random rotation", "A = -I"])
def test_rotation_only_layer_moves_no_point(which):
    rng = np.random.default_rng(1)
    n = 5
    m = np.linalg.qr(rng.standard_normal((n, n)))[0] if which == "random rotation" else -np.eye(n)
    x_prev = rng.standard_normal((30, n))
    x = x_prev @ m
    tr = transition_from_arrays(_info("h", "relu", (n,)), _info("fc", "linear", (n,)), x_prev, x,
                                {"weight": m.T})
    np.testing.assert_allclose(tr.end, tr.start, atol=1e-12)
    np.testing.assert_allclose(tr.at(0.5), tr.start, atol=1e-12)
    if which == "A = -I":
        # What the alignment avoids: naive interpolation sends every point through the origin.
        assert np.abs(0.5 * x_prev + 0.5 * x).max() < 1e-12
        assert np.abs(tr.at(0.5)).min(axis=1).max() > 0


# ------------------------------------------------------------------------------ convolutions

CONVS = {
    "stride 2, padding 1": dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
    "dilation 2, rectangular": dict(in_channels=2, out_channels=4, kernel_size=(3, 2), dilation=2),
    "groups 2": dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1),
    "circular padding": dict(in_channels=2, out_channels=2, kernel_size=3, padding=1,
                             padding_mode="circular"),
    "padding same, no bias": dict(in_channels=3, out_channels=2, kernel_size=3, padding="same",
                                  bias=False),
}


def _conv_case(name, size=7, n=40, seed=0):
    """A Conv2d, its LayerInfos as the Recorder writes them, float64 data and its dense M."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(**CONVS[name]).double()
    model = nn.Sequential(OrderedDict(conv=conv, flatten=nn.Flatten())).double()
    c_in = CONVS[name]["in_channels"]
    infos = {i.name: i for i in layer_infos(model, example=torch.zeros(2, c_in, size, size,
                                                                       dtype=torch.float64))}
    x_prev = torch.randn(n, c_in, size, size, dtype=torch.float64)
    with torch.no_grad():
        x = conv(x_prev).reshape(n, -1).numpy()
        eye = torch.eye(c_in * size * size, dtype=torch.float64).reshape(-1, c_in, size, size)
        dense = conv(eye).reshape(len(eye), -1).numpy()
        if conv.bias is not None:
            dense = dense - conv(torch.zeros_like(eye[:1])).reshape(1, -1).numpy()
    params = {k: v.detach().numpy() for k, v in conv.named_parameters()}
    return infos["input"], infos["conv"], x_prev.reshape(n, -1).numpy(), x, params, dense


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_transition_is_aligned_affine_for_any_geometry(name):
    prev, layer, x_prev, x, params, dense = _conv_case(name)
    tr = transition_from_arrays(prev, layer, x_prev, x, params)
    assert tr.method == "svd" and tr.exact
    assert _orthonormal(tr.basis_in) and _orthonormal(tr.basis_out)
    _check_endpoints(tr, x_prev, x, atol=1e-11)
    assert _affine_residual(tr) < 1e-11
    np.testing.assert_allclose(tr.singular_values, np.linalg.svd(dense, compute_uv=False),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_operator_agrees_with_its_dense_matrix(name):
    prev, layer, _x_prev, _x, params, dense = _conv_case(name, size=7, seed=3)
    op = layer_map(prev, layer, params)
    np.testing.assert_allclose(op.matrix(), dense, atol=1e-12)
    # The adjoint is the transpose: <x M, y> = <x, y M^T>.
    rng = np.random.default_rng(0)
    u = torch.as_tensor(rng.standard_normal((3, op.n_in)))
    v = torch.as_tensor(rng.standard_normal((3, op.n_out)))
    np.testing.assert_allclose((op.forward(u) * v).sum().item(), (u * op.adjoint(v)).sum().item(),
                               rtol=1e-12)
    # Leading singular triplets from the operator alone equal the dense SVD's.
    ud, sd, vdt = np.linalg.svd(dense, full_matrices=False)
    gaps = (sd[:-1] - sd[1:]) / sd[0]
    k = next(k for k in range(4, 12) if gaps[k - 1] > 1e-3)  # a k that ends on a spectral gap
    u_op, s_op, v_op = operator_svd(op, k)
    np.testing.assert_allclose(s_op, sd[:k], rtol=1e-9)
    # Same subspaces (individual vectors are unique only up to sign and within clusters).
    np.testing.assert_allclose(u_op @ u_op.T, ud[:, :k] @ ud[:, :k].T, atol=1e-7)
    np.testing.assert_allclose(v_op @ v_op.T, vdt[:k].T @ vdt[:k], atol=1e-7)
    np.testing.assert_allclose(dense @ v_op, u_op * s_op, atol=1e-9)


@pytest.mark.parametrize("kind,config,shape", [
    ("avgpool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=False, count_include_pad=True,
                       divisor_override=None), (2, 4, 4)),
    ("adaptiveavgpool2d", dict(output_size=[3, 2]), (2, 3, 2)),
])
def test_average_pooling_is_aligned_as_a_linear_map(kind, config, shape):
    rng = np.random.default_rng(2)
    x4 = torch.as_tensor(rng.standard_normal((20, 2, 7, 7)))
    if kind == "avgpool2d":
        y = F.avg_pool2d(x4, 3, 2, 1)
    else:
        y = F.adaptive_avg_pool2d(x4, (3, 2))
    prev, layer = _info("h", "relu", (2, 7, 7)), _info("p", kind, shape, **config)
    tr = transition_from_arrays(prev, layer, x4.reshape(20, -1).numpy(), y.reshape(20, -1).numpy())
    assert tr.method == "svd" and tr.exact
    _check_endpoints(tr, x4.reshape(20, -1).numpy(), y.reshape(20, -1).numpy(), atol=1e-12)
    assert _affine_residual(tr) < 1e-12


@pytest.mark.parametrize("name", list(CONVS))
def test_the_float32_check_of_an_affine_layer_measures_the_float64_residual(name):
    """The check applies the layer in float32; the residual it reports is the float64 one to
    far better than the bound needs, and a map that takes only float64 is applied in float64."""
    from grandtour.align import transitions as align_transitions

    prev, layer, x_prev, x, params, _ = _conv_case(name)
    op = layer_map(prev, layer, params)
    noisy = x * (1 + 1e-3 * np.random.default_rng(1).standard_normal(x.shape))  # like float16
    exact = align_transitions._relative_residual(noisy, op.apply_layer(x_prev))
    assert 5e-4 < exact < 2e-3
    got = align_transitions._affine_residual(op, [x_prev[:20], x_prev[20:]], [noisy[:20], noisy[20:]])
    assert got == pytest.approx(exact, rel=1e-3)
    w = torch.as_tensor(op.matrix())  # float64 only: x @ w fails for float32 rows
    strict = align.LayerMap(op.n_in, op.n_out, lambda t: t @ w, op.bias)
    assert align_transitions._affine_residual(strict, [x_prev], [noisy]) == pytest.approx(exact, rel=1e-12)


# ------------------------------------------------------------------------------ max-pooling

POOL = dict(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)


def test_maxpool_replacement_on_the_articles_example_vector():
    # One 2x2 window holding [0.9, 0.9, 0.9, 1.0]: max-pooling outputs 1.0, from the last entry alone.
    x_prev = np.array([[0.9, 0.9, 0.9, 1.0]])
    x = np.array([[1.0]])
    tr = transition_from_arrays(_info("h", "relu", (1, 2, 2)), _info("pool", "maxpool2d", (1, 1, 1), **POOL),
                                x_prev, x)
    assert tr.method == "maxpool" and tr.exact
    _check_endpoints(tr, x_prev, x, atol=1e-15)
    # The linear part is average pooling: its one singular direction is the window's mean.
    np.testing.assert_allclose(np.abs(tr.basis_in[:, 0]), [0.5] * 4, atol=1e-15)
    assert tr.gain[0] == pytest.approx(0.5)
    avg = tr.start[0, 0] * tr.gain[0]
    assert avg == pytest.approx(0.925)                       # the average of the window
    assert tr.scale[0, 0] == pytest.approx(1.0 / 0.925)      # max / average, per point
    assert tr.end[0, 0] == pytest.approx(avg * tr.scale[0, 0])
    np.testing.assert_allclose(tr.end[0, 1:], 0.0)           # the within-window differences vanish
    # The artifact: in the replacement each entry is credited with its share of the average
    # (about 25 % each), while max-pooling's output depends on the 1.0 entry alone.
    credit = x_prev[0] * np.abs(tr.basis_in[:, 0]) * tr.gain[0] * tr.scale[0, 0] / tr.end[0, 0]
    np.testing.assert_allclose(credit, [0.9 / 3.7] * 3 + [1.0 / 3.7])
    assert np.all(np.abs(credit - 0.25) < 0.025)
    xt = torch.tensor(x_prev.reshape(1, 1, 2, 2), requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(xt.grad.reshape(-1).numpy(), [0, 0, 0, 1])


def test_maxpool_transition_scales_each_output_coordinate_from_the_average():
    rng = np.random.default_rng(4)
    x4 = torch.as_tensor(rng.standard_normal((25, 3, 6, 6)))
    y = F.max_pool2d(x4, 2).reshape(25, -1).numpy()
    x_prev = x4.reshape(25, -1).numpy()
    tr = transition_from_arrays(_info("h", "conv2d", (3, 6, 6)), _info("pool", "maxpool2d", (3, 3, 3), **POOL),
                                x_prev, y)
    _check_endpoints(tr, x_prev, y, atol=1e-12)
    # Non-overlapping windows: the output side stays in the standard basis (a permutation),
    # so the per-point scaling max/average acts coordinate by coordinate.
    assert set(np.unique(np.abs(tr.basis_out))) == {0.0, 1.0}
    d = y.shape[1]
    linear_part = (tr.start[:, :d] * tr.gain[:d]) @ tr.basis_out.T       # average pooling
    np.testing.assert_allclose(linear_part, F.avg_pool2d(x4, 2).reshape(25, -1).numpy(), atol=1e-12)
    np.testing.assert_allclose(linear_part * tr.scale, y, atol=1e-12)


# ------------------------------------------------------------------------------ coordinate-wise


@pytest.mark.parametrize("kind,fn,config", [
    ("relu", F.relu, {}),
    ("tanh", torch.tanh, {}),
    ("sigmoid", torch.sigmoid, {}),
    ("leakyrelu", lambda t: F.leaky_relu(t, 0.2), {"negative_slope": 0.2}),
    ("softmax", lambda t: torch.softmax(t, 1), {"dim": 1}),
    ("gelu", F.gelu, {}),
    ("flatten", lambda t: t, {}),
])
def test_coordinatewise_layers_interpolate_in_the_standard_basis(kind, fn, config):
    x_prev = np.random.default_rng(5).standard_normal((30, 6))
    x = fn(torch.as_tensor(x_prev)).numpy()
    tr = transition_from_arrays(_info("h", "linear", (6,)), _info("a", kind, (6,), **config), x_prev, x)
    assert tr.method == ("identity" if kind == "flatten" else "coordinatewise") and tr.exact
    np.testing.assert_array_equal(tr.basis_in, np.eye(6))
    np.testing.assert_array_equal(tr.basis_out, np.eye(6))
    np.testing.assert_array_equal(tr.start, x_prev)
    np.testing.assert_array_equal(tr.end, x)
    if kind == "flatten":
        np.testing.assert_array_equal(tr.start, tr.end)


# ------------------------------------------------------------------------------ fallbacks


def test_unknown_layer_kind_falls_back_to_a_labelled_least_squares_fit():
    rng = np.random.default_rng(6)
    x_prev = rng.standard_normal((80, 5))
    a, c = rng.standard_normal((5, 4)), rng.standard_normal(4)
    x = x_prev @ a + c  # an affine layer grandtour does not know
    layer = LayerInfo("mystery", "mysterylayer", (4,), module="MysteryLayer(gain=2)")
    with pytest.warns(AlignmentWarning, match=r"'mystery' \(MysteryLayer\(gain=2\)\).*least-squares"):
        tr = transition_from_arrays(_info("h", "relu", (5,)), layer, x_prev, x)
    assert tr.method == "lstsq" and not tr.exact
    assert "least-squares" in tr.note and "mysterylayer" in tr.note
    _check_endpoints(tr, x_prev, x, atol=1e-12)
    assert _orthonormal(tr.basis_in) and _orthonormal(tr.basis_out)
    # The fit recovers an affine layer: its picture is the SVD alignment of that map.
    assert tr.residual < 1e-12 and _affine_residual(tr) < 1e-12
    np.testing.assert_allclose(tr.singular_values, np.linalg.svd(a, compute_uv=False), rtol=1e-10)


def test_a_previous_layer_that_is_not_the_input_is_caught_not_drawn_wrongly():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 6))
    x_true, x_other = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    x = x_true @ w.T  # the recorded "previous" layer below is x_other: a skipped layer
    with pytest.warns(AlignmentWarning, match="not this layer's input"):
        tr = transition_from_arrays(_info("h", "relu", (6,)), _info("fc", "linear", (3,)), x_other, x,
                                    {"weight": w})
    assert tr.method == "lstsq" and not tr.exact and "not this layer's input" in tr.note
    _check_endpoints(tr, x_other, x, atol=1e-12)
    with pytest.warns(AlignmentWarning, match="not this layer's input"):
        tr = transition_from_arrays(_info("h", "linear", (6,)), _info("r", "relu", (6,)), x_other,
                                    np.maximum(x_true, 0))
    assert tr.method == "coordinatewise" and not tr.exact


def test_missing_parameters_fall_back_with_the_reason():
    x_prev = np.random.default_rng(8).standard_normal((20, 4))
    with pytest.warns(AlignmentWarning, match="no 'weight' parameter"):
        tr = transition_from_arrays(_info("h", "relu", (4,)), _info("fc", "linear", (2,)), x_prev,
                                    x_prev[:, :2])
    assert not tr.exact and "no 'weight' parameter" in tr.note


# ------------------------------------------------------------------------------ recorded runs


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The article's network on 8x8 inputs, recorded at 3 epochs with SGD steps between."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    probes = {}
    for split, n in (("train", 40), ("test", 24)):
        images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        probes[split] = (normalize(images, "digits"), np.arange(n) % 10)
    model = build_model("digits")
    path = tmp_path_factory.mktemp("align") / "run"
    recorder = Recorder(model, path, probes=probes, dataset="digits")
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    x, y = probes["train"]
    for epoch in range(3):
        recorder.record(epoch)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), torch.as_tensor(y)).backward()
            opt.step()
    return path


@pytest.fixture()
def run_copy(digits_run, tmp_path):
    shutil.copytree(digits_run, tmp_path / "run")
    return tmp_path / "run"


#: A threshold above every layer of the digits network (640 at most): every layer shown whole.
UNREDUCED = 1024


@pytest.fixture(scope="module")
def aligned_run(digits_run, tmp_path_factory):
    """The digits run aligned with no layer reduced (read-only for the tests)."""
    path = tmp_path_factory.mktemp("aligned") / "run"
    shutil.copytree(digits_run, path)
    summary = align_run(path, threshold=UNREDUCED, progress=False)
    return path, summary


EXPECTED = {"conv1": "svd", "pool1": "maxpool", "relu1": "coordinatewise", "conv2": "svd",
            "pool2": "maxpool", "relu2": "coordinatewise", "fc1": "svd", "relu3": "coordinatewise",
            "fc2": "svd", "relu4": "coordinatewise", "softmax": "coordinatewise"}


def test_every_recorded_transition_starts_and_ends_on_the_recorded_layers(aligned_run):
    path, summary = aligned_run
    assert summary["epochs_aligned"] == [0, 1, 2] and not summary["fallbacks"]
    assert summary["methods"] == EXPECTED
    run = Run.open(path)
    for epoch in run.epochs:
        for split in run.splits:
            for name in EXPECTED:
                tr = load_transition(run, name, epoch, split)
                assert tr.method == EXPECTED[name] and tr.exact, (name, tr.note)
                x_prev = run.activations(tr.previous, epoch, split)
                _check_endpoints(tr, x_prev, run.activations(name, epoch, split), atol=1e-5)
                assert _orthonormal(tr.basis_in, 1e-6) and _orthonormal(tr.basis_out, 1e-6)
                if tr.method == "svd":  # affine up to the float16 rounding of stored activations
                    assert _affine_residual(tr) < 5e-3
    assert Aligner(run).previous("conv1").name == "input"  # the first layer reads the input


def test_weights_change_the_alignment_between_epochs_but_not_pooling(aligned_run):
    path, _ = aligned_run
    run = Run.open(path)
    t0, t2 = load_transition(run, "fc1", 0, "test"), load_transition(run, "fc1", 2, "test")
    assert not np.allclose(t0.singular_values, t2.singular_values)
    p0, p2 = load_transition(run, "pool2", 0, "test"), load_transition(run, "pool2", 2, "test")
    np.testing.assert_array_equal(p0.basis_in, p2.basis_in)
    assert (path / "alignment" / "maps" / "pool2" / "static").is_dir()
    assert not (path / "alignment" / "maps" / "pool2" / "0").exists()


def test_stored_transitions_equal_the_computed_ones(digits_run, aligned_run):
    fresh = Aligner(digits_run, threshold=UNREDUCED)  # never aligned: computes everything
    assert fresh.store is None
    for name in ("conv1", "pool1", "relu1", "fc2"):
        tr = fresh.transition(name, 1, "train")
        stored = load_transition(aligned_run[0], name, 1, "train")
        assert stored.method == tr.method  # bases are stored as float32
        np.testing.assert_allclose(stored.basis_in, tr.basis_in, atol=1e-7)
        np.testing.assert_allclose(stored.basis_out, tr.basis_out, atol=1e-7)
        np.testing.assert_allclose(stored.start, tr.start, atol=1e-5)
        np.testing.assert_allclose(stored.end, tr.end, atol=1e-5)


def test_align_run_is_idempotent_incremental_and_forced(run_copy):
    first = align_run(run_copy, epochs=[0], progress=False)
    assert first["epochs_aligned"] == [0]
    run = Run.open(run_copy)
    load_transition(run, "fc1", 0, "test")
    with pytest.raises(StoreError, match="epoch 1 .* has not been aligned"):
        load_transition(run, "fc1", 1, "test")
    basis = run_copy / "alignment" / "maps" / "conv1" / "0" / "basis_in"
    stamp = max(p.stat().st_mtime_ns for p in basis.rglob("*") if p.is_file())
    again = align_run(run_copy, progress=False)
    assert again["epochs_aligned"] == [1, 2] and again["epochs_skipped"] == [0]
    assert max(p.stat().st_mtime_ns for p in basis.rglob("*") if p.is_file()) == stamp
    assert align_run(run_copy, progress=False)["epochs_aligned"] == []
    with pytest.raises(GrandTourError, match=f"threshold {align.DEFAULT_THRESHOLD}.*--force"):
        align_run(run_copy, threshold=100, progress=False)
    forced = align_run(run_copy, epochs=[2], threshold=100, force=True, progress=False)
    assert forced["epochs_aligned"] == [2] and "conv1" in forced["reductions"]
    assert not (run_copy / "alignment" / "maps" / "conv1" / "0").exists()  # the old data is gone


def test_wide_layers_are_shown_in_one_fixed_reduction(run_copy):
    threshold = 48
    summary = align_run(run_copy, epochs=[0, 2], threshold=threshold, progress=False)
    run = Run.open(run_copy)
    wide = [layer.name for layer in run.layers if layer.dim > threshold]
    assert sorted(summary["reductions"]) == sorted(wide) and "conv1" in wide
    assert load_reduction(run, "fc2") is None  # 10 dims: shown as recorded
    for name in wide:
        red = load_reduction(run, name)
        assert red.basis.shape[0] == run.layer(name).dim and red.rank <= threshold
        assert _orthonormal(red.basis.astype(np.float64), 1e-5)
        assert 0.0 < red.variance_kept <= 1.0
        for epoch in run.epochs:  # one basis for every epoch, aligned (0, 2) or not (1)
            x = run.activations(name, epoch, "test").astype(np.float64)
            z = x @ red.basis.astype(np.float64)
            np.testing.assert_allclose(layer_coordinates(run, name, epoch, "test"), z, **F16)
    tr = load_transition(run, "conv2", 2, "test")
    assert tr.reduced == (True, True) and tr.k <= threshold
    _check_endpoints(tr, layer_coordinates(run, "relu1", 2, "test"),
                     layer_coordinates(run, "conv2", 2, "test"), atol=1e-5)
    x = run.activations("conv2", 2, "test").astype(np.float64)
    z = x @ load_reduction(run, "conv2").basis.astype(np.float64)
    kept = ((z - z.mean(0)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert tr.variance_kept[1] == pytest.approx(kept, rel=1e-6)  # align computes z in float32
    assert "conv2" in tr.note and "of the pooled variance" in tr.note
    tr = load_transition(run, "fc2", 0, "train")  # relu3 (50, reduced) -> fc2 (10, as recorded)
    assert tr.reduced == (True, False) and tr.variance_kept[1] == 1.0
    _check_endpoints(tr, layer_coordinates(run, "relu3", 0, "train"),
                     run.activations("fc2", 0, "train"), atol=1e-5)


def test_a_later_align_reads_the_static_maps_instead_of_decomposing_them_again(run_copy, monkeypatch):
    """Pooling (and the identity between two reductions) does not change with training: an
    ``align`` of new epochs takes their stored bases, and decomposes only maps with weights."""
    from grandtour.align import transitions as align_transitions

    threshold = 100  # conv1, pool1... reduced: relu1's map is the identity between two reductions
    align_run(run_copy, epochs=[0], threshold=threshold, progress=False)
    calls = []
    real = align_transitions._svd_alignment
    monkeypatch.setattr(align_transitions, "_svd_alignment", lambda c: calls.append(c.shape) or real(c))
    align_run(run_copy, epochs=[1], threshold=threshold, progress=False)
    run = Run.open(run_copy)
    with_weights = [n for n in EXPECTED if run.params(n, 1)]
    assert len(calls) == len(with_weights) == 4
    for name in ("pool1", "relu1", "pool2"):  # the same bases, and still the right endpoints
        t0, t1 = load_transition(run, name, 0, "test"), load_transition(run, name, 1, "test")
        assert t1.exact and t1.method == EXPECTED[name]
        np.testing.assert_array_equal(t0.basis_out, t1.basis_out)
        _check_endpoints(t1, layer_coordinates(run, t1.previous, 1, "test"),
                         layer_coordinates(run, name, 1, "test"), atol=1e-5)


def _low_rank_run(path, variances, dim=40, n=150, epochs=3, seed=0):
    """Activations of rank len(variances): points Z Q^T + mu, a little different per epoch."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((dim, len(variances))))[0]
    mu = rng.standard_normal(dim)
    acts = np.stack([(rng.standard_normal((n, len(variances))) * np.sqrt(variances)) @ q.T + mu
                     for _ in range(epochs)])
    return Run.from_arrays(path, {"h": acts, "out": acts[:, :, :3]}, np.arange(n) % 3), q


@pytest.mark.parametrize("randomized", [False, True])
def test_reduction_keeps_the_reported_variance_of_a_low_rank_layer(tmp_path, monkeypatch, randomized):
    if randomized:
        monkeypatch.setattr(align_reduction, "EXACT_COVARIANCE_DIM", 8)
    run, q = _low_rank_run(tmp_path / "r", [9.0, 4.0, 1.0, 0.25])
    pooled = np.concatenate([run.activations("h", e, "train") for e in run.epochs]).astype(np.float64)
    evals, evecs = np.linalg.eigh(np.cov(pooled.T, bias=True))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    red = align.fit_reduction(run, "h", threshold=3)
    assert red.method == ("randomized" if randomized else "covariance") and red.rank == 3
    assert red.variance_kept == pytest.approx(evals[:3].sum() / evals.sum(), rel=1e-6)
    assert 0.9 < red.variance_kept < 0.99  # what the 0.25-variance direction costs
    b = red.basis.astype(np.float64)
    np.testing.assert_allclose(b @ b.T, evecs[:, :3] @ evecs[:, :3].T, atol=1e-5)
    # A rank-4 layer is kept whole, whatever the threshold above its rank.
    for threshold in (4, 10):
        red = align.fit_reduction(run, "h", threshold=threshold)
        assert red.rank == 4 and red.variance_kept == pytest.approx(1.0, abs=1e-6)
        b = red.basis.astype(np.float64)
        np.testing.assert_allclose(b @ b.T, evecs[:, :4] @ evecs[:, :4].T, atol=1e-5)
        np.testing.assert_allclose(b @ b.T, q @ q.T, atol=1e-3)  # float16 storage noise aside


def test_a_large_run_fits_its_reduction_on_a_seeded_sample_that_keeps_the_directions(tmp_path):
    # 3 epochs x 400 rows; a fit capped at 300 rows sees a quarter of each block.
    variances = [9.0, 4.0, 1.0, 0.25]
    run, _ = _low_rank_run(tmp_path / "r", variances + [1e-3] * 6, n=400)
    full = align.fit_reduction(run, "h", threshold=4)
    sampled = align.fit_reduction(run, "h", threshold=4, max_points=300)
    assert full.points == 1200 and 285 <= sampled.points <= 303
    again = align.fit_reduction(run, "h", threshold=4, max_points=300)
    np.testing.assert_array_equal(again.basis, sampled.basis)  # the same sample every time
    # The sample's leading directions are the whole data's, up to sampling error: the
    # cosines of the principal angles between the two 4-dim subspaces are near 1, and the
    # sampled basis keeps nearly the variance of the whole data that the full fit keeps.
    cosines = np.linalg.svd(full.basis.astype(np.float64).T @ sampled.basis.astype(np.float64),
                            compute_uv=False)
    assert cosines.min() > 0.99, cosines
    pooled = np.concatenate([run.activations("h", e, "train") for e in run.epochs]).astype(np.float64)
    pooled -= pooled.mean(axis=0)
    kept = lambda b: ((pooled @ b.astype(np.float64)) ** 2).sum() / (pooled ** 2).sum()  # noqa: E731
    assert kept(sampled.basis) > kept(full.basis) - 1e-3
    assert sampled.variance_kept == pytest.approx(kept(sampled.basis), abs=0.02)  # the sample's estimate


def test_imported_run_of_unknown_layers_is_aligned_by_labelled_fits(tmp_path):
    run, _ = _low_rank_run(tmp_path / "r", [4.0, 1.0, 0.5])
    with pytest.warns(AlignmentWarning, match="'out' \\(unknown\\)"):
        tr = transition(run, "out", 1, "train")
    assert tr.method == "lstsq" and not tr.exact
    _check_endpoints(tr, run.activations("h", 1, "train"), run.activations("out", 1, "train"), atol=1e-6)
    with pytest.warns(AlignmentWarning, match="least-squares") as caught:
        summary = align_run(tmp_path / "r", progress=False)
    assert len(caught) == 1  # once per layer, not once per epoch
    assert "least-squares" in summary["fallbacks"]["out"]
    assert load_transition(run, "out", 1, "train").method == "lstsq"


# ------------------------------------------------------------------------------ errors, CLI


def test_errors_say_what_to_do(digits_run, aligned_run):
    run = Run.open(digits_run)
    with pytest.raises(StoreKeyError, match="first recorded layer"):
        transition(run, "input", 0, "test")
    with pytest.raises(StoreKeyError, match="no layer 'nope'"):
        transition(run, "nope", 0, "test")
    with pytest.raises(StoreKeyError, match="no split 'val'"):
        transition(run, "fc1", 0, "val")
    with pytest.raises(StoreError, match="has not been aligned; run `grandtour align"):
        load_transition(run, "fc1", 0, "test")
    with pytest.raises(StoreKeyError, match="epoch 7"):
        load_transition(aligned_run[0], "fc1", 7, "test")
    with pytest.raises(StoreKeyError, match="epoch 9"):
        align_run(aligned_run[0], epochs=[9], threshold=UNREDUCED, progress=False)
    with pytest.raises(GrandTourError, match="threshold must be >= 1"):
        align_run(aligned_run[0], threshold=0, progress=False)


def test_align_command_reports_reductions(run_copy, capsys):
    args = argparse.Namespace(run=str(run_copy), epochs=[0], threshold=200, force=False)
    assert align_command(args) == 0
    out = capsys.readouterr().out
    assert "aligned 1 epoch(s)" in out and "conv1: shown in" in out and "% of the pooled variance" in out
    assert main(["align", str(run_copy), "--threshold", "200", "--epochs", "0", "2"]) == 0
    assert "aligned 1 epoch(s)" in capsys.readouterr().out
    assert main(["align", str(run_copy)]) == 2  # another threshold without --force
    assert "--force" in capsys.readouterr().err


def test_a_registered_layer_kind_is_aligned_by_its_own_map(monkeypatch):
    monkeypatch.setattr(align_maps, "_MAP_BUILDERS", dict(align_maps._MAP_BUILDERS))  # undo after the test

    def doubling(prev, layer, params):
        if prev.dim != layer.dim:
            raise ValueError("doubling keeps the width")
        return align.LayerMap(prev.dim, layer.dim, lambda x: 2.0 * x, np.full(layer.dim, 1.0),
                              static=True)

    align.register_layer_map("Doubling", doubling)
    x_prev = np.random.default_rng(9).standard_normal((10, 3))
    tr = transition_from_arrays(_info("h", "relu", (3,)), _info("d", "doubling", (3,)), x_prev,
                                2.0 * x_prev + 1.0)
    assert tr.method == "svd" and tr.exact
    np.testing.assert_allclose(tr.gain, 2.0)
    np.testing.assert_allclose(tr.end, 2.0 * tr.start + 1.0 * np.abs(tr.basis_out).sum(0), atol=1e-12)
    with pytest.warns(AlignmentWarning, match="doubling keeps the width"):
        tr = transition_from_arrays(_info("h", "relu", (3,)), _info("d", "doubling", (2,)), x_prev,
                                    x_prev[:, :2])
    assert tr.method == "lstsq"
