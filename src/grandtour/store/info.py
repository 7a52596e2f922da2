"""``grandtour info RUN``: a readable summary of a run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from grandtour.store.location import is_remote
from grandtour.store.reader import Run
from grandtour.store.validate import describe_epochs


def _disk_size(path: Path) -> int:
    if is_remote(path):
        return int(path.fs.du(path.key))
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover


def format_info(run: Run) -> str:
    """A readable summary of a run: layers, epochs, splits, sizes, final accuracy, records."""
    lines = [f"run       {run.path}  ({_human(_disk_size(run.path))} on disk)",
             f"dataset   {run.dataset}, {len(run.class_names)} classes: "
             f"{', '.join(run.class_names[:12])}{', ...' if len(run.class_names) > 12 else ''}",
             f"splits    {', '.join(f'{s} (N={run.size(s)})' for s in run.splits)}",
             f"epochs    {len(run.epochs)} completed: {describe_epochs(run.epochs)}",
             "layers"]
    width = max(len(layer.name) for layer in run.layers)
    kind_width = max(len(layer.kind) for layer in run.layers)
    for layer in run.layers:
        shape = "x".join(map(str, layer.shape))
        lines.append(f"  {layer.name:<{width}}  {layer.kind:<{kind_width}}  {shape:<12} "
                     f"dim {layer.dim:<6}{'  static' if layer.static else ''}".rstrip())
    if run.epochs:
        last = run.epochs[-1]
        parts = []
        for split in run.splits:
            m = run.metrics(split)
            acc, loss = m["accuracy"][-1], m["loss"][-1]
            parts.append(f"{split} " + ("n/a" if np.isnan(acc) else f"{acc:.4f}")
                         + ("" if np.isnan(loss) else f" (loss {loss:.4f})"))
        lines.append(f"accuracy  at epoch {last}: {', '.join(parts)}")
        bad = {(s, layer): c for s, counts in run.nonfinite(last).items()
               for layer, c in counts.items() if c}
        if bad:
            lines.append("non-finite rows at epoch {}: {}".format(
                last, ", ".join(f"{s}/{layer} {c}" for (s, layer), c in bad.items())))
    late = _late_classes(run)
    if late:
        lines.append(late)
    names = run.adversarial_names()
    if names:
        lines.append("adversarial")
        for name in names:
            rec = run.adversarial(name)
            lines.append(f"  {name}: epoch {rec.epoch}, {run.class_names[rec.source]} -> "
                         f"{run.class_names[rec.target]}, eps {rec.eps:g}, {rec.steps} steps, "
                         f"{rec.example_index.shape[0]} examples of {rec.split}")
    else:
        lines.append("adversarial  none")
    if run.config:
        text = json.dumps(run.config, sort_keys=True)
        lines.append(f"config    {text if len(text) <= 300 else text[:297] + '...'}")
    return "\n".join(lines)


def _late_classes(run: Run) -> str:
    """``late classes  1 (epoch 14), ...`` (grandtour.analysis), or "" if none or not computable."""
    from grandtour.analysis import late_classes
    from grandtour.errors import GrandTourError

    split = "test" if "test" in run.splits else run.splits[0]
    try:
        late = late_classes(run, split)
    except GrandTourError:  # no softmax layer and no per-class metrics
        return ""
    return "late classes  " + ", ".join(f"{name} (epoch {epoch})" for name, epoch in late) if late else ""


def info_command(args) -> int:
    """``grandtour info RUN``."""
    print(format_info(Run.open(args.run)))
    return 0
