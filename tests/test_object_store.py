"""Runs on object storage (issue 15): an S3-compatible server on loopback, over real HTTP.

moto's standalone server is started by the test on a free loopback port; s3fs reaches it
through ``AWS_ENDPOINT_URL`` with dummy credentials from the environment, as a user's
would come. Record, kill and resume, read while writing, the writer lock's lease, align,
``grandtour info``/``check`` and the server, all on ``s3://`` URLs; every result is
compared with the same run written to a local directory.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from reliability_run import (
    KILL_AT,
    SIZES,
    create,
    epoch_data,
    snapshot,
    spawn,
    write,
)
from s3_server import BUCKET, s3_environment

from grandtour.errors import StoreError
from grandtour.store import Run, RunLockedError, RunWriter
from grandtour.store.codec import encode_float16
from grandtour.store.location import RemotePath, as_path
from grandtour.store.schema import LOCK_FILE


@pytest.fixture(scope="module")
def s3():
    with s3_environment() as endpoint:
        yield endpoint


def _url() -> str:
    return f"s3://{BUCKET}/runs/{uuid.uuid4().hex[:8]}"


def _wait_for_lease(url: str) -> None:
    """Until the lease of a killed writer has expired (its expiry plus the clock-skew margin)."""
    import json

    doc = json.loads(as_path(url).joinpath(LOCK_FILE).read_text())
    time.sleep(max(0.0, doc["expires"] + doc["lease_s"] - time.time()) + 0.2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run written to a local directory without interruption: epochs 0-2."""
    path = tmp_path_factory.mktemp("ref") / "run"
    write(create(path), range(3)).close()
    return snapshot(path)


def test_a_url_is_a_location_and_credentials_never_ride_in_it(s3):
    assert isinstance(as_path(f"s3://{BUCKET}/runs/x"), RemotePath)
    assert str(as_path(f"s3://{BUCKET}/runs/x") / "commit.json") == f"s3://{BUCKET}/runs/x/commit.json"
    assert str(as_path("file:///tmp/run")) == "/tmp/run"  # a file:// URL is the local directory
    with pytest.raises(StoreError) as err:
        as_path(f"s3://AKIA:hunter2@{BUCKET}/runs/x")
    assert "hunter2" not in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)
    with pytest.raises(StoreError, match="no run at"):
        Run.open(f"s3://{BUCKET}/runs/none")


def test_killed_mid_epoch_resumes_to_the_uninterrupted_run(s3, reference):
    """A writer killed (SIGKILL) while writing epoch 2 leaves epochs 0-1 readable; once its
    lease has expired a new writer takes the lock over, and the run it finishes is, bit for
    bit, the run written to local disk without a kill."""
    url = _url()
    child = spawn(KILL_AT + textwrap.dedent(f"""
        kill, RunWriter._test_hook = RunWriter._test_hook, None
        w = create({url!r})
        write(w, [0, 1])
        RunWriter._test_hook = kill  # killed at epoch 2's first stage "activations"
        write(w, [2])
    """), "activations", stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=600)
    assert child.returncode == -signal.SIGKILL, err
    run = Run.open(url)
    assert run.epochs == [0, 1]  # epoch 2 was written in part, never committed
    _wait_for_lease(url)  # the dead writer's lease: valid until it expires
    with RunWriter.open(url) as w:
        write(w, [2])
    assert snapshot(url) == reference
    assert not as_path(url).joinpath(LOCK_FILE).exists()  # released on close


def test_a_gs_url_without_gcsfs_is_a_clear_error(monkeypatch, capsys):
    """gs:// parses as a URL; with gcsfs missing, the message names the package to install
    and the command exits 2. (Writing to GCS is not tested: no fake GCS server offline.)"""
    import sys

    from grandtour import cli

    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "gs", raising=False)  # a class fsspec cached
    with pytest.raises(StoreError, match="pip install gcsfs"):
        as_path("gs://bucket/runs/x")
    assert cli.main(["info", "gs://bucket/runs/x"]) == 2
    assert "pip install gcsfs" in capsys.readouterr().err


#: ``grandtour train`` of the digits network, small: 2 epochs, 10 probes per split.
TRAIN = ["train", "--dataset", "digits", "--epochs", "2", "--probe-size", "10", "--no-align"]


