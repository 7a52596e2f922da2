"""Adversarial dynamics: iterative targeted FGSM, every step seen in every layer.

The article's third use case. Examples of a ``source`` class (the test probes of a
trained run) are pushed step by step toward a ``target`` class with the iterative,
targeted fast gradient sign method,

.. math::

    x_{k+1} = \\operatorname{clip}_{[lo, hi]}\\big(x_k - \\epsilon\\,
              \\operatorname{sign} \\nabla_x \\mathrm{CE}(f(x_k), t)\\big),

and every step's activations of every layer are recorded into the run
(:meth:`grandtour.store.RunWriter.write_adversarial`), so the viewer can play the
steps the way it plays epochs. The activations come from :class:`grandtour.capture.Capture`,
the capture the :class:`~grandtour.record.Recorder` uses: a step's layer means what the
recorded epoch's layer of that name means (a shared module's second call is ``name-2``),
and step 0 is the recorded epoch's activations of those examples (to the last float32 bit:
see :mod:`grandtour.capture`, "Batches and bits").

Units
-----
The network sees normalised inputs ``(p - mean_c) / std_c`` of pixels ``p`` in
``[0, 1]`` (:func:`grandtour.models.normalize`), and the step is taken in that
model-input space. ``eps`` is given in pixel units (a fraction of the 0..255 range, as
in the FGSM literature), so :func:`run_adversarial` converts it per channel,
``eps_c = eps / std_c``, and clips to the normalised image of the valid pixel range,
``lo_c = -mean_c / std_c``, ``hi_c = (1 - mean_c) / std_c``. Every step therefore moves
each pixel by at most ``eps`` and keeps it in ``[0, 1]``. The images stored for the
viewer are those inputs mapped back to pixels and rounded to uint8; the activations are
of the unrounded inputs.

Example
-------
>>> summary = run_adversarial("runs/digits", source=8, target=0, steps=100)  # doctest: +SKIP
>>> print(summary)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grandtour.capture import Capture, UnknownLayerError, evaluating, model_device
from grandtour.data import load_dataset
from grandtour.defaults import (
    DEVICE,
    FGSM_EPS,
    FGSM_SOURCE,
    FGSM_STEPS,
    FGSM_TARGET,
    FORWARD_BATCH,
)
from grandtour.errors import GrandTourError, StoreError
from grandtour.models import INPUT_SHAPES, MEAN_STD, build_model, normalize
from grandtour.store import Run, RunWriter
from grandtour.train import load_weights, resolve_device

__all__ = [
    "AdversarialSummary",
    "adversarial_command",
    "class_index",
    "fgsm",
    "fgsm_steps",
    "layer_activations",
    "pixel_range",
    "run_adversarial",
]


# ------------------------------------------------------------------------------ FGSM


def fgsm_steps(model: nn.Module, x: torch.Tensor, target, *, eps, steps: int, lo,
               hi) -> torch.Tensor:
    """Iterative targeted FGSM, every step returned.

    ``x_{k+1} = clip(x_k - eps * sign(grad_x CE(model(x_k), target)), lo, hi)``: a step
    against the gradient of the cross-entropy toward ``target`` lowers that loss.

    Parameters
    ----------
    model : nn.Module
        Maps inputs ``(M, ...)`` to logits ``(M, C)``. Run in eval mode; its own
        train/eval flags and the global random states are restored afterwards
        (:func:`grandtour.capture.evaluating`), and its parameters get no gradient.
    x : Tensor of shape (M, ...)
        The genuine inputs, in model-input space, within ``[lo, hi]``.
    target : int or Tensor of shape (M,)
        Class to push toward.
    eps : float or Tensor broadcastable to one input's shape, e.g. (C, 1, 1)
        Step size in model-input units (per channel if a tensor), >= 0.
    steps : int
        Number of steps S >= 0.
    lo, hi : float or Tensor broadcastable to one input's shape
        The valid range of the inputs in model-input units.

    Returns
    -------
    Tensor of shape (S+1, M, ...)
        Step 0 is ``x`` itself; ``|x_{k+1} - x_k| <= eps`` elementwise and every step
        lies in ``[lo, hi]``.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise GrandTourError(f"steps must be an integer >= 0, got {steps!r}")
    x = x.detach()
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if not torch.isfinite(eps_t).all() or (eps_t < 0).any():
        raise GrandTourError(f"eps must be finite and >= 0, got {eps!r}")
    lo_t = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi_t = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    if isinstance(target, torch.Tensor):
        target_t = target.to(device=x.device, dtype=torch.long).expand(x.shape[0])
    else:
        target_t = torch.full((x.shape[0],), int(target), dtype=torch.long, device=x.device)
    out = torch.empty((steps + 1, *x.shape), dtype=x.dtype, device=x.device)
    out[0] = x
    with evaluating(model, grad=True):
        xk = x
        for k in range(steps):
            xk = xk.detach().requires_grad_(True)
            # Summed, not averaged: each example's gradient is its own either way, and a
            # sum keeps tiny per-example gradients away from underflow.
            loss = F.cross_entropy(model(xk), target_t, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xk)
            xk = torch.minimum(torch.maximum(xk.detach() - eps_t * grad.sign(), lo_t), hi_t)
            out[k + 1] = xk
    return out


