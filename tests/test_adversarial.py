"""Iterative targeted FGSM: steps bounded by eps, inside the pixel range, lowering the loss."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grandtour.adversarial import (
    adversarial_command,
    class_index,
    fgsm,
    fgsm_steps,
    layer_activations,
    pixel_range,
    run_adversarial,
)
from grandtour.data import load_dataset
from grandtour.errors import GrandTourError, StoreError
from grandtour.models import build_model, normalize
from grandtour.store import Run

STEPS = 12


def _tiny_model(channels=1, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 8), nn.Tanh(), nn.Linear(8, 4))


def _target_loss(model, xs, target):
    with torch.no_grad():
        return np.array([F.cross_entropy(model(x), torch.full((x.shape[0],), target)).item()
                         for x in xs])


def test_fgsm_lowers_the_target_loss_within_eps_and_range():
    model = _tiny_model()
    gen = torch.Generator().manual_seed(1)
    lo, hi, eps = -1.0, 2.0, 0.05
    x = lo + (hi - lo) * torch.rand((20, 1, 4, 4), generator=gen)
    xs = fgsm_steps(model, x, 2, eps=eps, steps=STEPS, lo=lo, hi=hi)
    assert xs.shape == (STEPS + 1, 20, 1, 4, 4)
    torch.testing.assert_close(xs[0], x, rtol=0, atol=0)
    step = (xs[1:] - xs[:-1]).abs()
    assert step.max() <= eps + 1e-6  # float rounding of x - eps
    assert step.max() > eps / 2  # it does move
    assert xs.min() >= lo and xs.max() <= hi
    loss = _target_loss(model, xs, 2)
    assert loss[-1] < loss[0]
    assert np.mean(np.diff(loss) < 0) >= 0.8  # mostly decreasing


def test_fgsm_with_per_channel_eps_and_range():
    model = _tiny_model(channels=3)
    lo = torch.tensor([-2.0, -1.0, 0.0]).view(3, 1, 1)
    hi = torch.tensor([2.0, 1.0, 0.5]).view(3, 1, 1)
    eps = torch.tensor([0.1, 0.01, 0.0]).view(3, 1, 1)
    x = torch.randn((6, 3, 4, 4), generator=torch.Generator().manual_seed(2))
    x = torch.maximum(torch.minimum(x, hi), lo)
    xs = fgsm(model, x, torch.tensor([1, 1, 1, 3, 3, 3]), eps=eps, steps=5, clamp=(lo, hi))
    step = (xs[1:] - xs[:-1]).abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(step <= eps.flatten() + 1e-6)  # float rounding of x - eps
    assert torch.equal(xs[:, :, 2], xs[:1, :, 2].expand_as(xs[:, :, 2]))  # eps 0: never moves
    assert torch.all(xs >= lo) and torch.all(xs <= hi)


def test_fgsm_leaves_the_model_as_it_found_it():
    model = _tiny_model()
    model.train()
    fgsm_steps(model, torch.zeros((3, 1, 4, 4)), 0, eps=0.1, steps=3, lo=-1, hi=1)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kw", [{"steps": -1}, {"steps": 1.5}, {"eps": -0.1},
                                {"eps": float("nan")}])
def test_fgsm_bad_arguments(kw):
    args = {"eps": 0.1, "steps": 2, "lo": -1, "hi": 1, **kw}
    with pytest.raises(GrandTourError):
        fgsm_steps(_tiny_model(), torch.zeros((2, 1, 4, 4)), 0, **args)


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_pixel_eps_moves_each_pixel_at_most_eps_and_stays_in_0_1(dataset):
    lo, hi, unit = pixel_range(dataset)
    # lo and hi are the images of black and white pixels.
    for value, bound in ((0, lo), (255, hi)):
        image = np.full((1, len(lo), 2, 2), value, np.uint8)
        torch.testing.assert_close(normalize(image, dataset)[0, :, :1, :1], bound)
    torch.manual_seed(0)
    model = build_model(dataset)
    shape = (4, *{"digits": (1, 8, 8), "cifar10": (3, 32, 32)}[dataset])
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    eps = 0.02
    xs = fgsm_steps(model, normalize(images, dataset), 0, eps=eps * unit, steps=4, lo=lo, hi=hi)
    pixels = (xs - lo) / (hi - lo)  # back to [0, 1] pixel units
    # Exactly eps for a pixel that is not clipped: the conversion is neither short nor long.
    assert (pixels[1:] - pixels[:-1]).abs().max() == pytest.approx(eps, abs=1e-5)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_layer_activations_match_the_modules_outputs():
    torch.manual_seed(0)
    model = build_model("digits")
    x = torch.randn(5, 1, 8, 8)
    acts, logits = layer_activations(model, x, ["input", "conv1", "fc2", "softmax"], batch_size=2)
    with torch.no_grad():
        np.testing.assert_allclose(acts["conv1"], model.conv1(x).reshape(5, -1).numpy(),
                                   rtol=1e-5, atol=1e-6)  # batches of 2 vs 5: other kernels
        np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(acts["input"], x.reshape(5, -1).numpy())
    np.testing.assert_allclose(acts["softmax"].sum(axis=1), 1, rtol=1e-6)
    with pytest.raises(StoreError, match="conv9"):
        layer_activations(model, x, ["conv9"])


def test_class_index_by_name_or_index():
    names = ("T-shirt/top", "Trouser", "Bag")
    assert class_index("bag", names) == 2
    assert class_index("1", names) == 1
    assert class_index(0, names) == 0
    for bad in ("shoe", "3", 3, -1):
        with pytest.raises(GrandTourError, match="Trouser"):
            class_index(bad, names)


# ------------------------------------------------------------------ on a trained run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    from grandtour.train import train

    ds = load_dataset("digits")
    ds = dataclasses.replace(ds, x_train=ds.x_train[:500], y_train=ds.y_train[:500])
    path = tmp_path_factory.mktemp("adv") / "run"
    # No logit ReLU: every class is learnt within two epochs, so there is an 8 to attack.
    train(ds, path, epochs=2, probe_size=100, progress=False, logit_relu=False, lr=0.05)
    return path


def test_run_adversarial_writes_every_step_of_every_layer(run_path):
    summary = run_adversarial(run_path, source=8, target="0", steps=STEPS, eps=0.02)
    run = Run.open(run_path)
    rec = run.adversarial("default")
    rows = rec.example_index
    assert (rec.epoch, rec.source, rec.target, rec.steps, rec.split) == (2, 8, 0, STEPS, "test")
    assert np.all(run.labels("test")[rows] == 8) and len(rows) == np.sum(run.labels("test") == 8)
    assert rec.predictions.shape == (STEPS + 1, len(rows))
    for layer in run.layers:
        assert rec.activations(layer.name, STEPS).shape == (len(rows), layer.dim)
    # Step 0 is the genuine example: what the training run recorded for those rows.
    np.testing.assert_array_equal(rec.images(0), run.images("test")[rows])
    np.testing.assert_array_equal(rec.predictions[0], run.predictions(2, "test")[rows])
    np.testing.assert_allclose(rec.activations("fc1", 0), run.activations("fc1", 2, "test")[rows],
                               rtol=2e-3, atol=2e-3)
    # Stored images: each step moves a pixel by at most eps (plus rounding), within 0..255.
    imgs = rec.images().astype(int)
    largest = np.abs(np.diff(imgs, axis=0)).max()
    assert np.floor(0.02 * 255) - 1 <= largest <= np.ceil(0.02 * 255) + 1
    assert np.abs(imgs[-1] - imgs[0]).max() > 0
    # The loss toward the target falls; the summary agrees with the predictions.
    assert rec.target_loss[-1] < rec.target_loss[0]
    np.testing.assert_allclose(summary.target_loss, rec.target_loss)
    for m, first in enumerate(summary.first_step):
        hits = np.flatnonzero(rec.predictions[:, m] == 0)
        assert first == (hits[0] if hits.size else -1)
    assert summary.reached == np.sum(summary.first_step >= 0)
    assert f"reached 0: {summary.reached} of {len(rows)}" in str(summary)


def test_run_adversarial_named_records_and_epochs(run_path):
    run_adversarial(run_path, source="3", target=5, steps=2, eps=0.01, epoch=0, name="early")
    run = Run.open(run_path)
    assert "early" in run.adversarial_names()
    rec = run.adversarial("early")
    assert (rec.epoch, rec.source, rec.target, rec.steps) == (0, 3, 5, 2)


@pytest.mark.parametrize("kw, match", [
    ({"source": 8, "target": 8}, "same class"),
    ({"source": "eight"}, "unknown source"),
    ({"target": 10}, "unknown target"),
    ({"epoch": 7}, "no epoch 7"),
    ({"steps": 0}, "steps"),
    ({"eps": 0.0}, "eps"),
    ({"eps": 2.0}, "eps"),
    ({"device": "nonsense"}, "device"),
])
def test_run_adversarial_bad_arguments(run_path, kw, match):
    with pytest.raises(GrandTourError, match=match):
        run_adversarial(run_path, **{"steps": 2, **kw})


def test_run_adversarial_on_a_missing_run(tmp_path):
    with pytest.raises(StoreError):
        run_adversarial(tmp_path / "none", steps=2)


def test_adversarial_command_prints_the_summary(run_path, capsys):
    args = argparse.Namespace(run=str(run_path), data_dir=None, source="8", target="0", steps=3,
                              eps=0.01, epoch=None, device="cpu")
    assert adversarial_command(args) == 0
    out = capsys.readouterr().out
    assert "8 -> 0" in out and "reached 0" in out
    assert Run.open(run_path).adversarial().steps == 3
