"""Training: deterministic per seed, resumable exactly, and recorded faithfully."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from grandtour.data import load_dataset
from grandtour.errors import GrandTourError, StoreError
from grandtour.store import Run
from grandtour.train import (
    STATE_FILE,
    first_learnt_epochs,
    train,
    train_command,
    training_summary,
)

# Small enough that an epoch and its record take a fraction of a second.
N_TRAIN, N_TEST, PROBES = 400, 150, 60
PARAM_LAYERS = ("conv1", "conv2", "fc1", "fc2")


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return dataclasses.replace(ds, x_train=ds.x_train[:N_TRAIN], y_train=ds.y_train[:N_TRAIN],
                               x_test=ds.x_test[:N_TEST], y_test=ds.y_test[:N_TEST])


def _train(ds, path, **kw):
    kw.setdefault("epochs", 3)
    kw.setdefault("probe_size", PROBES)
    return train(ds, path, progress=False, **kw)


def _params(run, epoch):
    return {f"{layer}.{k}": v
            for layer in PARAM_LAYERS for k, v in run.params(layer, epoch).items()}


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    """Three epochs, seed 0, with the model's weights captured at every epoch."""
    seen = {}

    def snapshot(epoch, logs):
        state = logs["model"].state_dict()
        seen[epoch] = {k: v.detach().cpu().numpy().copy() for k, v in state.items()}

    run = _train(digits, tmp_path_factory.mktemp("ref") / "run", callbacks=[snapshot])
    return run, seen


def test_records_epoch_zero_then_every_epoch(reference):
    run, seen = reference
    assert run.epochs == [0, 1, 2, 3]
    assert sorted(seen) == [0, 1, 2, 3]
    assert run.splits == ["train", "test"]
    assert len(run.labels("train")) == PROBES and len(run.labels("test")) == PROBES


def test_epoch_zero_is_the_untrained_network(reference):
    run, seen = reference
    stored0 = _params(run, 0)
    # The weights the model had when epoch 0 was recorded, before any optimizer step...
    for key, value in stored0.items():
        np.testing.assert_array_equal(value, seen[0][key])
    # ...are the seed's initial weights (build the network the documented way)...
    from grandtour.models import build_model

    torch.manual_seed(0)
    fresh = build_model("digits").state_dict()
    for key, value in stored0.items():
        np.testing.assert_array_equal(value, fresh[key].numpy())
    # ...and training moved them.
    assert any(not np.array_equal(stored0[k], v) for k, v in _params(run, 1).items())


def test_stored_params_are_the_models_weights_at_each_epoch(reference):
    run, seen = reference
    for epoch in run.epochs:
        for key, value in _params(run, epoch).items():
            np.testing.assert_array_equal(value, seen[epoch][key])


def test_same_seed_gives_identical_weights_other_seed_does_not(digits, reference, tmp_path):
    run, _ = reference
    again = _train(digits, tmp_path / "again")
    for epoch in run.epochs:
        a, b = _params(run, epoch), _params(again, epoch)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(run.predictions(epoch, "test"),
                                      again.predictions(epoch, "test"))
    other = _train(digits, tmp_path / "other", seed=1, epochs=1)
    assert any(not np.array_equal(v, _params(run, 0)[k]) for k, v in _params(other, 0).items())


def test_training_does_not_disturb_the_callers_random_state(digits, tmp_path):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    _train(digits, tmp_path / "run", epochs=1)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_resume_equals_uninterrupted(digits, reference, tmp_path):
    run, _ = reference
    path = tmp_path / "resumed"
    # Interrupted after epoch 2 (a callback asking to stop), then resumed to 3.
    first = _train(digits, path, callbacks=[lambda epoch, logs: epoch == 2])
    assert first.epochs == [0, 1, 2]
    resumed = _train(digits, path, resume=True)
    assert resumed.epochs == [0, 1, 2, 3]
    for epoch in run.epochs:
        a, b = _params(run, epoch), _params(resumed, epoch)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"epoch {epoch} {key}")
    np.testing.assert_array_equal(run.metrics("test")["loss"], resumed.metrics("test")["loss"])


def test_resume_after_a_kill_inside_the_commit_equals_uninterrupted(digits, reference, tmp_path,
                                                                    monkeypatch):
    from grandtour.store import RunWriter

    run, _ = reference
    path = tmp_path / "killed"
    commits = []

    def hook(stage):
        if stage == "before_commit":
            commits.append(stage)
            if len(commits) == 3:  # epochs 0 and 1 committed; die while committing 2
                raise KeyboardInterrupt

    monkeypatch.setattr(RunWriter, "_test_hook", hook)
    with pytest.raises(KeyboardInterrupt):
        _train(digits, path)
    monkeypatch.setattr(RunWriter, "_test_hook", None)
    assert Run.open(path).epochs == [0, 1]
    # The training state was saved for epoch 2 already; resuming needs epoch 1's.
    resumed = _train(digits, path, resume=True)
    assert resumed.epochs == [0, 1, 2, 3]
    for key, value in _params(run, 3).items():
        np.testing.assert_array_equal(value, _params(resumed, 3)[key], err_msg=key)


