"""``grandtour demo``: the article's figures, end to end, in about a minute on a laptop CPU.

1. Warm-up (numpy and matplotlib only): the Grand Tour of a tesseract, edges drawn,
   and of a softmax-like cloud of 10-class points on the probability simplex.
2. With PyTorch installed: train the 8x8 digits network (every layer recorded at every
   epoch into ``OUT/run``), run iterative FGSM from digit 8 towards digit 0 on the
   trained weights, and draw, from the run alone:

   - ``softmax-tour.gif``: the Grand Tour of the softmax layer at the last epoch, train
     and test probes side by side, coloured by class;
   - ``training-dynamics.gif``: one fixed tour matrix while the epochs play (linearly
     interpolated between epochs), train and test side by side;
   - ``adversarial-dynamics.gif``: the softmax layer across the FGSM steps, the genuine
     test probes in light colours and the adversarial examples dark;
   - ``class-loss.png``: the test loss of each class across epochs.

The views read only the run store (:mod:`grandtour.store`), so they work on any run.

Why the demo trains without the logit ReLU, at learning rate 0.05
-----------------------------------------------------------------
With the article's ReLU between the last linear layer and the softmax, the digits
network at the article's settings (SGD lr 0.01, momentum 0.5, batch 64: only 19 steps
per epoch on 1198 training images) left 4 to 5 classes dead after 30 epochs in each of
3 seeds (test accuracy 0.40 to 0.49); at lr 0.05, 0.1 or batch 16 still 3 to 5. Without
that ReLU, lr 0.05 learns every class by epoch 7 in each of 3 seeds (test accuracy
0.96), which is what a first look should show. ``grandtour train --dataset digits``
trains with the same settings (:data:`grandtour.defaults.DATASET_TRAINING`);
``--logit-relu --lr 0.01`` gives the article's network and settings.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from grandtour import defaults
from grandtour.errors import GrandTourError
from grandtour.render import plot_class_metric, render_tour
from grandtour.shapes import softmax_simplex, tesseract
from grandtour.tour import GrandTour

__all__ = [
    "DEMO_TRAINING",
    "demo_command",
    "plot_class_loss",
    "polygon_frame",
    "render_adversarial_dynamics",
    "render_softmax_tour",
    "render_training_dynamics",
]

#: Training settings of the demo (see the module docstring for why).
DEMO_TRAINING = defaults.DEMO_TRAINING
#: The adversarial steps of the demo: the article's 8 -> 0.
DEMO_ADVERSARIAL = defaults.DEMO_ADVERSARIAL
#: Third-party packages the training part needs (a module name each).
PIPELINE_PACKAGES = ("torch", "zarr", "sklearn")
#: Our modules the training part needs.
PIPELINE_MODULES = ("grandtour.data", "grandtour.train", "grandtour.adversarial",
                    "grandtour.store")


# --------------------------------------------------------------------------- views of a run


def polygon_frame(n: int) -> np.ndarray:
    r"""The ``n x 2`` frame that puts the ``n`` axes on a regular polygon.

    Column 0 is :math:`\sqrt{2/n}\cos(2\pi k/n)`, column 1 :math:`\sqrt{2/n}\sin(2\pi k/n)`:
    orthonormal for ``n >= 3``. For a softmax layer it shows every vertex of the
    probability simplex (every class) equally far from its neighbours: no two classes
    overlap, which a random first view cannot promise.
    """
    if n < 3:
        raise ValueError(f"a polygon view needs n >= 3 axes, got {n}")
    k = 2.0 * np.pi * np.arange(n) / n
    return np.sqrt(2.0 / n) * np.column_stack([np.cos(k), np.sin(k)])


def _tour(run, layer: str, seed, kw: dict) -> GrandTour:
    """A Grand Tour of ``layer``. A softmax layer starts from the polygon view, and its
    handles are the unit axes (the simplex's vertices) even while every point is still
    near the centre, so the untrained network looks undecided rather than zoomed in."""
    info = run.layer(layer)
    tour = GrandTour(info.dim, seed=seed)
    if info.kind == "softmax" and info.dim >= 3:
        F = polygon_frame(info.dim)
        # Complete the frame to an orthogonal GT whose first two columns are F.
        rest = np.random.default_rng(seed).standard_normal((info.dim, info.dim - 2))
        Q, R = np.linalg.qr(np.column_stack([F, rest]))
        tour.matrix = Q * np.sign(np.diag(R))
        kw.setdefault("handle_scale", 1.0)
    return tour


def _layer(run, layer: str | None) -> str:
    names = [info.name for info in run.layers]
    if layer is None:
        return "softmax" if "softmax" in names else names[-1]
    if layer not in names:
        raise GrandTourError(f"run {run.path} has no layer {layer!r}; layers: {', '.join(names)}")
    return layer


def render_softmax_tour(run, path, *, layer: str | None = None, epoch: int | None = None,
                        frames: int = defaults.FRAMES,
                        seed=defaults.SEED, **kw) -> Path:
    """The Grand Tour of one layer at one epoch, every split side by side, coloured by class.

    Parameters
    ----------
    run : grandtour.store.Run
    path : str or Path
        ``*.gif`` or a directory (see :func:`grandtour.render.render_tour`).
    layer : str, optional
        Default the softmax layer.
    epoch : int, optional
        Default the last completed epoch.
    frames : int
    seed : int
        Seeds the tour.
    **kw
        Passed on to :func:`grandtour.render.render_tour`.
    """
    layer = _layer(run, layer)
    epoch = run.epochs[-1] if epoch is None else int(epoch)
    points = {s: run.activations(layer, epoch, s) for s in run.splits}
    labels = {s: run.labels(s) for s in run.splits}
    tour = _tour(run, layer, seed, kw)
    kw.setdefault("title", f"{layer} layer, epoch {epoch}")
    return render_tour(points, path, tour=tour, labels=labels, class_names=run.class_names,
                       frames=frames, **kw)


def render_training_dynamics(run, path, *, layer: str | None = None,
                             frames: int = defaults.FRAMES, seed=defaults.SEED, **kw) -> Path:
    """One fixed tour matrix while the epochs play (the article's training dynamics).

    Each split is a panel; the layer's activations at consecutive epochs are linearly
    interpolated, so a point moves only when its activation changes.
    """
    layer = _layer(run, layer)
    epochs = list(run.epochs)
    points = {s: np.stack([run.activations(layer, e, s) for e in epochs]) for s in run.splits}
    labels = {s: run.labels(s) for s in run.splits}
    tour = _tour(run, layer, seed, kw)
    kw.setdefault("title", f"training dynamics, {layer} layer")
    return render_tour(points, path, tour=tour, dt=0.0, labels=labels,
                       class_names=run.class_names, frames=frames, keyframe_values=epochs,
                       keyframe_label="epoch", **kw)


def render_adversarial_dynamics(run, path, *, name: str = "default", layer: str | None = None,
                                frames: int = defaults.FRAMES, seed=defaults.SEED,
                                **kw) -> Path:
    """The adversarial examples' path across FGSM steps, with one fixed tour matrix.

    The genuine probes of the attacked split (at the attacked epoch) are drawn light,
    the adversarial examples dark and on top, coloured by their true class.
    """
    layer = _layer(run, layer)
    adv = run.adversarial(name)
    genuine = run.activations(layer, adv.epoch, adv.split)
    labels = run.labels(adv.split)
    moving = adv.activations(layer)  # (S+1, M, dim), step 0 the genuine examples
    S1 = moving.shape[0]
    points = np.concatenate([np.broadcast_to(genuine, (S1, *genuine.shape)), moving], axis=1)
    all_labels = np.concatenate([labels, labels[adv.example_index]])
    highlight = np.concatenate([np.zeros(len(labels), bool), np.ones(moving.shape[1], bool)])
    tour = _tour(run, layer, seed, kw)
    names = run.class_names
    kw.setdefault("title", f"FGSM {names[adv.source]} \u2192 {names[adv.target]}, {layer} layer "
                           f"({adv.split}, epoch {adv.epoch})")
    return render_tour(points, path, tour=tour, dt=0.0, labels=all_labels, highlight=highlight,
                       class_names=names, frames=frames, keyframe_values=np.arange(S1),
                       keyframe_label="step", **kw)


def plot_class_loss(run, path, *, split: str = "test") -> Path:
    """Per-class loss of ``split`` across epochs, one line per class (a static PNG)."""
    m = run.metrics(split)
    return plot_class_metric(m["class_loss"], path, epochs=run.epochs,
                             class_names=run.class_names, ylabel=f"{split} loss (cross-entropy)",
                             title=f"per-class {split} loss", log=True)


# --------------------------------------------------------------------------- the command


def _missing_pipeline() -> list[str]:
    """Names of the packages or modules the training part lacks (empty: all there)."""
    missing = []
    for name in PIPELINE_PACKAGES + PIPELINE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise GrandTourError(f"--{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _Clock:
    """Prints each output as it is written, with the time it took."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.outputs: list[tuple[str, Path]] = []

    def done(self, what: str, path: Path) -> None:
        now = time.perf_counter()
        print(f"  {what:<24} {path}  ({now - self.last:.1f} s)", flush=True)
        self.outputs.append((what, path))
        self.last = now

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"  {what} ({now - self.last:.1f} s)", flush=True)
        self.last = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def demo_command(args) -> int:
    """``grandtour demo``: warm-up tours, then train, attack and draw the digits network.

    ``args`` has ``out``, ``epochs``, ``seed``, ``frames``, ``overwrite`` and, for the
    viewer at the end, ``serve``, ``port`` and ``no_browser``. Writes only
    inside ``args.out``; the run goes to ``args.out/run`` and is replaced only with
    ``overwrite``.
    """
    out = Path(args.out)
    epochs = _check_int("epochs", args.epochs, 1)
    frames = _check_int("frames", args.frames, 1)
    seed = _check_int("seed", args.seed, 0)
    if out.exists() and not out.is_dir():
        raise GrandTourError(f"--out {out} is a file; give a directory for the demo's outputs")
    missing = _missing_pipeline()
    run_dir = out / "run"
    occupied = run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir()))
    if not missing and occupied and not args.overwrite:
        raise GrandTourError(f"{run_dir} already exists; pass --overwrite to replace it, "
                             "or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    digits = [str(d) for d in range(10)]

    print(f"grandtour demo: warm-up tours -> {out}", flush=True)
    V, E = tesseract()
    clock.done("tesseract", render_tour(
        V, out / "tesseract.gif", edges=E, frames=frames, seed=seed,
        title="the Grand Tour of a tesseract (4-cube)"))
    P, y = softmax_simplex(n_classes=10, n_points=1000, seed=seed)
    clock.done("softmax-like cloud", render_tour(
        P, out / "softmax-cloud.gif", labels=y, class_names=digits, frames=frames, seed=seed,
        title="a softmax layer's points (synthetic)"))

    if missing:
        ours = [m for m in missing if m.startswith("grandtour.")]
        theirs = [m for m in missing if not m.startswith("grandtour.")]
        print(f"\nSkipped training, the adversarial steps and the views of a run: "
              f"they need {', '.join(missing)}.")
        if theirs:
            print("Install the extras: pip install 'grandtour[all]' (pin PyTorch to the build "
                  "you want, e.g. torch==2.13.0 for the CPU), then run `grandtour demo` again.")
        if ours:
            print(f"This installation of grandtour lacks {', '.join(ours)}: reinstall grandtour.")
        return 0

    from grandtour.adversarial import run_adversarial
    from grandtour.data import load_dataset
    from grandtour.store import Run
    from grandtour.train import train

    print(f"\ngrandtour demo: training the digits network for {epochs} epochs "
          f"(seed {seed}) -> {run_dir}", flush=True)
    dataset = load_dataset("digits")
    train(dataset, run_dir, epochs=epochs, seed=seed, overwrite=bool(args.overwrite),
          **DEMO_TRAINING)
    clock.lap("trained and recorded")
    attack = run_adversarial(run_dir, **DEMO_ADVERSARIAL)
    clock.lap(f"FGSM {DEMO_ADVERSARIAL['source']} -> {DEMO_ADVERSARIAL['target']}, "
              f"{DEMO_ADVERSARIAL['steps']} steps")
    # The viewer's layer dynamics read precomputed transitions: align the last epoch now
    # (the server aligns any other epoch on demand; `grandtour align` does them all).
    from grandtour.align import align_run

    run = Run.open(run_dir)
    align_run(run_dir, epochs=[run.epochs[-1]], progress=False)
    clock.lap(f"aligned the layers at epoch {run.epochs[-1]}")
    clock.done("run", run_dir)

    print("\ngrandtour demo: drawing from the run", flush=True)
    clock.done("softmax layer tour", render_softmax_tour(
        run, out / "softmax-tour.gif", frames=frames, seed=seed))
    clock.done("training dynamics", render_training_dynamics(
        run, out / "training-dynamics.gif", frames=frames, seed=seed))
    clock.done("adversarial dynamics", render_adversarial_dynamics(
        run, out / "adversarial-dynamics.gif", frames=frames, seed=seed))
    clock.done("per-class test loss", plot_class_loss(run, out / "class-loss.png"))

    print(_summary(run, attack, clock), flush=True)
    if getattr(args, "serve", False):
        from grandtour.server import serve

        print("\ngrandtour demo: opening the viewer (Ctrl-C to stop)", flush=True)
        serve([run_dir], host=defaults.HOST, port=getattr(args, "port", None),
              open_browser=not getattr(args, "no_browser", False), block=True)
    return 0


def _summary(run, attack, clock: _Clock) -> str:
    test = "test" if "test" in run.splits else run.splits[-1]
    m = run.metrics(test)
    names = run.class_names
    src, tgt = names[attack.source], names[attack.target]
    median = attack.quantiles().get(0.5)
    lines = [
        "",
        f"grandtour demo: done in {clock.total:.1f} s",
        f"  {test} accuracy at epoch {run.epochs[-1]}: {m['accuracy'][-1]:.3f}",
        f"  FGSM {src} -> {tgt}: {attack.reached} of {len(attack.first_step)} examples "
        f"classified {tgt} within {attack.steps} steps"
        + (f" (median first step {median:g})" if median is not None else ""),
        "  outputs:",
    ]
    lines += [f"    {what:<24} {path}" for what, path in clock.outputs]
    lines.append(f"  more: grandtour info {run.path}")
    return "\n".join(lines)