def test_train_into_the_bucket_interrupted_and_resumed_equals_a_local_run(s3, tmp_path, capsys, monkeypatch):
    """``grandtour train --out s3://...`` interrupted after it saved epoch 1's training state
    and before it committed the epoch, then ``--resume``: the run (its metrics at every
    epoch, its last weights) is the one ``grandtour train`` writes to local disk uninterrupted;
    the training state is an object of the run, and the lease is released at the end. (A
    writer killed outright, and the lease it leaves: the SIGKILL test above.)"""
    from grandtour import cli
    from grandtour.store.schema import TRAIN_STATE

    url, local = _url(), tmp_path / "local"
    commits = []

    def hook(stage):
        if stage == "before_commit":
            commits.append(stage)
            if len(commits) == 2:  # epoch 0 committed, epoch 1's state saved
                raise KeyboardInterrupt

    monkeypatch.setattr(RunWriter, "_test_hook", hook)
    assert cli.main(TRAIN + ["--out", url]) == 130  # interrupted
    monkeypatch.setattr(RunWriter, "_test_hook", None)
    assert Run.open(url).epochs == [0]
    assert as_path(url).joinpath(TRAIN_STATE).is_file()
    assert cli.main(["train", "--out", url, "--resume", "--no-align"]) == 0  # the run's own settings
    assert url in capsys.readouterr().out
    assert cli.main(TRAIN + ["--out", str(local)]) == 0
    remote, here = Run.open(url), Run.open(local)
    assert remote.epochs == here.epochs == [0, 1, 2]
    for split in here.splits:  # the losses and accuracies of every epoch, to the last bit
        for name, value in here.metrics(split).items():
            assert remote.metrics(split)[name].tobytes() == value.tobytes(), (split, name)
    for layer in ("conv1", "fc2"):  # the weights the resumed training ended with
        for name, value in here.params(layer, 2).items():
            assert remote.params(layer, 2)[name].tobytes() == value.tobytes(), (layer, name)
    assert not as_path(url).joinpath(LOCK_FILE).exists()  # released when train returned


def test_a_second_writer_is_refused_and_a_taken_lease_stops_the_first(s3):
    url = _url()
    write(create(url), [0]).close()
    child = spawn(f"""
        w = RunWriter.open({url!r})
        print("ready", flush=True)
        sys.stdin.readline()
        w.close()
        print("closed", flush=True)
    """, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # the holder renews its lease meanwhile (every third of a second)
        with pytest.raises(RunLockedError, match=f"pid {child.pid}"):
            RunWriter.open(url)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
    finally:
        child.kill()
        child.wait()
    # Released: the next writer gets it at once. Then another writer takes the lock object
    # over (as after an expired lease): this writer's next commit is refused.
    w = RunWriter.open(url)
    lock = as_path(url) / LOCK_FILE
    lock.write_text('{"owner": "someone else", "pid": 1, "host": "h", "command": "c", "since": "s", '
                    f'"expires": {time.time() + 60}, "lease_s": 1}}')
    with pytest.raises(RunLockedError, match="taken over"):
        write(w, [1])
    w.close()
    assert Run.open(url).epochs == [0]


def test_a_reader_while_writing_sees_whole_epochs_only(s3):
    """A reader polling a run while another process writes it sees only committed epochs,
    and every epoch it sees holds exactly the data written for it."""
    url = _url()
    write(create(url), [0]).close()
    child = spawn(f"""
        with RunWriter.open({url!r}) as w:
            write(w, [1, 2])
    """, stderr=subprocess.PIPE, text=True)
    run, checked = Run.open(url), set()
    try:
        while True:
            done = child.poll() is not None
            run.refresh()
            for epoch in run.epochs:
                if epoch in checked:
                    continue
                data = epoch_data(epoch)["activations"]
                for split in SIZES:
                    expected, expected_scale, _ = encode_float16(np.asarray(data[split]["fc"], np.float64))
                    got, scale = run.activations_float16("fc", epoch, split)
                    np.testing.assert_array_equal(got, expected, err_msg=f"epoch {epoch} {split}")
                    assert scale == expected_scale
                checked.add(epoch)
            if done:
                break
            time.sleep(0.2)
    finally:
        _, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    assert checked == {0, 1, 2}


def test_align_info_check_and_serve_read_the_bucket(s3, tmp_path, capsys):
    """``align``, ``info``, ``check`` and ``serve`` take the URL; what the server sends is
    what it sends for the same run on local disk."""
    from fastapi.testclient import TestClient

    from grandtour import cli, server
    from grandtour.align import align_run

    url, local = _url(), tmp_path / "run"
    for where in (url, local):
        write(create(where), range(2)).close()
        align_run(where, progress=False)
    assert cli.main(["info", url]) == 0
    assert url in capsys.readouterr().out
    assert cli.main(["check", url]) == 0
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html>")
    remote = TestClient(server.create_app([url], web_dir=web), base_url="http://127.0.0.1")
    here = TestClient(server.create_app([local], web_dir=web), base_url="http://127.0.0.1")
    rid = remote.get("/api/runs").json()[0]["id"]
    lid = here.get("/api/runs").json()[0]["id"]
    for route in ("activations/fc/1/train", "labels/test", "predictions/1/test", "transition/fc/1/train"):
        a, b = remote.get(f"/api/runs/{rid}/{route}"), here.get(f"/api/runs/{lid}/{route}")
        assert a.status_code == b.status_code == 200, (route, a.text)
        assert a.content == b.content, route
