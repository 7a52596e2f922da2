"""Many ranks and many workers (issue 15): ``torchrun`` recording into a bucket, and
``grandtour align --dask local:2``.

The ranks are real processes started by ``torchrun`` (``python -m torch.distributed.run``,
gloo), each writing its share of the store straight into the loopback S3 server
(tests/s3_server.py); one rank is killed mid-epoch, which must leave that epoch
uncommitted and the run resumable. The Dask cluster is a real ``LocalCluster`` of two
worker processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("torch")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")
pytest.importorskip("distributed")

import torch
from reliability_run import create, env, write
from s3_server import BUCKET, s3_environment

from grandtour import cli
from grandtour.models import build_model, normalize
from grandtour.record import Recorder
from grandtour.store import Run
from grandtour.store.location import as_path
from grandtour.store.schema import LOCK_FILE

#: Float16 storage: activations computed in different batches agree to its precision.
F16 = {"rtol": 2e-3, "atol": 1e-4}

#: One rank's program: the digits network, 13 + 6 probes (uneven shards over 2 ranks),
#: epoch 0, a stand-in for training, epoch 1. With "die", rank 1 is killed (SIGKILL) while
#: it writes its share of epoch 1; with "resume", only epoch 1 is recorded, into the run.
RANK = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, torch
    import torch.distributed as dist
    from grandtour.models import build_model, normalize
    from grandtour.record import Recorder
    from grandtour.store.writer import ShardWriter

    url, mode = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rng = np.random.default_rng(0)
    probes = {}
    for split, n in (("train", 13), ("test", 6)):
        images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        probes[split] = (normalize(images, "digits"), np.arange(n) % 10)
    torch.manual_seed(0)
    model = build_model("digits")
    rec = Recorder(model, url, probes=probes, batch_size=4, dataset="digits", resume=mode == "resume")
    if mode != "resume":
        rec.record(0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9).add_(0.01)
    if mode == "die" and dist.get_rank() == 1:
        ShardWriter.write = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    rec.record(1)
    dist.destroy_process_group()
""")


def _probes():
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 13), ("test", 6)):
        images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        out[split] = (normalize(images, "digits"), np.arange(n) % 10)
    return out


