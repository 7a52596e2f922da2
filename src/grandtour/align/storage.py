"""``RUN/alignment/``: where ``align_run`` stores reductions and bases (and version 1, reduced coordinates).

The alignment is a derived group of the run (:class:`grandtour.store.DerivedGroup`):
the store owns how it is written (arrays first, its record replaced atomically last)
and read; this module owns what the record and the arrays mean (layout in
``docs/align.md``).
"""

from __future__ import annotations

import numpy as np

from grandtour.align.reduction import Reduction
from grandtour.align.transitions import _Alignment
from grandtour.errors import StoreError
from grandtour.store import DerivedGroup, Run

#: Version of the ``RUN/alignment`` layout; a reader refuses a newer one. Version 2 stores no
#: reduced coordinates (they are computed when read, ``reduction.reduced_coordinates``);
#: version 1's are read as stored, and an epoch added to a version-1 alignment is stored as
#: version 2 (the record says 2 from then on).
ALIGNMENT_VERSION = 2
#: The run's derived group that holds the alignment.
ALIGNMENT_GROUP = "alignment"
_VERSION_KEY = "grandtour_alignment_version"
_SECTIONS = ("reductions", "static_maps", "static_coords", "epochs")


class _AlignmentStore:
    """The alignment group of a run, with typed reads of what ``align_run`` wrote.

    Readers trust only what the group's record lists.
    """

    def __init__(self, group: DerivedGroup):
        self._group = group
        self.path = group.path
        self.commit = group.record
        for key in _SECTIONS:
            self.commit.setdefault(key, {})

    @classmethod
    def read(cls, run: Run, *, writable: bool = False) -> _AlignmentStore | None:
        """The stored alignment of ``run``; None if it was never aligned."""
        opener = run.open_group if writable else run.group
        group = opener(ALIGNMENT_GROUP, version_key=_VERSION_KEY, version=ALIGNMENT_VERSION)
        if group is None:
            return None
        try:
            int(group.record["threshold"])
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"the alignment record of {run.path} is corrupt (threshold: {err!r}); "
                             f"realign with `grandtour align {run.path} --force`") from None
        return cls(group)

    @classmethod
    def create(cls, run: Run, threshold: int) -> _AlignmentStore:
        """A new, empty alignment of ``run`` (a previous one is deleted)."""
        record = {_VERSION_KEY: ALIGNMENT_VERSION, "threshold": int(threshold),
                  **{key: {} for key in _SECTIONS}}
        return cls(run.create_group(ALIGNMENT_GROUP, record))

    @property
    def threshold(self) -> int:
        return int(self.commit["threshold"])

    def save(self) -> None:
        self._group.commit()

    def write(self, name: str, data: np.ndarray) -> None:
        self._group.write(name, data)

    def read_array(self, name: str) -> np.ndarray:
        return self._group.read(name)

    # -- typed reads --------------------------------------------------------------

    def reduction(self, layer: str) -> Reduction | None:
        doc = self.commit["reductions"].get(layer)
        if doc is None:
            return None
        return Reduction(layer, self.read_array(f"reductions/{layer}/basis"),
                         self.read_array(f"reductions/{layer}/mean"), float(doc["variance_kept"]),
                         float(doc["total_variance"]), list(doc["fit_epochs"]), int(doc["points"]),
                         str(doc["method"]))

    def alignment(self, layer: str, epoch: int, branch: str | None = None) -> _Alignment | None:
        """The stored alignment of (layer, epoch) from its main input, or from ``branch``."""
        doc = self.commit["epochs"].get(str(epoch), {})
        if branch is None:
            entry = doc.get("layers", {}).get(layer)
        else:
            entry = doc.get("branches", {}).get(layer, {}).get(branch)
        if entry is None:
            return None
        source = entry["source"]
        prefix = f"{map_prefix(layer, branch)}/{'static' if source == 'static' else epoch}"
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(
            ("basis_in", "basis_out", "singular_values", "offset"))
        for name in entry.get("arrays", []):
            arrays[name] = self.read_array(f"{prefix}/{name}").astype(np.float64)
        return _Alignment(layer, entry["previous"], entry["kind"], entry["method"],
                          arrays["basis_in"], arrays["basis_out"], int(entry["d_in"]),
                          int(entry["d_out"]), arrays["singular_values"], arrays["offset"],
                          bool(entry["exact"]), str(entry["note"]),
                          None if entry.get("residual") is None else float(entry["residual"]),
                          static=source == "static",
                          checked=None if entry.get("checked") is None else
                          (int(entry["checked"][0]), int(entry["checked"][1])))

    def upgrade(self) -> None:
        """Mark the record as this version's layout (before adding epochs to an older one)."""
        self.commit[_VERSION_KEY] = ALIGNMENT_VERSION

    def coords_entry(self, layer: str, epoch: int, static: bool) -> dict | None:
        """Version 1 only: the stored reduced coordinates of (layer, epoch), or None."""
        if static:
            return self.commit["static_coords"].get(layer)
        return self.commit["epochs"].get(str(epoch), {}).get("coords", {}).get(layer)

    def coords(self, layer: str, epoch: int, split: str, static: bool) -> np.ndarray | None:
        entry = self.coords_entry(layer, epoch, static)
        if entry is None:
            return None
        y = self.read_array(f"coords/{split}/{layer}/{'static' if static else epoch}")
        return y.astype(np.float64) * float(entry["scale"].get(split, 1.0))


def map_prefix(layer: str, branch: str | None = None) -> str:
    """Where the bases of ``layer``'s transition live: from its main input, or from ``branch``."""
    return f"maps/{layer}" if branch is None else f"maps/{layer}/from/{branch}"


def _alignment_arrays(al: _Alignment) -> dict[str, np.ndarray]:
    """The arrays of an alignment to store, as float32: orthonormal to ~1e-7, which no
    picture shows, at half the size (two threshold x threshold bases per layer and epoch)."""
    out = {}
    if al.basis_in is not None:
        out["basis_in"] = al.basis_in
    if al.basis_out is not None:
        out["basis_out"] = al.basis_out
    if al.singular_values is not None:
        out["singular_values"] = al.singular_values
    if al.offset is not None:
        out["offset"] = al.offset
    return {name: np.asarray(arr, dtype=np.float32) for name, arr in out.items()}
