"""How the alignment reaches a run: a :class:`~grandtour.store.Run`, or its path opened."""

from __future__ import annotations

from pathlib import Path

from grandtour.store import Run


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else Run.open(run)
