"""``grandtour check RUN``: verify a whole run and list what is damaged.

:func:`check_run` reads everything a reader may read: the root metadata and the commit
record (checksums, versions, consistency), every array's metadata against the root
record, every chunk of every committed epoch (present, passing its crc32c checksum,
decoding, with the non-finite row counts the commit record holds), the probe sets, the
adversarial records and the derived groups. It never writes and needs no lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from grandtour.errors import StoreError
from grandtour.store import integrity
from grandtour.store.codec import checksum_ok
from grandtour.store.groups import DerivedGroup, _redo
from grandtour.store.layout import Layout, is_unfinished_creation, missing_run_message
from grandtour.store.location import as_path, walk_files
from grandtour.store.lock import holder
from grandtour.store.reader import Run
from grandtour.store.schema import (
    CHECKSUM_KEY,
    COMMIT_FILE,
    DERIVED_GROUPS,
    ZARR_META,
    is_temp_leftover,
    metrics_array,
    params_array,
    predictions_array,
    probe_has,
    probes_array,
)


@dataclass(frozen=True)
class Damage:
    """One damaged thing: ``where`` (an array, a record, a group) and what is wrong."""

    where: str
    what: str


@dataclass
class CheckReport:
    """What :func:`check_run` found.

    Attributes
    ----------
    path : Path
    damage : list of Damage
        Empty if the run is intact.
    notes : list of str
        What is not damage but worth knowing (a live writer, leftovers of a killed write).
    epochs, arrays, reads : int
        Committed epochs, arrays checked, and array reads (each a set of chunks) verified.
    """

    path: Path
    damage: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    epochs: int = 0
    arrays: int = 0
    reads: int = 0

    @property
    def ok(self) -> bool:
        return not self.damage

    def add(self, where: str, err: Exception | str) -> None:
        self.damage.append(Damage(where, str(err)))

    def format(self) -> str:
        """The report as text: a verdict line, then one line per damaged thing and note."""
        if self.ok:
            lines = [f"{self.path}: ok ({self.epochs} epochs, {self.arrays} arrays, "
                     f"{self.reads} reads verified)"]
        else:
            lines = [f"{self.path}: DAMAGED, {len(self.damage)} problem(s) "
                     f"({self.epochs} epochs, {self.arrays} arrays, {self.reads} reads checked)"]
            lines += [f"  {d.where}: {d.what}" for d in self.damage]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_run(path) -> CheckReport:
    """Verify the whole run at ``path``; the report lists what is damaged.

    Raises
    ------
    StoreError
        If ``path`` is not a run at all (missing, a file, a directory without a run's
        root metadata) or was written by a newer grandtour: nothing to check.
    """
    path = as_path(path)
    report = CheckReport(path)
    msg = missing_run_message(path)
    if msg is not None:
        if not (path.is_dir() and ((path / ZARR_META).is_file() or is_unfinished_creation(path))):
            raise StoreError(msg)
        report.add("run", msg)
        return report
    try:
        layout = Layout(path, read_only=True, verify_arrays=False)
    except StoreError as err:
        if "Upgrade grandtour" in str(err):
            raise
        report.add(ZARR_META if ZARR_META in str(err) else COMMIT_FILE, err)
        return report
    _notes(layout, report)
    report.epochs = len(layout.commit.epochs)
    for problem in integrity.array_problems(layout):
        report.add("metadata", problem)
    if not report.ok:
        return report  # reading arrays whose metadata is wrong would only repeat it
    run = Run(layout)
    _check_probes(run, layout, report)
    _check_epochs(run, report)
    _check_adversarial(run, report)
    for name in DERIVED_GROUPS:
        _check_group(path, name, report)
    return report


def _try(report: CheckReport, where: str, read) -> None:
    try:
        read()
        report.reads += 1
    except StoreError as err:
        report.add(where, err)


def _check_probes(run: Run, layout: Layout, report: CheckReport) -> None:
    for split in run.splits:
        info = layout.probe_info[split]
        report.arrays += 1 + probe_has(info, "indices") + probe_has(info, "images")
        _try(report, probes_array(split, "labels"), lambda s=split: run.labels(s))
        _try(report, probes_array(split, "indices"), lambda s=split: run.indices(s))
        _try(report, probes_array(split, "images"), lambda s=split: run.images(s))


def _check_epochs(run: Run, report: CheckReport) -> None:
    params = {(lay, p) for e in run.epochs for lay, names in run._entry(e).params.items()  # noqa: SLF001
              for p in names}
    report.arrays += len(run.splits) * (len(run.layers) + 1 + 4) + len(params)
    for split in run.splits:
        _try(report, metrics_array(split, "*"), lambda s=split: run.metrics(s))
        for epoch in run.epochs:
            for layer in run.layers:
                if layer.static and epoch != run.epochs[0]:
                    continue  # one slot for every epoch: checked once
                _try(report, f"activations/{split}/{layer.name}",
                     lambda s=split, e=epoch, n=layer.name: run.activations_float16(n, e, s))
            _try(report, predictions_array(split), lambda s=split, e=epoch: run.predictions(e, s))
    for epoch in run.epochs:
        for layer in {lay for lay, _ in params}:
            _try(report, params_array(layer, "*"), lambda e=epoch, n=layer: run.params(n, e))


def _check_adversarial(run: Run, report: CheckReport) -> None:
    for name in run.adversarial_names():
        where = f"adversarial record {name!r}"
        try:
            record = run.adversarial(name)
        except StoreError as err:
            report.add(where, err)
            continue
        report.arrays += 4 + len(record.layers)
        report.reads += 3
        for layer in record.layers:
            _try(report, f"{where}, layer {layer}", lambda n=layer, r=record: r.activations(n))
        _try(report, f"{where}, images", record.images)


def _check_group(run_path: Path, name: str, report: CheckReport) -> None:
    gpath = run_path / name
    cpath = gpath / COMMIT_FILE
    if not gpath.exists():
        return
    redo = _redo(name, run_path)
    try:
        doc = json.loads(cpath.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
    except (OSError, ValueError, TypeError) as err:
        report.add(f"{name} group", f"its record {cpath} is missing or corrupt ({err}); {redo}")
        return
    if checksum_ok(doc) is False:
        report.add(f"{name} group", f"its record {cpath} fails its checksum; {redo}")
        return
    doc.pop(CHECKSUM_KEY, None)
    group = DerivedGroup(run_path, name, doc, writable=False, stamp=())
    for array in _group_arrays(gpath):
        report.arrays += 1
        _try(report, f"{name} group", lambda a=array: group.read(a))


def _group_arrays(gpath: Path) -> list[str]:
    """Paths (relative to the group) of every array in a derived group's directory."""
    found = []
    for dirpath, name in walk_files(gpath):
        if name == ZARR_META and str(dirpath) != str(gpath):
            doc = integrity.read_array_meta(as_path(dirpath), "")
            if doc is not None and doc.get("node_type") == "array":
                found.append(os.path.relpath(str(dirpath), str(gpath)).replace(os.sep, "/"))
    return sorted(found)


def _notes(layout: Layout, report: CheckReport) -> None:
    who = holder(layout.path)
    if who is not None:
        report.notes.append(f"the run is being written now by {who.describe()}; what it has not "
                            "committed yet is not checked")
    leftovers = [f for _, f in walk_files(layout.path) if is_temp_leftover(f)]
    if leftovers:
        report.notes.append(f"{len(leftovers)} temporary file(s) of an interrupted write; the next "
                            "writer (--resume) removes them")
    if not layout.integrity:
        report.notes.append("the run was written before chunk checksums: its chunks are read, "
                            "not verified against checksums")


def check_command(args) -> int:
    """``grandtour check RUN``: 0 if the run is intact, 1 if damaged, 2 if it is not a run."""
    import sys

    try:
        report = check_run(args.run)
    except StoreError as err:
        print(f"grandtour check: error: {err}", file=sys.stderr)
        return 2
    print(report.format())
    return 0 if report.ok else 1
