"""Fault injection, part 1: kill -9 at every write stage, then resume; one writer at a time.

A child process writes a tiny run and is killed (SIGKILL) at a named stage of the store
(``grandtour.store.faults.STAGES``); the test then checks what a reader sees, that the
run resumes, and that the resumed run is bit for bit the run written without a kill.
docs/reliability.md tabulates these cases.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import numpy as np
import pytest

pytest.importorskip("zarr")

from reliability_run import (
    KILL_AT,
    V,
    adversarial_data,
    create,
    epoch_data,
    make,
    snapshot,
    spawn,
    write,
)

from grandtour.errors import StoreError
from grandtour.store import Run, RunLock, RunLockedError, RunWriter, check_run, faults
from grandtour.store.schema import LOCK_FILE


def killed(body: str, stage: str, *args: str) -> None:
    proc = spawn(KILL_AT + body, stage, *args, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed at {stage!r}: {err}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run written without interruption: epochs 0-3, adversarial record B, a group."""
    path = tmp_path_factory.mktemp("ref") / "run"
    with write(create(path), range(4)) as w:
        w.write_adversarial("default", **adversarial_data(2))
    group = Run.open(path).create_group("alignment", {V: 1, "epochs": [0]})
    group.write("basis", np.eye(3))
    group.commit()
    group.close()
    return snapshot(path)


def finish(path) -> None:
    """What a resumed writer does: the epochs still missing, the record B, the group."""
    with RunWriter.open(path) as w:
        write(w, [e for e in range(4) if e not in w.epochs])
        w.write_adversarial("default", **adversarial_data(2))
    run = Run.open(path)
    group = run.create_group("alignment", {V: 1, "epochs": [0]})
    group.write("basis", np.eye(3))
    group.commit()
    group.close()


# --------------------------------------------------------------------------- kill -9, then resume

WRITE_EPOCH_STAGES = ("resized", "activations", "before_commit", "commit_tmp", "committed")


@pytest.mark.parametrize("stage", WRITE_EPOCH_STAGES)
def test_kill_inside_write_epoch_then_resume_equals_uninterrupted(tmp_path, reference, stage):
    path = make(tmp_path / "run", epochs=[0, 1])
    killed("with RunWriter.open(sys.argv[2]) as w:\n    write(w, [2])\n", stage, str(path))
    run = Run.open(path)  # the reader sees the epochs committed before, or the new one whole
    assert run.epochs == ([0, 1, 2] if stage == "committed" else [0, 1])
    assert check_run(path).ok, check_run(path).format()
    finish(path)  # the killed child's lock is taken over: flock was released by the kernel
    assert snapshot(path) == reference
    assert not [p for p in path.rglob("*") if p.name.endswith((".partial", ".tmp"))]


CREATE_STAGES = ("create_locked", "create_root", "create_arrays", "commit_tmp")


@pytest.mark.parametrize("stage", CREATE_STAGES)
def test_kill_inside_create_says_start_afresh_and_overwrite_recovers(tmp_path, reference, stage):
    path = tmp_path / "out" / "run"
    killed("create(sys.argv[2])\n", stage, str(path))
    for attempt in (RunWriter.open, Run.open):
        with pytest.raises(StoreError, match=r"interrupted while being created.*afresh.*--overwrite"):
            attempt(path)
    assert not check_run(path).ok
    create(path, overwrite=True).close()
    finish(path)
    assert snapshot(path) == reference


ADVERSARIAL_STAGES = ("adversarial_arrays", "commit_tmp", "adversarial_committed")


@pytest.mark.parametrize("stage", ADVERSARIAL_STAGES)
def test_kill_inside_write_adversarial_keeps_one_whole_record(tmp_path, reference, stage):
    path = make(tmp_path / "run", epochs=range(4))
    with RunWriter.open(path) as w:
        w.write_adversarial("default", **adversarial_data(1))  # record A, generation 0
    killed("with RunWriter.open(sys.argv[2]) as w:\n"
           "    w.write_adversarial('default', **adversarial_data(2))\n", stage, str(path))
    rec = Run.open(path).adversarial()  # A or B, whole
    want = adversarial_data(2 if stage == "adversarial_committed" else 1)
    np.testing.assert_array_equal(rec.predictions, want["predictions"])
    assert check_run(path).ok
    finish(path)
    assert snapshot(path) == reference
    # The generation the killed child left behind (uncommitted, or replaced) is gone.
    assert len(list((path / "adversarial" / "default").glob("[0-9]*"))) == 1


@pytest.mark.parametrize("stage", ("group_cleared", "commit_tmp"))
def test_kill_inside_create_group_leaves_no_half_group(tmp_path, reference, stage):
    path = make(tmp_path / "run", epochs=range(4))
    killed("g = Run.open(sys.argv[2]).create_group('alignment', {'grandtour_test_version': 1})\n",
           stage, str(path))
    assert Run.open(path).group("alignment", version_key=V, version=1) is None
    finish(path)
    assert snapshot(path) == reference


def test_every_stage_is_injected_somewhere():
    tested = set(WRITE_EPOCH_STAGES) | set(CREATE_STAGES) | set(ADVERSARIAL_STAGES) | {"group_cleared"}
    assert tested == set(faults.STAGES)


