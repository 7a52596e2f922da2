"""Any model a user brings: its graph recorded edge by edge, aligned along it, exactly
where a check against the recorded data passes, and training left bit-identical.

The models (``graph_models.py``): a ResNet of BasicBlocks (batch norm, residual adds;
and one with GELU after the add), an Inception-like concatenation, a tiny
TransformerEncoder with the batch first and second, an MLP with ``F.relu`` in
``forward``, and models returning a dict and ``(features, logits)``; each trained for a
few epochs on the digits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from graph_models import MODELS, ResNet, Tiny
from torch import nn

from grandtour.align import (
    VERIFY_RTOL,
    Aligner,
    AlignmentWarning,
    align_run,
    transition,
    transition_from_arrays,
)
from grandtour.capture import Capture, CaptureError, CaptureWarning
from grandtour.data import load_dataset
from grandtour.models import normalize
from grandtour.record import Recorder, RecordError
from grandtour.store import LayerInfo, ProbeSet, Run, RunWriter

EPOCHS = 3


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    train = rng.choice(len(ds.y_train), 256, replace=False)
    x = normalize(ds.x_train[train], "digits")
    probes = {"train": (x[:60], ds.y_train[train][:60]),
              "test": (normalize(ds.x_test[:40], "digits"), ds.y_test[:40])}
    return x, torch.as_tensor(ds.y_train[train]), probes


def _train(name, digits, path=None):
    """Train MODELS[name] for EPOCHS epochs, recording each one into ``path`` if given."""
    build, output, _ = MODELS[name]
    x, y, probes = digits
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    rec = None if path is None else Recorder(model, path, probes=probes, output=output)
    if rec is not None:
        rec.record(0)
    gen = torch.Generator().manual_seed(1)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(32):
            out = model(x[idx])
            logits = out if output is None else output(out)
            opt.zero_grad()
            F.cross_entropy(logits, y[idx]).backward()
            opt.step()
        if rec is not None:
            rec.record(epoch)
    return model.state_dict(), rec


@pytest.fixture(scope="module")
def recorded(digits, tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            path = tmp_path_factory.mktemp(name) / "run"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AlignmentWarning)
                state, rec = _train(name, digits, path)
                # threshold 1024: no layer reduced, so transitions compare with the raw activations
                summary = align_run(path, threshold=1024, progress=False)
            cache[name] = (path, state, rec, summary)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_recorded_graph_is_the_models_edge_by_edge(name, recorded):
    path, _, rec, _ = recorded(name)
    expected = MODELS[name][2]
    run = Run.open(path)
    assert run.layer_names == list(expected)
    for layer, inputs in expected.items():
        assert run.inputs(layer) == inputs, layer
    assert [i.inputs for i in rec.layers] == list(expected.values())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_is_bit_identical_with_and_without_recording(name, recorded, digits):
    _, state, _, _ = recorded(name)
    plain, _ = _train(name, digits)
    assert plain.keys() == state.keys()
    for key in plain:
        assert torch.equal(plain[key], state[key]), key


def _merge_like(run: Run, layer: str) -> bool:
    info = run.layer(layer)
    return info.kind in ("add", "cat")


def _per_token_linear(run: Run, layer: str) -> bool:
    info = run.layer(layer)
    return info.kind == "linear" and len(info.shape) == 2


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_exact_transition_was_checked_and_merges_are_exact(name, recorded):
    path, _, _, _ = recorded(name)
    run = Run.open(path)
    aligner = Aligner(run)
    assert aligner.store is not None  # align_run stored them: read back, as a viewer does
    seen = 0
    for layer in run.layer_names:
        for source in run.inputs(layer):
            for split in run.splits:
                tr = aligner.transition(layer, EPOCHS, split, source)
                assert tr.previous == source
                if tr.exact:
                    assert tr.residual is not None and tr.residual <= VERIFY_RTOL, (layer, source)
                if _merge_like(run, layer) or _per_token_linear(run, layer):
                    assert tr.exact and tr.method in ("merge", "svd"), (layer, source, tr.note)
                    seen += 1
                # The transition ends on the recorded layer, in its own basis.
                z = run.activations(layer, EPOCHS, split).astype(np.float64)
                np.testing.assert_allclose(tr.end[:, : z.shape[1]] @ tr.basis_out.T, z, atol=1e-5)
    kinds = {run.layer(n).kind for n in run.layer_names}
    assert seen > 0 or not ({"add", "cat"} & kinds or any(_per_token_linear(run, n) for n in run.layer_names))


def test_an_add_is_x_plus_f_of_x_in_x_s_own_basis(recorded):
    path, _, _, _ = recorded("resnet")
    run = Run.open(path)
    for source in run.inputs("blocks.0.add"):
        tr = transition(run, "blocks.0.add", EPOCHS, "test", source)
        x = run.activations(source, EPOCHS, "test").astype(np.float64)
        np.testing.assert_allclose(tr.start, x, atol=1e-9)  # the start is x, untouched
        np.testing.assert_allclose(tr.basis_in, np.eye(x.shape[1]))
        assert tr.exact and tr.residual <= VERIFY_RTOL


def test_a_concatenation_embeds_each_inputs_space(recorded):
    path, _, _, _ = recorded("inception")
    run = Run.open(path)
    cat = run.activations("cat", EPOCHS, "test").astype(np.float64)
    for k, source in enumerate(("a.1", "b.1")):
        tr = transition(run, "cat", EPOCHS, "test", source)
        x = run.activations(source, EPOCHS, "test").astype(np.float64)
        part = cat.reshape(len(cat), 8, 64)[:, 4 * k:4 * k + 4].reshape(len(cat), -1)
        # The first d_in coordinates of the end are the source's part of the concatenation.
        np.testing.assert_allclose(tr.end[:, :x.shape[1]] @ tr.basis_in.T, part, atol=1e-9)
        np.testing.assert_allclose(tr.start[:, :x.shape[1]] @ tr.basis_in.T, x, atol=1e-9)
        assert tr.exact and tr.method == "merge"


def test_gelu_after_the_add_is_exact_only_because_its_check_passes(recorded):
    path, _, _, _ = recorded("resnet-gelu")
    run = Run.open(path)
    tr = transition(run, "blocks.1.act2", EPOCHS, "test")
    assert tr.previous == "blocks.1.add" and tr.exact and tr.residual <= VERIFY_RTOL
    # Read as the old chain did (from the batch norm before the add), the same rule fails
    # its check: labelled, never exact.
    layer, bn = run.layer("blocks.1.act2"), run.layer("blocks.1.bn2")
    with pytest.warns(AlignmentWarning, match="not this layer's input"):
        tr = transition_from_arrays(bn, layer, run.activations("blocks.1.bn2", EPOCHS, "test"),
                                    run.activations("blocks.1.act2", EPOCHS, "test"))
    assert not tr.exact and tr.residual > VERIFY_RTOL
    # GELU's setting is recorded, and the wrong one would not pass.
    assert layer.config["approximate"] == "tanh"


def test_batch_norm_in_eval_mode_is_checked_from_its_running_statistics(recorded):
    path, _, _, _ = recorded("resnet")
    run = Run.open(path)
    tr = transition(run, "blocks.1.bn1", EPOCHS, "test")
    assert tr.exact and tr.method == "coordinatewise" and tr.residual <= VERIFY_RTOL
    params = {k: v for k, v in run.params("blocks.1.bn1", EPOCHS).items() if k != "running_var"}
    with pytest.warns(AlignmentWarning, match="cannot rebuild"):
        tr = transition_from_arrays(run.layer("blocks.1.conv1"), run.layer("blocks.1.bn1"),
                                    run.activations("blocks.1.conv1", EPOCHS, "test"),
                                    run.activations("blocks.1.bn1", EPOCHS, "test"), params)
    assert not tr.exact and tr.residual is None


def test_sequence_layers_are_recorded_whatever_the_batch_axis(recorded):
    first, _, _, _ = recorded("transformer")
    second, _, _, _ = recorded("transformer-seq-first")
    a, b = Run.open(first), Run.open(second)
    for name in ("encoder.layers.0.self_attn", "encoder.layers.1.linear1", "encoder.layers.1.norm2"):
        assert a.layer(name).shape == b.layer(name).shape  # (T, D) per example either way
        assert b.layer(name).config.get("batch_axis") == 1
    assert a.layer("encoder.layers.0.self_attn").kind == "multiheadattention"
    # The same weights give the same per-example activations in both layouts.
    torch.manual_seed(0)
    m1, m2 = Tiny(True), Tiny(False)
    m2.load_state_dict(m1.state_dict())
    x = torch.randn(5, 1, 8, 8)
    acts1, _ = Capture(m1, x).run(x)
    acts2, _ = Capture(m2, x).run(x)
    for name in acts1:
        np.testing.assert_allclose(acts1[name], acts2[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_per_token_linear_is_block_diagonal_and_exact(recorded):
    path, _, _, _ = recorded("transformer-seq-first")
    run = Run.open(path)
    tr = transition(run, "encoder.layers.0.linear1", EPOCHS, "test")
    assert tr.exact and tr.method == "svd"
    w = run.params("encoder.layers.0.linear1", EPOCHS)["weight"].astype(np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(tr.singular_values, np.repeat(s, 8), rtol=1e-6)  # A's, per token
    # end = start * gain + offset, coordinate by coordinate.
    np.testing.assert_allclose(tr.end, tr.start * tr.gain + tr.offset, atol=2e-2)


# ----------------------------------------------------------------- outputs and errors


def test_a_structured_output_needs_output_and_says_so():
    x = torch.randn(4, 1, 8, 8)
    with pytest.raises(CaptureError, match=r"tuple, \(Tensor\(3, 32\), Tensor\(3, 10\)\).*"
                                           r"output=lambda out: out\[1\]"):
        Capture(MODELS["features-logits"][0](), x)
    with pytest.raises(CaptureError, match=r"dict, \{'features': .*output=lambda out: out\['logits'\]"):
        Capture(MODELS["dict"][0](), x)
    with pytest.raises(CaptureError, match=r"on a batch of 3 it got Tensor\(3, 32, 1\).*output= gave"):
        Capture(MODELS["features-logits"][0](), x, output=lambda out: out[0][:, :, None])


def test_probe_misuses_get_a_message_with_the_fix(tmp_path):
    model = MODELS["mlp"][0]()
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8))
    y = np.arange(6) % 3
    with pytest.raises(RecordError, match=r"float64.*float32.*astype\(np.float32\)"):
        Recorder(model, tmp_path / "a", probes={"test": (x, y)})
    x = x.astype(np.float32)
    with pytest.raises(RecordError, match=r"bare array of shape \(6, 1, 8, 8\).*\(inputs, labels\)"):
        Recorder(model, tmp_path / "b", probes={"test": x})
    with pytest.raises(RecordError, match=r"bare array.*probes=\{'test'"):
        Recorder(model, tmp_path / "c", probes=x)
    with pytest.raises(RecordError, match=r"mapping of split name.*got a list"):
        Recorder(model, tmp_path / "d", probes=[(x, y)])
    with pytest.raises(RecordError, match=r"without a split name: probes=\{'test'"):
        Recorder(model, tmp_path / "e", probes=(x, y))
    assert not any((tmp_path / n).exists() for n in "abcde")


# ------------------------------------------------------------- what tracing cannot see


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        h = self.fc1(x.flatten(1))
        if h.sum() > 1e9:  # control flow on values: fx cannot trace it
            h = h * 0
        return self.fc2(torch.relu(h))


class _Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(16, 16)

    def forward(self, x):
        return self.inner(x) if x.mean() > -1e9 else x


class _WithGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.gate, self.fc2 = nn.Linear(64, 16), _Gate(), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.gate(self.fc1(x.flatten(1)))))


def test_an_untraceable_model_falls_back_to_hooks_and_says_so():
    x = torch.randn(5, 1, 8, 8)
    with pytest.warns(CaptureWarning, match="cannot trace"):
        capture = Capture(_DataDependent(), x)
    assert capture.graph is None
    assert capture.names == ["input", "fc1", "fc2", "softmax"]
    assert capture.skipped[0][0] == "(graph)" and "chain" in capture.skipped[0][1]
    assert [i.inputs for i in capture.infos] == [(), ("input",), ("fc1",), ("fc2",)]


def test_an_untraceable_submodule_is_one_layer_and_its_insides_are_listed():
    x = torch.randn(5, 1, 8, 8)
    capture = Capture(_WithGate(), x)
    assert capture.graph is not None
    assert capture.names == ["input", "fc1", "gate", "relu", "fc2", "softmax"]
    assert dict(capture.skipped)["gate.inner"].startswith("inside 'gate' (_Gate)")
    _, logits = capture.run(x)
    with torch.no_grad():
        np.testing.assert_allclose(logits, _WithGate.forward(capture.model, x).numpy(), rtol=1e-6)


class _Similarity(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.fc(x.flatten(1))
        sim = h @ h.T  # (B, B): two axes run over the examples
        return h + 0 * sim.mean()


def test_an_ambiguous_batch_axis_is_listed_not_guessed():
    x = torch.randn(5, 1, 8, 8)
    capture = Capture(_Similarity(), x)
    reasons = dict(capture.skipped)
    assert "matmul" in reasons and "ambiguous" in reasons["matmul"]
    assert "matmul" not in capture.names and "fc" in capture.names


def test_skipped_is_printed_once(tmp_path, capsys):
    x = torch.randn(6, 1, 8, 8)
    rec = Recorder(ResNet(), tmp_path / "run", probes={"test": (x, np.arange(6) % 3)})
    rec.record(0)
    rec.record(1)
    err = capsys.readouterr().err
    assert err.count("not recorded (Recorder.skipped)") == 1 and "flatten" in err
    assert ("flatten", rec.skipped[0][1]) in rec.skipped


def test_a_run_without_edges_reads_as_the_chain(tmp_path):
    layers = [LayerInfo("input", "input", (3,), static=True), LayerInfo("a", "linear", (2,)),
              LayerInfo("b", "relu", (2,))]
    RunWriter.create(tmp_path / "run", dataset="x", class_names=["0", "1"], layers=layers,
                     probes={"test": ProbeSet(labels=np.zeros(2, dtype=np.int64))})
    run = Run.open(tmp_path / "run")
    assert [run.inputs(n) for n in run.layer_names] == [(), ("input",), ("a",)]