def test_resume_extends_a_finished_run_and_its_config(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=1)
    run = _train(digits, path, epochs=2, resume=True)
    assert run.epochs == [0, 1, 2]
    assert run.config["epochs"] == 2
    # Asking for no more epochs than are done trains nothing.
    assert _train(digits, path, epochs=2, resume=True).epochs == [0, 1, 2]


def test_resume_without_training_state_says_so(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=1)
    (path / STATE_FILE).unlink()
    with pytest.raises(StoreError, match=STATE_FILE):
        _train(digits, path, epochs=2, resume=True)


def test_resume_with_state_of_another_epoch_says_they_disagree(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=2)
    saved = torch.load(path / STATE_FILE, weights_only=True)
    saved["states"] = {0: saved["states"][1] | {"epoch": 0}}
    torch.save(saved, path / STATE_FILE)
    with pytest.raises(StoreError, match="disagree"):
        _train(digits, path, epochs=3, resume=True)


def test_resume_with_other_weights_in_the_state_says_they_differ(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=1)
    saved = torch.load(path / STATE_FILE, weights_only=True)
    saved["states"][1]["model"]["fc1.bias"] += 1.0
    torch.save(saved, path / STATE_FILE)
    with pytest.raises(StoreError, match="differ"):
        _train(digits, path, epochs=2, resume=True)


def test_resume_with_other_settings_is_refused(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=1)
    with pytest.raises(GrandTourError, match="lr"):
        _train(digits, path, epochs=2, resume=True, lr=0.1)


def test_overwrite_replaces_a_training_run(digits, tmp_path):
    path = tmp_path / "run"
    _train(digits, path, epochs=2)
    with pytest.raises(StoreError, match="already exists"):
        _train(digits, path, epochs=1)
    run = _train(digits, path, epochs=1, overwrite=True)
    assert run.epochs == [0, 1]


def test_per_class_metrics_agree_with_predictions(reference):
    run, _ = reference
    for split in run.splits:
        labels = run.labels(split)
        metrics = run.metrics(split)
        counts = np.bincount(labels, minlength=len(run.class_names))
        for e, epoch in enumerate(run.epochs):
            pred = run.predictions(epoch, split)
            assert metrics["accuracy"][e] == pytest.approx(np.mean(pred == labels))
            for c in range(len(run.class_names)):
                expected = np.mean(pred[labels == c] == c)
                assert metrics["class_accuracy"][e, c] == pytest.approx(expected)
            # The overall loss is the class losses weighted by the class sizes.
            assert metrics["loss"][e] == pytest.approx(
                np.sum(metrics["class_loss"][e] * counts) / counts.sum(), rel=1e-6)


def test_training_lowers_the_loss(reference):
    run, _ = reference
    loss = run.metrics("train")["loss"]
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -2}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"probe_size": 0}, "probe_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"momentum": 1.0}, "momentum"),
    ({"seed": -1}, "seed"),
    ({"device": "nonsense"}, "unknown device"),
    ({"device": "meta"}, "unsupported device"),
    ({"resume": True, "overwrite": True}, "resume and overwrite"),
])
def test_bad_arguments_are_refused_before_anything_is_written(digits, tmp_path, kw, match):
    kw = {"epochs": 1, **kw}
    with pytest.raises(GrandTourError, match=match):
        _train(digits, tmp_path / "run", **kw)
    assert not (tmp_path / "run").exists()


def test_cuda_without_cuda_is_refused(digits, tmp_path, monkeypatch):
    # On every machine: one with a GPU is made to look like one without.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GrandTourError, match="CUDA"):
        _train(digits, tmp_path / "run", epochs=1, device="cuda")
    assert not (tmp_path / "run").exists()


# The CPU always; CUDA too wherever there is a GPU. No test is skipped either way.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
def test_trains_and_records_on_each_device_of_this_machine(digits, reference, tmp_path, device):
    ref, _ = reference
    run = _train(digits, tmp_path / "run", epochs=1, device=device)
    assert run.epochs == [0, 1]
    # The network is built on the CPU from the seed, then moved: the same initial weights.
    for key, value in _params(run, 0).items():
        np.testing.assert_array_equal(value, _params(ref, 0)[key], err_msg=key)
    trained = _params(run, 1)
    assert all(np.isfinite(v).all() for v in trained.values())
    assert any(not np.array_equal(v, _params(run, 0)[k]) for k, v in trained.items())
    assert np.isfinite(run.metrics("test")["loss"]).all()
    if device == "cpu":  # deterministic: the first epoch of the three-epoch reference
        for key, value in trained.items():
            np.testing.assert_array_equal(value, _params(ref, 1)[key], err_msg=key)


