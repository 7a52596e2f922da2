"""The Recorder: what it writes equals the model's own forward pass, and it never
changes training. Also probe selection, layer tracing, and torch.distributed."""

import random
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from grandtour.errors import StoreError  # noqa: E402
from grandtour.models import build_model, normalize  # noqa: E402
from grandtour.record import Recorder, layer_infos, select_probes  # noqa: E402
from grandtour.store import Run, RunWriter  # noqa: E402

# float16 on disk: 11 significant bits.
F16 = {"rtol": 2e-3, "atol": 1e-4}


def _digits_probes(n_train=30, n_test=12, seed=0):
    """Random 8x8 uint8 images, normalised as the digits pipeline does."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        labels = np.arange(n) % 10
        out[split] = (normalize(images, "digits"), labels)
    return out


def _sequential_outputs(model, x):
    """Every child's output of a Sequential, flattened, by running the children in turn."""
    out = {"input": x.reshape(len(x), -1)}
    with torch.no_grad():
        for name, child in model.named_children():
            x = child(x)
            out[name] = x.reshape(len(x), -1)
    out["softmax"] = torch.softmax(x, dim=1)
    return {k: v.numpy() for k, v in out.items()}, x


# ------------------------------------------------------------------------ select_probes


def test_select_probes_is_balanced_sorted_and_exact():
    labels = np.repeat(np.arange(10), 50)
    np.random.default_rng(3).shuffle(labels)
    idx = select_probes(labels, size=95, seed=0)
    assert len(idx) == 95 and len(np.unique(idx)) == 95
    assert np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_select_probes_is_deterministic_per_seed_and_leaves_global_rng_alone():
    labels = np.repeat(np.arange(4), 100)
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    a = select_probes(labels, 40, seed=1)
    assert np.array_equal(np.random.get_state()[1], state)
    assert np.array_equal(a, select_probes(labels, 40, seed=1))
    assert not np.array_equal(a, select_probes(labels, 40, seed=2))


def test_select_probes_fills_a_short_class_from_the_others():
    labels = np.concatenate([np.zeros(3, int), np.ones(100, int), np.full(100, 2)])
    idx = select_probes(labels, size=30, seed=0)
    counts = np.bincount(labels[idx], minlength=3)
    assert counts.tolist()[0] == 3  # all it has
    assert counts.sum() == 30
    assert abs(counts[1] - counts[2]) <= 1


def test_select_probes_larger_than_the_data_takes_everything():
    labels = np.array([2, 0, 1, 1])
    assert select_probes(labels, size=10).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        select_probes(labels, size=-1)


# ---------------------------------------------------------------------- layer tracing


