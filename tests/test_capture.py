"""Capture: one implementation of layer outputs, shared by the Recorder and the FGSM steps.

Properties: a shared module is one layer per call, in the Recorder and in the adversarial
steps alike, so step 0 of an attack is the recorded epoch, bit for bit; capture leaves
every train/eval flag and every random state as it found them; and batching changes no
bit of any layer.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from grandtour.adversarial import fgsm_steps, run_adversarial
from grandtour.capture import Capture, CaptureError, UnknownLayerError, evaluating
from grandtour.errors import StoreError
from grandtour.models import normalize
from grandtour.record import Recorder
from grandtour.store import Run

# CUDA's random state is checked too wherever there is a GPU; no test is skipped without one.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


class _Quarter(torch.autograd.Function):
    """Rounds to multiples of 1/4 going forward; the identity going back, so FGSM moves."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 4) / 4

    @staticmethod
    def backward(ctx, grad):
        return grad


class _Quantize(nn.Module):
    def forward(self, x):
        return _Quarter.apply(x)


def _dyadic_linear(n_in: int, n_out: int, gen: torch.Generator) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-1, 2, (n_out, n_in), generator=gen) / 8)
        layer.bias.copy_(torch.randint(-4, 5, (n_out,), generator=gen) / 8)
    return layer


class _Exact(nn.Module):
    """A shared ReLU called twice, a dropout, and exact float32 arithmetic.

    Inputs are rounded to multiples of 1/4 and weights are in {-1, 0, 1}/8, so every sum
    is a multiple of 2**-11 far below 2**13: exact in float32 whatever the summation
    order. A BLAS may use other kernels for other batch shapes (MKL does, for a batch of
    one and for the odd rows of a small product); with exact arithmetic none of that can
    change a bit, and a difference can only come from capture itself.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.quant = _Quantize()
        self.flat = nn.Flatten()
        self.fc1 = _dyadic_linear(64, 12, gen)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = _dyadic_linear(12, 12, gen)
        self.out = _dyadic_linear(12, 10, gen)

    def forward(self, x):
        h = self.drop(self.act(self.fc1(self.flat(self.quant(x)))))
        return self.out(self.act(self.fc2(h)))


EXACT_LAYERS = ["input", "quant", "fc1", "act", "fc2", "act-2", "out", "softmax"]


def _digits(n: int, seed: int = 0):
    """Random 8x8 uint8 images, their digits normalisation, and labels 0..9 in turn."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    return images, normalize(images, "digits"), np.arange(n) % 10


# ------------------------------------------------------------------------- the layers


def test_a_shared_module_is_one_layer_per_call():
    model = _Exact()
    _, x, _ = _digits(9)
    capture = Capture(model, x)
    assert capture.names == EXACT_LAYERS  # dropout and flatten: eval-time identities
    assert [s.call for s in capture.sites if s.module is model.act] == [0, 1]
    acts, logits = capture.run(x, batch_size=len(x))
    with torch.no_grad():
        h1 = torch.relu(model.fc1(model.flat(model.quant(x))))
        h2 = torch.relu(model.fc2(h1))
        np.testing.assert_array_equal(acts["act"], h1.numpy())
        np.testing.assert_array_equal(acts["act-2"], h2.numpy())
        np.testing.assert_array_equal(logits, model.out(h2).numpy())
    assert not np.array_equal(acts["act"], acts["act-2"])
    assert list(acts) == EXACT_LAYERS
    assert all(a.dtype == np.float32 and a.shape == (9, i.dim)
               for a, i in zip(acts.values(), capture.infos))


def test_adversarial_step_zero_is_the_recorded_epoch_in_every_layer(tmp_path):
    model = _Exact()
    images, x, labels = _digits(40)
    Recorder(model, tmp_path / "run", probes={"test": (x, labels)}, dataset="digits",
             images={"test": images}, batch_size=16).record(0)
    run_adversarial(tmp_path / "run", model=model, source=8, target=0, steps=3, eps=0.05,
                    epoch=0)
    run = Run.open(tmp_path / "run")
    rec = run.adversarial("default")
    rows = rec.example_index
    assert len(rows) == 4 and [i.name for i in run.layers] == EXACT_LAYERS
    for layer in run.layers:
        np.testing.assert_array_equal(rec.activations(layer.name, 0),
                                      run.activations(layer.name, 0, "test")[rows],
                                      err_msg=layer.name)
    np.testing.assert_array_equal(rec.predictions[0], run.predictions(0, "test")[rows])
    # The steps are an attack, not a copy of step 0.
    assert not np.array_equal(rec.activations("input", 3), rec.activations("input", 0))


def test_run_adversarial_refuses_a_network_that_is_not_the_runs(tmp_path):
    images, x, labels = _digits(20)
    Recorder(_Exact(), tmp_path / "run", probes={"test": (x, labels)}, dataset="digits",
             images={"test": images}).record(0)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(StoreError, match="another network"):
        run_adversarial(tmp_path / "run", model=other, steps=1, epoch=0)
    wider = _Exact()  # the same layer names, one layer wider
    wider.fc1, wider.fc2 = nn.Linear(64, 13), nn.Linear(13, 12)
    with pytest.raises(StoreError, match=r"another network"):
        run_adversarial(tmp_path / "run", model=wider, steps=1, epoch=0)
    assert Run.open(tmp_path / "run").adversarial_names() == []  # nothing was written


# --------------------------------------------------------------- modes and random states


class _Noisy(nn.Module):
    """Draws from the global torch, numpy and Python generators even in eval mode."""

    def forward(self, x):
        np.random.random()
        random.random()
        return x + 0.0 * torch.rand_like(x)


