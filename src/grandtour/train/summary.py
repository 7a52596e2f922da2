"""The plain-text summary of a training run: accuracy, and when each class was learnt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grandtour.store import Run

#: The pass mark of "a class is learnt", as in the article's discussion of late classes.
LEARNT_ACCURACY = 0.5


def first_learnt_epochs(class_accuracy: np.ndarray, epochs: Sequence[int],
                        threshold: float = LEARNT_ACCURACY) -> list[int | None]:
    """The first epoch >= 1 at which each class's accuracy reached ``threshold``.

    Epoch 0 is left out: an untrained network that predicts one class for everything
    scores 100 % on that class without having learnt anything.

    Parameters
    ----------
    class_accuracy : ndarray of shape (E, C)
    epochs : sequence of int, length E

    Returns
    -------
    list of int or None, length C
        None for a class that never reached it.
    """
    acc = np.asarray(class_accuracy, dtype=np.float64)
    out: list[int | None] = []
    for c in range(acc.shape[1]):
        hits = [e for e, a in zip(epochs, acc[:, c]) if e >= 1 and a >= threshold]
        out.append(hits[0] if hits else None)
    return out


def training_summary(run: Run, *, epoch_seconds: Sequence[float] | None = None,
                     record_seconds: Sequence[float] | None = None) -> str:
    """A plain-text summary of a training run.

    Parameters
    ----------
    run : grandtour.store.Run
    epoch_seconds : sequence of float, optional
        Wall time of the epochs trained in this session (training plus recording).
    record_seconds : sequence of float, optional
        The recording part of each of those.

    Returns
    -------
    str
        Per-split accuracy at the last epoch (on the probe sets), per-class test
        accuracy and the first epoch each class reached 50 %, time per epoch, and where
        the run is.
    """
    epochs = list(run.epochs)
    last = epochs[-1]
    lines = [f"run: {run.path}  ({run.dataset}, epochs {epochs[0]}..{last})"]
    accs = []
    for split in run.splits:
        m = run.metrics(split)
        accs.append(f"{split} {m['accuracy'][-1]:.3f} (loss {m['loss'][-1]:.3f}, "
                    f"{len(run.labels(split))} probes)")
    lines.append(f"accuracy at epoch {last}: " + ", ".join(accs))
    split = "test" if "test" in run.splits else run.splits[-1]
    class_acc = np.asarray(run.metrics(split)["class_accuracy"])
    first = first_learnt_epochs(class_acc, epochs)
    width = max(len(str(n)) for n in run.class_names)
    lines.append(f"per-class {split} accuracy at epoch {last}, and the first epoch it "
                 f"reached {LEARNT_ACCURACY:.0%}:")
    for c, cname in enumerate(run.class_names):
        when = "never" if first[c] is None else f"epoch {first[c]}"
        lines.append(f"  {cname:<{width}}  {class_acc[-1, c]:6.1%}   {when}")
    never = [run.class_names[c] for c, f in enumerate(first) if f is None]
    late = [run.class_names[c] for c, f in enumerate(first) if f is not None and f > 1]
    if late:
        lines.append(f"learnt late (after epoch 1): {', '.join(late)}")
    if never:
        note = f"never reached {LEARNT_ACCURACY:.0%}: {', '.join(never)}"
        if run.config.get("logit_relu"):
            note += (" (with the logit ReLU, a class whose logit is clipped to 0 for every "
                     "example gets no gradient until it revives; more epochs, another seed "
                     "or --no-logit-relu)")
        lines.append(note)
    if epoch_seconds:
        total = float(np.sum(epoch_seconds))
        n = len(epoch_seconds)
        split_time = ""
        if record_seconds is not None and len(record_seconds) == n:
            rec = float(np.sum(record_seconds))
            split_time = f": training {(total - rec) / n:.2f} s, recording {rec / n:.2f} s"
        lines.append(f"time: {total / n:.2f} s per epoch{split_time} "
                     f"({n} epoch{'s' if n != 1 else ''} in {total:.1f} s)")
    lines.append(f"more: grandtour info {run.path}")
    return "\n".join(lines)