class _Branchy(nn.Module):
    """Not a Sequential: a shared activation called twice, nested names, a dropout."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(5, 5)
        self.head = nn.Sequential(OrderedDict(flat=nn.Flatten(), out=nn.Linear(5, 3)))

    def forward(self, x):
        h = self.drop(self.act(self.fc1(x)))
        h = self.act(self.fc2(h))
        return self.head(h)


def test_layer_infos_of_any_module_in_execution_order():
    infos = layer_infos(_Branchy(), (6,))
    names = ["input", "fc1", "act", "fc2", "act-2", "head.out", "softmax"]
    kinds = ["input", "linear", "relu", "linear", "relu", "linear", "softmax"]
    assert [i.name for i in infos] == names
    assert [i.kind for i in infos] == kinds
    assert infos[0].static and not any(i.static for i in infos[1:])
    assert infos[-1].shape == (3,)
    assert infos[1].config["in_features"] == 6 and infos[1].config["out_features"] == 5
    assert "Linear(in_features=6" in infos[1].module
    every = [i.name for i in layer_infos(_Branchy(), (6,), layers="all")]
    assert every == [*names[:3], "drop", *names[3:5], "head.flat", *names[5:]]
    # The caller's order does not matter: the network's does.
    chosen = layer_infos(_Branchy(), (6,), layers=["softmax", "act-2", "fc1"])
    assert [i.name for i in chosen] == ["fc1", "act-2", "softmax"]
    with pytest.raises(ValueError, match="fc3.*the model's layers are"):
        layer_infos(_Branchy(), (6,), layers=["fc3"])


def test_layer_infos_rejects_models_that_do_not_output_logits():
    with pytest.raises(ValueError, match="logits"):
        layer_infos(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 5, 5))
    clash = nn.Sequential(OrderedDict(input=nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="'input'"):
        layer_infos(clash, (3,))


# ---------------------------------------------------------------------------- Recorder


def test_recorded_activations_equal_a_fresh_forward_pass(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits")
    probes = _digits_probes()
    # batch_size 7 does not divide 30 or 12: batches and their offsets are exercised.
    rec = Recorder(model, tmp_path / "run", probes=probes, batch_size=7, dataset="digits")
    assert [i.name for i in rec.layers] == [
        "input", "conv1", "pool1", "relu1", "conv2", "pool2", "relu2",
        "fc1", "relu3", "fc2", "relu4", "softmax",
    ]  # fmt: skip
    returned = rec.record(0)
    run = Run.open(tmp_path / "run")
    assert run.epochs == [0]
    assert [i.name for i in run.layers] == [i.name for i in rec.layers]
    for split, (x, labels) in probes.items():
        expected, logits = _sequential_outputs(model.eval(), x)
        for info in rec.layers:
            got = run.activations(info.name, 0, split)
            assert got.shape == (len(x), info.dim)
            np.testing.assert_allclose(got, expected[info.name], **F16, err_msg=info.name)
        softmax = run.activations("softmax", 0, split).astype(np.float64)
        np.testing.assert_allclose(softmax.sum(axis=1), 1.0, atol=5e-3)
        np.testing.assert_array_equal(run.predictions(0, split), logits.argmax(1).numpy())
        np.testing.assert_array_equal(run.labels(split), labels)
        # Metrics: cross-entropy of the logits, overall and per class.
        per = F.cross_entropy(logits, torch.as_tensor(labels), reduction="none").numpy()
        m = run.metrics(split)
        np.testing.assert_allclose(m["loss"][0], per.mean(), rtol=1e-5)
        np.testing.assert_allclose(returned[split]["loss"], per.mean(), rtol=1e-5)
        correct = logits.argmax(1).numpy() == labels
        np.testing.assert_allclose(m["accuracy"][0], correct.mean())
        for c in range(10):
            np.testing.assert_allclose(m["class_loss"][0][c], per[labels == c].mean(), rtol=1e-5)
            np.testing.assert_allclose(m["class_accuracy"][0][c], correct[labels == c].mean())
    for name in ("conv1", "conv2", "fc1", "fc2"):
        params = run.params(name, 0)
        module = getattr(model, name)
        np.testing.assert_array_equal(params["weight"], module.weight.detach().numpy())
        np.testing.assert_array_equal(params["bias"], module.bias.detach().numpy())


def test_epoch_zero_is_the_untrained_network_and_differs_after_a_step(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits", logit_relu=False)
    probes = _digits_probes()
    rec = Recorder(model, tmp_path / "run", probes=probes)
    x, y = probes["train"]
    before, _ = _sequential_outputs(model.eval(), x)
    rec.record(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    loss = F.cross_entropy(model(x), torch.as_tensor(y))
    loss.backward()
    opt.step()
    rec.record(1)
    after, _ = _sequential_outputs(model.eval(), x)
    run = Run.open(tmp_path / "run")
    assert run.epochs == [0, 1]
    e0, e1 = run.activations("fc2", 0, "train"), run.activations("fc2", 1, "train")
    np.testing.assert_allclose(e0, before["fc2"], **F16)
    np.testing.assert_allclose(e1, after["fc2"], **F16)
    assert np.abs(e1 - e0).max() > 1e-2
    assert not np.array_equal(run.params("fc2", 0)["weight"], run.params("fc2", 1)["weight"])
    assert run.metrics("train")["loss"][1] < run.metrics("train")["loss"][0]


class _Noisy(nn.Module):
    """Draws from the global torch, numpy and Python generators even in eval mode."""

    def forward(self, x):
        np.random.random()
        random.random()
        return x + 0.0 * torch.rand_like(x)


def _bn_dropout_model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout2d(0.3),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        _Noisy(),
        nn.Dropout(0.5),
        nn.Linear(16, 10),
    )


def _train(tmp_path, with_recorder):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = _bn_dropout_model()
    probes = _digits_probes(20, 10)
    x, y = _digits_probes(64, 0, seed=1)["train"]
    y = torch.as_tensor(y)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if with_recorder:
        rec = Recorder(model, tmp_path / "run", probes=probes, batch_size=8)
        rec.record(0)
    for step in range(4):
        model.train()
        idx = np.random.permutation(64)[: 16 + random.randrange(4)]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if with_recorder:
            rec.record(step + 1)
    return model.state_dict()


def test_training_is_bit_identical_with_and_without_the_recorder(tmp_path):
    plain = _train(tmp_path, with_recorder=False)
    recorded = _train(tmp_path, with_recorder=True)
    assert plain.keys() == recorded.keys()
    assert "1.running_mean" in plain  # batch-norm statistics are compared too
    for key in plain:
        assert torch.equal(plain[key], recorded[key]), key
    run = Run.open(tmp_path / "run")
    assert run.epochs == [0, 1, 2, 3, 4]
    # Batch-norm buffers are recorded with the weights, and they moved with training.
    assert "running_mean" in run.params("1", 0)
    first, last = run.params("1", 0), run.params("1", 4)
    assert not np.array_equal(first["running_mean"], last["running_mean"])


def test_record_restores_each_modules_mode_and_grad_mode(tmp_path):
    model = _bn_dropout_model()
    model.train()
    model[1].eval()  # a frozen batch norm inside a training model
    modes = [m.training for m in model.modules()]
    rec = Recorder(model, tmp_path / "run", probes=_digits_probes(10, 4))
    rec.record(0)
    assert [m.training for m in model.modules()] == modes
    assert torch.is_grad_enabled()
    model.eval()
    rec.record(1)
    assert not any(m.training for m in model.modules())


def test_shared_and_inplace_modules_are_recorded_per_call(tmp_path):
    torch.manual_seed(0)
    model = _Branchy()
    x = torch.randn(9, 6)
    labels = np.arange(9) % 3
    Recorder(model, tmp_path / "a", probes={"train": (x, labels)}, batch_size=4).record(0)
    run = Run.open(tmp_path / "a")
    with torch.no_grad():
        h1 = model.fc1(x)
        h2 = model.fc2(torch.relu(h1))
    np.testing.assert_allclose(run.activations("act", 0, "train"), torch.relu(h1).numpy(), **F16)
    np.testing.assert_allclose(run.activations("act-2", 0, "train"), torch.relu(h2).numpy(), **F16)
    # An in-place ReLU after a linear layer must not overwrite the linear layer's record.
    inplace = nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))
    x_before = x.clone()
    Recorder(inplace, tmp_path / "b", probes={"train": (x, labels)}).record(0)
    run = Run.open(tmp_path / "b")
    with torch.no_grad():
        pre = inplace[0](x).numpy()
    assert (pre < 0).any()
    np.testing.assert_allclose(run.activations("0", 0, "train"), pre, **F16)
    assert torch.equal(x, x_before)  # the caller's probes are untouched


def test_resume_appends_to_an_existing_run(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits")
    probes = _digits_probes(10, 5)
    Recorder(model, tmp_path / "run", probes=probes).record(0)
    with torch.no_grad():
        model.fc2.bias.add_(1.0)
    Recorder(model, tmp_path / "run", probes=probes, resume=True).record(1)
    Recorder(model, RunWriter.open(tmp_path / "run"), probes=probes).record(5)
    run = Run.open(tmp_path / "run")
    assert run.epochs == [0, 1, 5]
    np.testing.assert_allclose(
        run.activations("fc2", 1, "test") - run.activations("fc2", 0, "test"), 1.0, **F16
    )
    # Appending with other layers would make a run whose epochs disagree: refused.
    with pytest.raises(StoreError, match="fc1"):
        Recorder(model, tmp_path / "run", probes=probes, resume=True, layers=["fc1"])


def test_recorder_rejects_bad_probes(tmp_path):
    model = build_model("digits")
    x, y = _digits_probes(10, 0)["train"]
    with pytest.raises(ValueError, match="labels must lie"):
        Recorder(model, tmp_path / "a", probes={"train": (x, y + 5)})
    with pytest.raises(ValueError, match="class names"):
        Recorder(model, tmp_path / "b", probes={"train": (x, y)}, class_names=["a", "b"])
    with pytest.raises(ValueError, match="labels of shape"):
        Recorder(model, tmp_path / "c", probes={"train": (x, y[:-1])})
    with pytest.raises(ValueError, match="probes are required"):
        Recorder(model, tmp_path / "d")


# -------------------------------------------------------------------- torch.distributed


def _record_two_epochs(model, path, probes):
    rec = Recorder(model, path, probes=probes, batch_size=4, dataset="digits")
    rec.record(0)
    with torch.no_grad():  # a stand-in for a training epoch, the same on every rank
        for p in model.parameters():
            p.mul_(0.9).add_(0.01)
    return rec.record(1)


def _dist_worker(rank, world, init_file, state, path, probes):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        model = build_model("digits")
        model.load_state_dict(state)
        metrics = _record_two_epochs(model, path, probes)
        # record() returned on this rank, so the epoch is committed, whichever rank this is.
        assert Run.open(path).epochs == [0, 1]
        assert np.isfinite(metrics["train"]["loss"])
    finally:
        dist.destroy_process_group()


def test_distributed_recording_equals_a_single_process(tmp_path):
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    model = build_model("digits")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    # 13 train probes over 2 ranks: unequal shards (7 + 6).
    probes = _digits_probes(13, 6)
    mp.spawn(
        _dist_worker,
        args=(2, str(tmp_path / "init"), state, str(tmp_path / "dist"), probes),
        nprocs=2,
        join=True,
    )
    _record_two_epochs(model, tmp_path / "single", probes)
    single, dist = Run.open(tmp_path / "single"), Run.open(tmp_path / "dist")
    assert dist.epochs == single.epochs == [0, 1]
    assert [i.name for i in dist.layers] == [i.name for i in single.layers]
    for split in ("train", "test"):
        np.testing.assert_array_equal(dist.labels(split), single.labels(split))
        for epoch in (0, 1):
            for info in single.layers:
                if info.static and epoch:
                    continue
                np.testing.assert_allclose(
                    dist.activations(info.name, epoch, split),
                    single.activations(info.name, epoch, split),
                    **F16,
                    err_msg=f"{info.name} epoch {epoch} {split}",
                )
            np.testing.assert_array_equal(
                dist.predictions(epoch, split), single.predictions(epoch, split)
            )
        for key, value in single.metrics(split).items():
            np.testing.assert_allclose(dist.metrics(split)[key], value, rtol=1e-5)
    for epoch in (0, 1):
        np.testing.assert_array_equal(
            dist.params("fc1", epoch)["weight"], single.params("fc1", epoch)["weight"]
        )