def _torchrun(script: Path, url: str, mode: str) -> subprocess.CompletedProcess:
    e = env()
    e["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), url, mode], env=e, capture_output=True, text=True, timeout=600)


def test_torchrun_ranks_record_into_the_bucket_like_one_process(tmp_path):
    """Two ranks write their shares into the bucket; rank 1 killed mid-epoch leaves epoch 1
    uncommitted; resumed, the run equals the one a single process records locally."""
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    with s3_environment():
        url = f"s3://{BUCKET}/runs/ddp"
        died = _torchrun(script, url, "die")
        assert died.returncode != 0, died.stderr[-2000:]
        assert Run.open(url).epochs == [0]  # the epoch a rank died in was never committed
        lock = as_path(url) / LOCK_FILE
        if lock.exists():  # rank 0 was stopped by torchrun: wait until its lease expires
            import json

            doc = json.loads(lock.read_text())
            time.sleep(max(0.0, doc["expires"] + doc["lease_s"] - time.time()) + 0.2)
        resumed = _torchrun(script, url, "resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        dist = Run.open(url)

        torch.manual_seed(0)
        model = build_model("digits")
        rec = Recorder(model, tmp_path / "single", probes=_probes(), batch_size=4, dataset="digits")
        rec.record(0)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.9).add_(0.01)
        rec.record(1)
        single = Run.open(tmp_path / "single")
        assert dist.epochs == single.epochs == [0, 1]
        assert [i.name for i in dist.layers] == [i.name for i in single.layers]
        for split in ("train", "test"):
            np.testing.assert_array_equal(dist.labels(split), single.labels(split))
            for epoch in (0, 1):
                for info in single.layers:
                    np.testing.assert_allclose(dist.activations(info.name, epoch, split),
                                               single.activations(info.name, epoch, split), **F16,
                                               err_msg=f"{info.name} epoch {epoch} {split}")
                np.testing.assert_array_equal(dist.predictions(epoch, split), single.predictions(epoch, split))
            for key, value in single.metrics(split).items():
                np.testing.assert_allclose(dist.metrics(split)[key], value, rtol=1e-5)
        for epoch in (0, 1):
            np.testing.assert_array_equal(dist.params("fc1", epoch)["weight"], single.params("fc1", epoch)["weight"])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_align_on_a_local_dask_cluster_writes_the_serial_groups_byte_for_byte(tmp_path, capsys):
    serial, spread = tmp_path / "serial", tmp_path / "spread"
    write(create(serial), range(4)).close()
    shutil.copytree(serial, spread)
    # threshold 2: every layer is reduced, so the reductions and the reduced maps are spread too
    assert cli.main(["align", str(serial), "--threshold", "2"]) == 0
    assert cli.main(["align", str(spread), "--threshold", "2", "--dask", "local:2"]) == 0
    out = capsys.readouterr().out
    assert "aligned 4 epoch(s)" in out
    a, b = _files(serial / "alignment"), _files(spread / "alignment")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert not os.path.exists(spread / LOCK_FILE) or not (spread / LOCK_FILE).read_text()  # released


def test_dask_scheduler_that_is_no_address_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    write(create(run), range(2)).close()
    assert cli.main(["align", str(run), "--dask", "nonsense"]) == 2
    assert "local:N" in capsys.readouterr().err


def _compare_run(path: Path) -> None:
    """A run of 48 test points in 12 dimensions at 2 epochs: enough for t-SNE and UMAP."""
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    n, rng = 48, np.random.default_rng(5)
    layers = [LayerInfo("fc", "linear", (12,)), LayerInfo("softmax", "softmax", (3,))]
    probes = {"test": ProbeSet(labels=np.arange(n) % 3, indices=np.arange(n))}
    with RunWriter.create(path, dataset="toy", class_names=["a", "b", "c"], layers=layers, probes=probes) as w:
        centres = rng.standard_normal((3, 12)) * 4
        for epoch in range(2):
            fc = centres[np.arange(n) % 3] * (1 + epoch) + rng.standard_normal((n, 12))
            w.write_epoch(epoch, activations={"test": {"fc": fc, "softmax": rng.random((n, 3))}})


def test_compare_on_a_dask_cluster_stores_the_serial_pictures(tmp_path, capsys):
    """``compare --dask SCHEDULER``: one task per (method, epoch), one for dtsne's joint
    embedding; every stored picture is, bit for bit, the serial command's.

    The cluster's two workers are threads of this process (an ``inproc://`` scheduler
    reached by its address, as an existing cluster is): UMAP's numba code, compiled once
    here, would be compiled again by every worker process (40 s each on this loaded
    machine). ``local:N``'s worker processes are the ones ``align --dask`` is tested on."""
    from distributed import LocalCluster

    from grandtour.compare import stored

    serial, spread = tmp_path / "serial", tmp_path / "spread"
    _compare_run(serial)
    shutil.copytree(serial, spread)
    chosen = ["pca", "tsne", "umap", "dtsne"]
    args = ["--layer", "fc", "--methods", ",".join(chosen)]
    assert cli.main(["compare", str(serial), *args]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=40) as cluster:
        assert cli.main(["compare", str(spread), *args, "--dask", cluster.scheduler_address]) == 0
        assert "7 task(s)" in capsys.readouterr().out  # 3 methods x 2 epochs, and dtsne
        for method in chosen:
            a, b = stored(serial, "fc", method), stored(spread, "fc", method)
            assert sorted(a) == sorted(b) == [0, 1], method
            for epoch in a:
                assert a[epoch].tobytes() == b[epoch].tobytes(), (method, epoch)
        assert cli.main(["compare", str(spread), *args, "--dask", cluster.scheduler_address]) == 0
        assert "0 task(s)" in capsys.readouterr().out  # all stored: nothing recomputed