def fgsm(model: nn.Module, x: torch.Tensor, target, *, eps, steps: int, clamp) -> torch.Tensor:
    """:func:`fgsm_steps` with the valid range given as ``clamp=(lo, hi)``."""
    lo, hi = clamp
    return fgsm_steps(model, x, target, eps=eps, steps=steps, lo=lo, hi=hi)


def pixel_range(dataset: str, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The valid pixel range and one pixel unit, in ``dataset``'s model-input space.

    Returns
    -------
    lo, hi, unit : Tensor of shape (C, 1, 1)
        ``lo = -mean / std`` and ``hi = (1 - mean) / std`` are the images of pixel
        values 0 and 1 (0 and 255 as uint8); ``unit = 1 / std`` is how far a change of
        1 in [0, 1] pixel units moves a normalised input.
    """
    mean, std = MEAN_STD[dataset]
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1)
    return -mean_t / std_t, (1 - mean_t) / std_t, 1 / std_t


# -------------------------------------------------------------------- activations


def _run_capture(model: nn.Module, example: torch.Tensor, layers: Sequence[str]) -> Capture:
    """The capture of a run's layers; a model without them is not the run's network."""
    try:
        return Capture(model, example, list(layers))
    except UnknownLayerError as err:
        raise StoreError(
            f"the run lists layer(s) its network has not ({err}); the run was recorded "
            "from another network"
        ) from None


def layer_activations(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str], *,
                      batch_size: int = FORWARD_BATCH,
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each named layer's output on ``inputs``, flattened, as a Recorder records it.

    A thin wrapper of :class:`grandtour.capture.Capture` (traced on the first inputs)
    for a run's layer names: ``"input"`` is the inputs themselves, ``"softmax"`` the
    softmax of the model's output, any other name a leaf module's call (``"act"`` the
    first call of a shared ``act``, ``"act-2"`` its second). Computed under
    ``torch.no_grad()`` in eval mode; the model's flags and the random states are
    restored.

    Parameters
    ----------
    model : nn.Module
        Maps inputs ``(N, ...)`` to logits ``(N, C)``.
    inputs : Tensor of shape (N, ...), N >= 1
    layers : sequence of str
    batch_size : int, default :data:`grandtour.defaults.FORWARD_BATCH`

    Returns
    -------
    activations : dict of str -> ndarray of shape (N, dim), float32
        In the order of ``layers``.
    logits : ndarray of shape (N, C), float32

    Raises
    ------
    StoreError
        A name that is not a layer of ``model``: the run is of another network.
    """
    acts, logits = _run_capture(model, inputs, layers).run(inputs, batch_size)
    return {name: acts[name] for name in layers}, logits


# ------------------------------------------------------------------------- the run


def class_index(value, class_names: Sequence[str], what: str = "class") -> int:
    """A class given by name (``"8"``, ``"Bag"``, case-insensitive) or by index (``8``)."""
    names = [str(c) for c in class_names]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in names:
            return names.index(text)
        lowered = [c.lower() for c in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
            return int(text)
    listing = ", ".join(f"{i}={c}" for i, c in enumerate(names))
    raise GrandTourError(f"unknown {what} {value!r}: give a class index or name ({listing})")


@dataclass
class AdversarialSummary:
    """What an adversarial run did: which examples reached the target, and when.

    Attributes
    ----------
    first_step : ndarray of shape (M,), int
        First step at which each example is classified as the target; -1 if never.
    target_loss : ndarray of shape (S+1,)
        Mean cross-entropy toward the target at each step.
    predictions : ndarray of shape (S+1, M), int
    """

    path: Path
    name: str
    epoch: int
    source: int
    target: int
    class_names: list[str]
    eps: float
    steps: int
    example_index: np.ndarray
    first_step: np.ndarray
    target_loss: np.ndarray
    predictions: np.ndarray = field(repr=False)

    @property
    def reached(self) -> int:
        """How many examples were classified as the target at some step."""
        return int((self.first_step >= 0).sum())

    def quantiles(self, qs: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
                  ) -> dict[float, float]:
        """Quantiles of the first step, over the examples that reached the target."""
        hits = self.first_step[self.first_step >= 0]
        if hits.size == 0:
            return {}
        return {q: float(np.quantile(hits, q)) for q in qs}

    def histogram(self, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Counts of first steps in at most ``bins`` equal ranges of 0..S; (counts, edges)."""
        hits = self.first_step[self.first_step >= 0]
        return np.histogram(hits, bins=min(bins, self.steps + 1), range=(0, self.steps + 1))

    def __str__(self) -> str:
        src, tgt = self.class_names[self.source], self.class_names[self.target]
        m = len(self.first_step)
        genuine = int((self.predictions[0] == self.source).sum())
        lines = [
            f"adversarial {self.name!r} of {self.path} (weights of epoch {self.epoch}): "
            f"{src} -> {tgt}, {self.steps} steps of eps {self.eps:g}",
            f"{m} test probes of class {src}; {genuine} classified {src} before any step",
            f"reached {tgt}: {self.reached} of {m} ({self.reached / m:.0%})",
        ]
        q = self.quantiles()
        if q:
            lines.append("first step classified as the target: "
                         + ", ".join(f"{'min' if k == 0 else 'max' if k == 1 else f'{k:.0%}'} "
                                     f"{v:g}" for k, v in q.items()))
            counts, edges = self.histogram()
            peak = max(int(counts.max()), 1)
            for c, a, b in zip(counts, edges[:-1], edges[1:]):
                lo_step, hi_step = math.ceil(a), math.ceil(b) - 1
                if lo_step > hi_step:
                    continue
                bar = "#" * round(30 * int(c) / peak)
                lines.append(f"  steps {lo_step:>4}-{hi_step:<4} {int(c):>5} {bar}")
        lines.append(f"mean loss toward {tgt}: {self.target_loss[0]:.4g} at step 0, "
                     f"{self.target_loss[-1]:.4g} at step {self.steps}")
        return "\n".join(lines)


def _probe_images(run, split: str, data_dir) -> np.ndarray:
    images = run.images(split)
    if images is not None:
        return np.asarray(images)
    indices = run.indices(split)
    if indices is None:
        raise StoreError(
            f"run {run.path} stores neither the {split} probe images nor their indices in the "
            "dataset, so the genuine examples cannot be rebuilt"
        )
    dataset = load_dataset(run.dataset, data_dir)
    x = dataset.x_test if split == "test" else dataset.x_train
    return x[np.asarray(indices)]


def run_adversarial(run_path, *, source=FGSM_SOURCE, target=FGSM_TARGET,
                    steps: int = FGSM_STEPS, eps: float = FGSM_EPS, epoch: int | None = None,
                    device=DEVICE, name: str = "default", split: str = "test", data_dir=None,
                    model: nn.Module | None = None) -> AdversarialSummary:
    """Iterative targeted FGSM on a trained run's probes, every step recorded into the run.

    Parameters
    ----------
    run_path : str or Path
        A run written by :func:`grandtour.train.train`. With ``model``: any run that a
        :class:`~grandtour.record.Recorder` wrote from the normalised images of one of
        grandtour's datasets (:func:`grandtour.models.normalize`), storing the probe
        images or their indices.
    source, target : int or str, default 8 and 0
        Class perturbed and class pushed toward, by index or name
        (:data:`~grandtour.defaults.FGSM_SOURCE`, :data:`~grandtour.defaults.FGSM_TARGET`).
    steps : int, default 100
        FGSM steps S >= 1.
    eps : float, default 0.01
        L-infinity step in [0, 1] pixel units (see the module docstring).
    epoch : int, optional
        Epoch of the weights attacked; default the last.
    device : str, default :data:`grandtour.defaults.DEVICE`
        Where the rebuilt network runs (ignored when ``model`` is given).
    name : str, default "default"
        Name of the record in the run (replaced if it exists).
    split : str, default "test"
        Probe split whose examples of class ``source`` are perturbed.
    data_dir : path, optional
        Where the dataset is, needed only if the run does not store its probe images.
    model : nn.Module, optional
        The network to attack, holding the weights of ``epoch`` (it is neither moved nor
        loaded); default the run's grandtour network, rebuilt with those weights.

    Returns
    -------
    AdversarialSummary
        Which examples reached the target and at which step; ``print`` it.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise GrandTourError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or not 0 < eps <= 1:
        raise GrandTourError(f"eps must be in (0, 1] (pixel units), got {eps!r}")
    dev = resolve_device(device)
    run = Run.open(run_path)
    dataset = run.config.get("dataset", run.dataset)
    if dataset not in INPUT_SHAPES:
        raise GrandTourError(
            f"run {run.path} is of dataset {dataset!r}, whose network grandtour does not "
            f"know; adversarial steps need a run from `grandtour train` ({', '.join(INPUT_SHAPES)})"
        )
    if not run.epochs:
        raise StoreError(f"run {run.path} has no completed epoch yet")
    epoch = run.epochs[-1] if epoch is None else epoch
    if epoch not in run.epochs:
        raise GrandTourError(f"run {run.path} has no epoch {epoch!r}; its epochs are "
                             f"{run.epochs[0]}..{run.epochs[-1]}")
    src = class_index(source, run.class_names, "source class")
    tgt = class_index(target, run.class_names, "target class")
    if src == tgt:
        raise GrandTourError(f"source and target are the same class ({run.class_names[src]})")
    if split not in run.splits:
        raise GrandTourError(f"run {run.path} has no {split!r} probes; splits: {run.splits}")
    rows = np.flatnonzero(run.labels(split) == src)
    if rows.size == 0:
        raise GrandTourError(f"the {split} probes of {run.path} hold no example of class "
                             f"{run.class_names[src]}")

    images = _probe_images(run, split, data_dir)[rows]
    if model is None:
        model = build_model(dataset, logit_relu=bool(run.config.get("logit_relu", True)))
        load_weights(model, run, epoch)
        model.to(dev)
    else:
        dev = model_device(model)
    lo, hi, unit = pixel_range(dataset, dev)

    x0 = normalize(images, dataset).to(dev)
    capture = _run_capture(model, x0, [layer.name for layer in run.layers])
    ours = [(i.name, tuple(i.shape)) for i in capture.infos]
    theirs = [(i.name, tuple(i.shape)) for i in run.layers]
    if ours != theirs:
        raise StoreError(
            f"run {run.path} records layers {theirs}, but the network attacked gives {ours}: "
            "the run was recorded from another network"
        )
    xs = fgsm_steps(model, x0, tgt, eps=eps * unit, steps=steps, lo=lo, hi=hi)
    s1, m = xs.shape[:2]
    flat, logits = capture.run(xs.reshape(s1 * m, *xs.shape[2:]))
    activations = {k: v.reshape(s1, m, -1) for k, v in flat.items()}
    logits_t = torch.from_numpy(logits)
    predictions = logits.argmax(axis=1).reshape(s1, m)
    target_loss = F.cross_entropy(
        logits_t, torch.full((s1 * m,), tgt, dtype=torch.long), reduction="none"
    ).reshape(s1, m).mean(dim=1).double().numpy()
    pixels = ((xs - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    pixels[0] = images  # the genuine images exactly, not a float round trip

    with RunWriter.open(run_path) as writer:  # the run's writer lock, released at once
        writer.write_adversarial(name, epoch=epoch, source=src, target=tgt, eps=float(eps),
                                 split=split, example_index=rows, activations=activations,
                                 images=pixels, predictions=predictions, target_loss=target_loss)
    hit = predictions == tgt
    first = np.where(hit.any(axis=0), hit.argmax(axis=0), -1)
    return AdversarialSummary(
        path=Path(run.path), name=name, epoch=epoch, source=src, target=tgt,
        class_names=list(run.class_names), eps=float(eps), steps=steps, example_index=rows,
        first_step=first, target_loss=target_loss, predictions=predictions,
    )


def adversarial_command(args) -> int:
    """``grandtour adversarial RUN``: run the steps, record them, print the summary.

    ``args`` has ``run``, ``data_dir``, ``source``, ``target``, ``steps``, ``eps``,
    ``epoch`` and ``device``.
    """
    summary = run_adversarial(args.run, source=args.source, target=args.target,
                              steps=args.steps, eps=args.eps, epoch=args.epoch,
                              device=args.device, data_dir=args.data_dir)
    print(summary)
    return 0
