"""``grandtour align RUN``: precompute a run's transitions and print what was done."""

from __future__ import annotations

import sys
import warnings

from grandtour.align.aligner import align_run
from grandtour.align.reduction import DEFAULT_THRESHOLD
from grandtour.align.transitions import AlignmentWarning


def align_command(args) -> int:
    """``grandtour align RUN [--epochs E ...] [--threshold T] [--force]``."""
    epochs = getattr(args, "epochs", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # printed below, one line per layer
        kwargs = dict(epochs=epochs if epochs else None,
                      threshold=getattr(args, "threshold", DEFAULT_THRESHOLD) or DEFAULT_THRESHOLD,
                      force=bool(getattr(args, "force", False)))
        if getattr(args, "dask", None):
            from grandtour.align.distributed import align_run_dask

            summary = align_run_dask(args.run, args.dask, **kwargs)
        else:
            summary = align_run(args.run, **kwargs)
    aligned, skipped = summary["epochs_aligned"], summary["epochs_skipped"]
    print(f"aligned {len(aligned)} epoch(s) of {args.run}"
          + (f", {len(skipped)} already stored (--force recomputes them)" if skipped else "")
          + f"; threshold {summary['threshold']}")
    for name, red in summary["reductions"].items():
        print(f"  {name}: shown in {red['rank']} of {red['dim']} dims, "
              f"{100 * red['variance_kept']:.1f} % of the pooled variance kept "
              f"(fit on {red['points']:,} rows)")
    for note in summary["fallbacks"].values():
        print(f"  warning: {note}", file=sys.stderr)
    return 0