def _noisy_model():
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), _Noisy(),
                         nn.Dropout(0.5), nn.Linear(8, 3))


def _rng_states(device):
    states = [torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()]
    if device == "cuda":
        states.append(torch.cuda.get_rng_state())
    return states


def _assert_same_states(before, after):
    for a, b in zip(before, after, strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


@pytest.mark.parametrize("device", DEVICES)
def test_capture_restores_every_modules_flag_and_the_random_states(device):
    torch.manual_seed(0)
    model = _noisy_model().to(device)
    model.train()
    model[1].eval()  # a frozen batch norm inside a training model
    modes = [m.training for m in model.modules()]
    x = torch.randn(10, 6, device=device)
    before = _rng_states(device)
    capture = Capture(model, x, "all")
    acts, logits = capture.run(x, batch_size=4)
    _assert_same_states(before, _rng_states(device))
    assert [m.training for m in model.modules()] == modes
    assert torch.is_grad_enabled()
    # Eval mode throughout: the dropout dropped nothing, the batch norm used its
    # running statistics (train mode would have normalised by the batch's).
    model.eval()
    with torch.no_grad():
        expected = model(x).cpu().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(acts["4"], acts["3"])  # dropout = identity
    # FGSM's steps (with gradients) leave the states alone too.
    model.train()
    before = _rng_states(device)  # the expected forward pass above drew from them
    fgsm_steps(model, x, 0, eps=0.1, steps=2, lo=-3, hi=3)
    _assert_same_states(before, _rng_states(device))
    assert all(m.training for m in model.modules())


def test_capture_names_a_layer_the_forward_pass_skipped_and_restores_the_model():
    class _Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.noise = nn.Linear(4, 4), nn.Linear(4, 4), _Noisy()
            self.gate = True

        def forward(self, x):
            h = self.noise(self.fc1(x))
            return self.fc2(h) if self.gate else h

    model = _Gated().train()
    x = torch.randn(6, 4)
    capture = Capture(model, x)
    assert "fc2" in capture.names
    model.gate = False
    before = _rng_states("cpu")
    with pytest.raises(CaptureError, match="'fc2' were not called"):
        capture.run(x, batch_size=4)
    _assert_same_states(before, _rng_states("cpu"))
    assert all(m.training for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())  # no hook left behind


def test_evaluating_with_grad_lets_fgsm_differentiate_under_no_grad():
    model = nn.Sequential(nn.Linear(3, 2)).train()
    x = torch.zeros(4, 3)
    with torch.no_grad():
        xs = fgsm_steps(model, x, 1, eps=0.1, steps=1, lo=-1, hi=1)
        with evaluating(model):
            assert not model.training and not torch.is_grad_enabled()
    assert (xs[1] != xs[0]).any()
    assert model.training


# --------------------------------------------------------------------------- batching


def test_batched_capture_equals_unbatched_bitwise_in_every_layer():
    model = _Exact()
    _, x, _ = _digits(23)
    capture = Capture(model, x)
    whole, whole_logits = capture.run(x, batch_size=len(x))
    for batch_size in (1, 2, 7, 22, 64):
        acts, logits = capture.run(x, batch_size=batch_size)
        np.testing.assert_array_equal(logits, whole_logits, err_msg=str(batch_size))
        for name in EXACT_LAYERS:
            np.testing.assert_array_equal(acts[name], whole[name], err_msg=f"{name} {batch_size}")
    # One example at a time is the same as all of them at once.
    single = [capture.run(x[i:i + 1])[0] for i in range(len(x))]
    for name in EXACT_LAYERS:
        np.testing.assert_array_equal(np.concatenate([s[name] for s in single]), whole[name])
    # An empty batch has the right shapes.
    empty, empty_logits = capture.run(x[:0])
    assert empty["fc2"].shape == (0, 12) and empty_logits.shape == (0, 10)


def test_capture_of_a_float_model_matches_its_modules_for_any_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(3 * 6 * 6, 10))
    x = torch.randn(11, 1, 8, 8)
    x_before = x.clone()
    acts, logits = Capture(model, x).run(x.numpy(), batch_size=4)  # an ndarray works too
    with torch.no_grad():
        conv = model[0](x)
        # Not bitwise: other batch shapes may take other BLAS kernels (see capture's doc).
        np.testing.assert_allclose(acts["0"], conv.reshape(11, -1).numpy(), rtol=1e-5, atol=1e-6)
        assert (conv < 0).any()  # the in-place ReLU did not overwrite the conv's record
        np.testing.assert_allclose(acts["1"], torch.relu(conv).reshape(11, -1).numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(x, x_before)


def test_capture_rejects_what_it_cannot_capture():
    model = _Exact()
    _, x, _ = _digits(4)
    capture = Capture(model, x, ["fc1", "softmax"])
    with pytest.raises(UnknownLayerError, match="'fc2' not among the captured layers"):
        capture.run(x, layers=["fc2"])
    with pytest.raises(UnknownLayerError, match="the model's layers are"):
        Capture(model, x, ["fc9"])
    with pytest.raises(CaptureError, match="per-example shape"):
        capture.run(torch.zeros(3, 1, 4, 4))
    with pytest.raises(CaptureError, match="batch_size"):
        capture.run(x, batch_size=0)
    with pytest.raises(CaptureError, match="at least one"):
        Capture(model, x[:0])
    # Only the layers asked for are computed.
    acts, _ = capture.run(x, layers=["softmax"])
    assert list(acts) == ["softmax"]