# --------------------------------------------------------------------------- one writer at a time

#: Child: become a writer of argv[2] of kind argv[1], say "ready", and wait to be killed.
HOLD = """
    kind, path = sys.argv[1], sys.argv[2]
    def ready(at=None):
        print("ready", flush=True)
        time.sleep(600)
    if kind == "train":
        w = RunWriter.open(path)
    elif kind == "create":
        RunWriter._test_hook = lambda at: ready() if at == "create_arrays" else None
        w = create(path)
    elif kind == "adversarial":
        RunWriter._test_hook = lambda at: ready() if at == "adversarial_arrays" else None
        RunWriter.open(path).write_adversarial("default", **adversarial_data(5))
    elif kind == "align":
        g = Run.open(path).create_group("alignment", {"grandtour_test_version": 1})
    elif kind == "import":
        RunWriter._test_hook = lambda at: ready() if at == "before_commit" else None
        Run.from_arrays(path, {"x": np.zeros((2, 3, 4))}, np.arange(3), overwrite=True)
    ready()
"""


def writers(path) -> dict:
    """Every kind of writer of the run at ``path``, as a thunk."""
    def adversarial():
        with RunWriter.open(path) as w:
            w.write_adversarial("default", **adversarial_data(3))

    return {
        "resume (RunWriter.open)": lambda: RunWriter.open(path),
        "overwrite (RunWriter.create)": lambda: create(path, overwrite=True),
        "adversarial": adversarial,
        "align (Run.create_group)": lambda: Run.open(path).create_group("alignment", {V: 1}),
        "align (Run.open_group)": lambda: Run.open(path).open_group("alignment", version_key=V, version=1),
        "import (Run.from_arrays)": lambda: Run.from_arrays(path, {"x": np.zeros((3, 4))}, np.arange(3),
                                                            overwrite=True),
    }


@pytest.mark.parametrize("kind", ["train", "adversarial", "align", "import"])
def test_a_second_writer_of_each_kind_is_refused_naming_the_holder(tmp_path, kind):
    path = make(tmp_path / "run", epochs=[0, 1])
    Run.open(path).create_group("alignment", {V: 1}).close()
    if kind == "import":
        path = tmp_path / "imported"
    holder = spawn(HOLD, kind, str(path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = snapshot(path) if kind != "import" else None
        for what, attempt in writers(path).items():
            if kind == "import" and what == "align (Run.open_group)":
                continue  # no group to open in a run being imported: None, nothing written
            with pytest.raises(RunLockedError) as err:
                attempt()
            text = str(err.value)
            assert f"pid {holder.pid}" in text and socket.gethostname() in text, (what, text)
            assert "-c" in text and "since" in text and "try again" in text, (what, text)
        if before is not None:  # nothing was deleted or changed under the live writer
            assert snapshot(path) == before
            assert Run.open(path).activations("fc", 1, "test").shape == (4, 3)  # readers need no lock
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    # Killed (-9): its lock file is still there, naming it, but the lock is free.
    assert (path / LOCK_FILE).exists()
    order = ["resume (RunWriter.open)", "align (Run.create_group)", "align (Run.open_group)",
             "overwrite (RunWriter.create)", "import (Run.from_arrays)"]
    if kind != "import":  # an imported run has no epoch 1 to attack
        order.insert(1, "adversarial")
    for what in order:
        result = writers(path)[what]()
        if hasattr(result, "close"):
            result.close()


def test_two_fresh_runs_into_one_directory(tmp_path):
    path = tmp_path / "out"
    holder = spawn(HOLD, "create", str(path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            create(path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    with pytest.raises(StoreError, match="interrupted while being created.*--overwrite"):
        RunWriter.open(path)  # the first creator was killed before its first commit
    make(path, epochs=[0], overwrite=True)  # as the message says
    with pytest.raises(StoreError, match="already exists.*overwrite"):
        create(path)
    assert Run.open(path).epochs == [0]


def test_writers_in_one_process_share_the_lock_and_release_it(tmp_path):
    path = make(tmp_path / "run", epochs=[0])
    lock = RunLock(path, command="grandtour train --out run").acquire()
    with RunWriter.open(path) as w:  # the recorder's writer inside the trainer's lock
        w.write_epoch(1, **epoch_data(1))
        group = Run.open(path).create_group("alignment", {V: 1})
        group.close()
    text = (path / LOCK_FILE).read_text()
    assert f'"pid": {os.getpid()}' in text and "grandtour train --out run" in text
    probe = spawn("RunWriter.open(sys.argv[1])\n", str(path), stderr=subprocess.PIPE, text=True)
    _, err = probe.communicate(timeout=120)
    assert probe.returncode == 1 and "grandtour train --out run" in err
    lock.release()
    assert (path / LOCK_FILE).read_text() == ""  # released: it names nobody
    probe = spawn("RunWriter.open(sys.argv[1]).write_epoch(2, **epoch_data(2))\n", str(path))
    assert probe.wait(timeout=120) == 0
    assert Run.open(path).epochs == [0, 1, 2]


def test_a_closed_writer_refuses_to_write(tmp_path):
    w = create(tmp_path / "run")
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.write_epoch(0, **epoch_data(0))
    w.close()  # idempotent
