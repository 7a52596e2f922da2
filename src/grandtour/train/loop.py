"""The training loop: SGD on the cross-entropy, every layer recorded at every epoch."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from grandtour import defaults
from grandtour.errors import GrandTourError
from grandtour.models import build_model, normalize
from grandtour.record import Recorder, select_probes
from grandtour.store import Run, RunWriter
from grandtour.store.location import as_path
from grandtour.train.settings import _check_dataset, _check_settings, resolve_device
from grandtour.train.state import (
    _capture_state,
    _check_resume,
    _load_state,
    _restore,
    _save_states,
)

#: A callback: ``callback(epoch, logs) -> True`` stops training after that epoch.
Callback = Callable[[int, dict], "bool | None"]


def _cpu_threads(dataset: str) -> int:
    """Intra-op threads for training ``dataset``'s network on the CPU.

    A digits batch is about a millisecond of work, less than it costs to coordinate
    threads: one thread is as fast on an idle 2-core machine, and on a busy one two
    threads that spin-wait for each other were measured 16x slower (10 epochs: 1.4 s
    with one thread, 22 s with two). Larger networks get PyTorch's default, capped at
    the cores this process may run on (inside a container torch may count the host's).
    """
    if dataset == "digits":
        return 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), allowed))


@contextlib.contextmanager
def _torch_settings(device: torch.device, dataset: str):
    """Threads, determinism and a private global RNG for training; restored afterwards."""
    threads = torch.get_num_threads()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        torch.set_num_threads(_cpu_threads(dataset))
        if device.type == "cuda":
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def _make_progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal (CI logs).
    return tqdm(total=total, initial=initial, desc=desc, unit="epoch",
                disable=None if enabled else True, dynamic_ncols=True)


def _train_epoch(model, optimizer, x, y, *, batch_size, generator, bar,
                 epoch) -> tuple[float, float]:
    """One pass over the shuffled training set; returns (mean loss, accuracy) over it.

    The dataset stays one tensor on the device and batches are index slices: no
    DataLoader, no per-example Python.
    """
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator).to(x.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    n_batches = (n + batch_size - 1) // batch_size
    # Within an epoch only when epochs are long, ~20 times: .item() syncs a GPU.
    every = n_batches // 20 if n_batches >= 100 else 0
    for b, start in enumerate(range(0, n, batch_size)):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        if every and not bar.disable and (b + 1) % every == 0:
            seen = min(start + batch_size, n)
            bar.set_postfix({"epoch": epoch, "batch": f"{b + 1}/{n_batches}",
                             "loss": f"{loss_sum.item() / seen:.4f}",
                             "acc": f"{correct.item() / seen:.3f}"})
    mean_loss = loss_sum.item() / n
    if not math.isfinite(mean_loss):
        raise GrandTourError(
            f"training diverged at epoch {epoch}: the mean loss is {mean_loss}; lower the "
            f"learning rate (--lr, now {optimizer.param_groups[0]['lr']})"
        )
    return mean_loss, correct.item() / n


def train(
    dataset,
    out: str | Path,
    *,
    epochs: int,
    probe_size: int = defaults.PROBE_SIZE,
    seed: int = defaults.SEED,
    device: str | torch.device = defaults.DEVICE,
    batch_size: int = defaults.BATCH_SIZE,
    lr: float = defaults.LR,
    momentum: float = defaults.MOMENTUM,
    logit_relu: bool = defaults.LOGIT_RELU,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
) -> Run:
    """Train the article's network on ``dataset``, recording every layer into a run.

    Parameters
    ----------
    dataset : grandtour.data.Dataset
        ``x_train``, ``x_test`` of shape (N, C, H, W), uint8; its ``name`` chooses the
        network (:func:`grandtour.models.build_model`) and the normalisation.
    out : str or Path
        The run directory to create (or to continue, with ``resume``), or a run's URL
        (``s3://bucket/runs/x``; docs/distributed.md); the training state is kept there too.
    epochs : int
        Total epochs, >= 1. With ``resume``, training continues up to this many.
    probe_size : int, default 1000
        Probe examples per split, class-balanced (all of a split that is smaller).
    seed : int, default 0
        Seeds the initial weights, the shuffling and the probe choice.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    batch_size, lr, momentum : default 64, 0.01, 0.5
        SGD with momentum, as in the classic PyTorch MNIST example (see the module
        docstring for why they matter here).
    logit_relu : bool, default True
        Keep the article's ReLU between the last linear layer and the softmax.
    resume : bool
        Continue the run at ``out`` from its last committed epoch. Its settings
        (dataset, seed, logit_relu, batch_size, lr, momentum, probe_size) must equal the
        ones given.
    overwrite : bool
        Replace an existing run at ``out``.
    progress : bool, default True
        Show a tqdm progress bar (when stderr is a terminal).
    callbacks : iterable of callables
        Each is called as ``callback(epoch, logs)`` after every recorded epoch, epoch 0
        included, with ``logs`` holding ``epoch``, ``loss`` and ``accuracy`` (running
        means over the epoch's training batches, None at epoch 0), ``metrics`` (the
        probe metrics :meth:`Recorder.record` returned), ``seconds`` (training plus
        recording time of the epoch), ``record_seconds`` (the recording alone),
        ``model`` and ``path``. A callback returning True
        stops training after that epoch; the run can be resumed later.

    Returns
    -------
    grandtour.store.Run
        The run, opened for reading.

    Raises
    ------
    GrandTourError
        Bad settings, an unknown or unavailable device, a run to resume whose settings
        or state disagree (StoreError), or a diverging loss.
    """
    _check_settings(epochs, probe_size, batch_size, lr, momentum, seed)
    if resume and overwrite:
        raise GrandTourError(
            "resume and overwrite contradict each other: resume continues the run, "
            "overwrite replaces it; choose one"
        )
    dev = resolve_device(device)
    _check_dataset(dataset)
    callbacks = list(callbacks)
    out = as_path(out)  # a directory, or a run at a URL (s3://bucket/runs/x): the store's location
    name = dataset.name
    config = {
        "dataset": name,
        "data_source": str(dataset.source),
        "n_train": int(len(dataset.x_train)),
        "n_test": int(len(dataset.x_test)),
        "logit_relu": bool(logit_relu),
        "seed": int(seed),
        "optimizer": "sgd",
        "lr": float(lr),
        "momentum": float(momentum),
        "batch_size": int(batch_size),
        "loss": "cross_entropy",
        "epochs": int(epochs),
        "probe_size": int(probe_size),
        "trainer": "grandtour.train",
        "torch": torch.__version__,
    }

    probes, images, indices = {}, {}, {}
    for split in ("train", "test"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        idx = select_probes(y, probe_size, seed)
        images[split], indices[split] = x[idx], idx
        probes[split] = (normalize(x[idx], name), y[idx])

    writer, last, state = None, None, None
    if resume:
        writer = RunWriter.open(out)
        _check_resume(out, writer.config, config, indices)
        if writer.epochs:
            last = max(writer.epochs)
            if last >= epochs:
                return Run.open(out)
            state = _load_state(out, last)
        if writer.config.get("epochs") != epochs:
            writer.update_config({"epochs": int(epochs)})

    with _torch_settings(dev, name):
        torch.manual_seed(seed)
        model = build_model(name, logit_relu=logit_relu).to(dev)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        # On the CPU whatever the device: the same data order on a GPU.
        generator = torch.Generator().manual_seed(seed)
        if state is not None:
            _restore(out, model, optimizer, generator, state, last, dev)

        recorder = Recorder(
            model, writer if writer is not None else out, probes=probes,
            class_names=dataset.class_names, dataset=name, images=images,
            probe_indices=indices, config=config, device=dev, overwrite=overwrite,
        )
        x_train = normalize(dataset.x_train, name).to(dev)
        y_train = torch.as_tensor(dataset.y_train, dtype=torch.long).to(dev)

        states: dict[int, dict] = {}
        bar = _make_progress(epochs, 0 if last is None else last, f"train {name}", progress)
        try:
            if last is None:
                t0 = time.perf_counter()
                states[0] = _capture_state(0, model, optimizer, generator, dev)
                _save_states(out, states)
                metrics = recorder.record(0)
                t = time.perf_counter() - t0
                stop = _after_epoch(0, None, None, metrics, (t, t), model, out, bar, callbacks)
                last = 0
            else:
                states[last] = state
                stop = False
            epoch = last + 1
            while not stop and epoch <= epochs:
                t0 = time.perf_counter()
                loss, accuracy = _train_epoch(model, optimizer, x_train, y_train,
                                              batch_size=batch_size, generator=generator,
                                              bar=bar, epoch=epoch)
                # The state first, then the store's commit: the file then always holds
                # the state of the store's last epoch (it keeps the previous one too).
                states = {e: s for e, s in states.items() if e == epoch - 1}
                states[epoch] = _capture_state(epoch, model, optimizer, generator, dev)
                _save_states(out, states)
                t1 = time.perf_counter()
                metrics = recorder.record(epoch)
                t2 = time.perf_counter()
                stop = _after_epoch(epoch, loss, accuracy, metrics, (t2 - t0, t2 - t1),
                                    model, out, bar, callbacks)
                bar.update(1)
                epoch += 1
        finally:
            bar.close()
            if recorder.writer is not None:  # the writer lock (a lease on object storage) goes now
                recorder.writer.close()
    return Run.open(out)


def _after_epoch(epoch, loss, accuracy, metrics, times, model, out, bar, callbacks) -> bool:
    test = metrics.get("test") or next(iter(metrics.values()))
    postfix = {"epoch": epoch}
    if loss is not None:
        postfix.update(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}")
    postfix["test_probe_acc"] = f"{test['accuracy']:.3f}"
    # A dict keeps this order (keywords would be sorted); the next update draws it.
    bar.set_postfix(postfix, refresh=epoch == 0)
    logs = {"epoch": epoch, "loss": loss, "accuracy": accuracy, "metrics": metrics,
            "seconds": times[0], "record_seconds": times[1], "model": model, "path": out}
    stop = False
    for callback in callbacks:
        stop = bool(callback(epoch, logs)) or stop
    return stop