def test_resume_of_a_missing_run_is_a_store_error(digits, tmp_path):
    with pytest.raises(StoreError):
        _train(digits, tmp_path / "nothing", epochs=1, resume=True)


def test_dataset_without_a_network_is_refused(digits, tmp_path):
    other = dataclasses.replace(digits, name="custom")
    with pytest.raises(GrandTourError, match="custom"):
        _train(other, tmp_path / "run", epochs=1)


def test_diverging_loss_stops_with_advice(digits, tmp_path):
    with pytest.raises(GrandTourError, match="diverged"):
        _train(digits, tmp_path / "run", epochs=2, lr=1e30, logit_relu=False)


def test_first_learnt_epochs_ignores_the_untrained_epoch():
    acc = np.array([[1.0, 0.0, 0.0],   # epoch 0: class 0 "learnt" by an untrained net
                    [0.2, 0.6, 0.0],
                    [0.7, 0.4, 0.1],
                    [0.9, 0.9, 0.3]])
    assert first_learnt_epochs(acc, [0, 1, 2, 3]) == [2, 1, None]


def test_summary_names_accuracies_late_classes_and_the_run(reference):
    run, _ = reference
    text = training_summary(run, epoch_seconds=[0.5, 0.25, 0.75], record_seconds=[0.2, 0.1, 0.3])
    first = first_learnt_epochs(run.metrics("test")["class_accuracy"], run.epochs)
    assert str(run.path) in text
    assert "0.50 s per epoch: training 0.30 s, recording 0.20 s" in text
    for name, when in zip(run.class_names, first):
        row = next(line for line in text.splitlines() if line.strip().startswith(f"{name} "))
        assert ("never" in row) == (when is None)
        if when is not None:
            assert f"epoch {when}" in row


def _args(**kw):
    base = dict(dataset=None, data_dir=None, download=False, out=None, epochs=None,
                probe_size=None, seed=None, device="cpu", batch_size=None, lr=None,
                momentum=None, logit_relu=None, resume=False, overwrite=False, align=False)
    return argparse.Namespace(**{**base, **kw})


def test_train_command_fills_defaults(monkeypatch, tmp_path):
    import grandtour.train.command as mod  # the module whose train() train_command calls

    calls = {}

    def fake_train(dataset, out, **kw):
        calls.update(kw, dataset=dataset.name, out=out)
        return "run"

    monkeypatch.setattr(mod, "train", fake_train)
    monkeypatch.setattr(mod, "training_summary", lambda run, **kw: "summary")
    assert train_command(_args(out=str(tmp_path / "r"))) == 0
    # digits: its own defaults (no logit ReLU, lr 0.05), the rest train()'s
    assert calls["epochs"] == 30 and calls["batch_size"] == 64
    assert calls["lr"] == 0.05 and calls["momentum"] == 0.5
    assert calls["logit_relu"] is False and calls["dataset"] == "digits"
    assert calls["seed"] == 0 and calls["probe_size"] == 1000
    # a flag given wins over the dataset's default
    assert train_command(_args(out=str(tmp_path / "r2"), logit_relu=True, lr=0.01)) == 0
    assert calls["logit_relu"] is True and calls["lr"] == 0.01


def test_train_command_trains_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_command(_args(out=str(out), epochs=1, probe_size=40, lr=0.02)) == 0
    text = capsys.readouterr().out
    assert "per-class test accuracy" in text and str(out) in text
    # Resuming takes the run's own settings (lr 0.02) when the flags are left out.
    assert train_command(_args(out=str(out), epochs=2, probe_size=40, resume=True)) == 0
    run = Run.open(out)
    assert run.epochs == [0, 1, 2] and run.config["lr"] == 0.02


def test_train_command_aligns_the_layers_unless_told_not_to(tmp_path):
    from grandtour.align import load_transition

    out = tmp_path / "run"
    assert train_command(_args(out=str(out), epochs=1, probe_size=30, align=True)) == 0
    t = load_transition(out, "fc1", 1, "test")  # stored: raises if not aligned
    assert t.start.shape == t.end.shape and t.start.shape[0] == 30


def test_train_command_rejects_bad_epochs(tmp_path):
    with pytest.raises(GrandTourError, match="epochs"):
        train_command(_args(out=str(tmp_path / "r"), epochs=0))
