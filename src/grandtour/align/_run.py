"""How the alignment reaches a run: open it, and check that an epoch or a split exists.

The one place in ``grandtour.align`` that touches the store's ``Run`` beyond its public
reads, so a change of the store's API is made here once.
"""

from __future__ import annotations

from pathlib import Path

from grandtour.store import Run


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else Run.open(run)


def _check_split(run: Run, split: str) -> None:
    """Raise ``StoreKeyError`` (listing the splits) unless ``split`` is one of ``run``'s."""
    run.check_split(split)


def _check_epoch(run: Run, epoch: int) -> None:
    """Raise ``StoreKeyError`` (listing the completed epochs) unless ``epoch`` is one of them."""
    run.check_epoch(epoch)
