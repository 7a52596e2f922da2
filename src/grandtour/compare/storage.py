"""``RUN/comparisons/``: the embeddings ``grandtour compare`` made, kept in the run.

The comparisons are a derived group of the run (:class:`grandtour.store.DerivedGroup`):
the store owns how it is written (arrays first, its record replaced atomically last)
and read; this module owns what the record and the arrays mean (``docs/compare.md``).

Record::

    {"grandtour_comparisons_version": 1,
     "embeddings": {"<split>/<layer>/<method>": {
         "settings": {...},          # seed and the method's parameters
         "joint": [e, ...] | null,   # the epochs a joint method (dtsne) embedded together
         "epochs": {"<e>": {"token": run.epoch_token(e), "seconds": s}}}},
     "hybrid": {"<split>/<layer>/umap<k>": {"settings": {...}, "epochs": {...}}}}

Arrays: ``embeddings/<split>/<layer>/<method>/<epoch>`` (N, 2) float32 and
``hybrid/<split>/<layer>/umap<k>/<epoch>`` (N, k) float32. An epoch is stored once its
record entry is committed, so an interrupted compare keeps the epochs it finished and a
reader (the viewer) sees them while the rest are computed.
"""

from __future__ import annotations

import numpy as np

from grandtour.store import DerivedGroup, Run
from grandtour.store.schema import COMPARISONS_GROUP

#: Version of the ``RUN/comparisons`` layout; a reader refuses a newer one.
COMPARISONS_VERSION = 1
_VERSION_KEY = "grandtour_comparisons_version"
_SECTIONS = ("embeddings", "hybrid")


def entry_key(split: str, layer: str, method: str) -> str:
    return f"{split}/{layer}/{method}"


def array_path(section: str, key: str, epoch: int) -> str:
    return f"{section}/{key}/{int(epoch)}"


class Comparisons:
    """The comparisons group of a run, with typed reads and writes of its entries."""

    def __init__(self, group: DerivedGroup):
        self.group = group
        for key in _SECTIONS:
            group.record.setdefault(key, {})

    @classmethod
    def read(cls, run: Run) -> Comparisons | None:
        """The stored comparisons of ``run`` for reading; None if there are none."""
        group = run.group(COMPARISONS_GROUP, version_key=_VERSION_KEY, version=COMPARISONS_VERSION)
        return None if group is None else cls(group)

    @classmethod
    def open(cls, run: Run) -> Comparisons:
        """The comparisons of ``run`` for writing (holding the run's writer lock), created if new."""
        group = run.open_group(COMPARISONS_GROUP, version_key=_VERSION_KEY, version=COMPARISONS_VERSION)
        if group is None:
            group = run.create_group(COMPARISONS_GROUP, {_VERSION_KEY: COMPARISONS_VERSION,
                                                         **{key: {} for key in _SECTIONS}})
        return cls(group)

    def close(self) -> None:
        self.group.close()

    def __enter__(self) -> Comparisons:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entries --------------------------------------------------------------------

    def entry(self, section: str, key: str) -> dict | None:
        return self.group.record[section].get(key)

    def entries(self, section: str = "embeddings") -> dict[str, dict]:
        return dict(self.group.record[section])

    def start(self, section: str, key: str, settings: dict, joint: list[int] | None = None) -> dict:
        """The entry ``key`` for ``settings``: the stored one if its settings match, else a new one."""
        old = self.entry(section, key)
        if old is not None and old.get("settings") == settings and old.get("joint") == joint:
            return old
        entry = {"settings": settings, "joint": joint, "epochs": {}}
        self.group.record[section][key] = entry
        self.group.commit()
        return entry

    def stored_epochs(self, section: str, key: str, run: Run) -> list[int]:
        """Epochs of entry ``key`` stored for the run's current data of those epochs."""
        entry = self.entry(section, key) or {"epochs": {}}
        return sorted(int(e) for e, doc in entry["epochs"].items()
                      if doc.get("token") == run.epoch_token(int(e)))

    def put(self, section: str, key: str, run: Run, epoch: int, picture: np.ndarray,
            seconds: float) -> None:
        """Write one epoch's picture and commit its entry (the epoch then exists for readers)."""
        self.write(section, key, epoch, picture)
        self.note(section, key, run, epoch, seconds)
        self.group.commit()

    def write(self, section: str, key: str, epoch: int, picture: np.ndarray) -> None:
        """Write one epoch's picture, not yet listed (a group opened with
        ``DerivedGroup.delegate`` does this on a worker of ``compare --dask``)."""
        self.group.write(array_path(section, key, epoch), np.asarray(picture, dtype=np.float32))

    def note(self, section: str, key: str, run: Run, epoch: int, seconds: float) -> None:
        """List the written picture of ``epoch`` in the record; :meth:`commit` publishes it."""
        self.group.record[section][key]["epochs"][str(int(epoch))] = {
            "token": run.epoch_token(int(epoch)), "seconds": round(float(seconds), 6)}

    def commit(self) -> None:
        self.group.commit()

    def get(self, section: str, key: str, epoch: int) -> np.ndarray:
        return self.group.read(array_path(section, key, epoch))

    def seconds(self, section: str, key: str, epoch: int) -> float:
        return float(self.entry(section, key)["epochs"][str(int(epoch))]["seconds"])
