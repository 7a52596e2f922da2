"""Convolution alignment: the layer as an operator vs. its dense matrix.

For each convolution, three measurements, each in its own subprocess (so each peak
memory is that method's own):

- ``operator``: the leading ``k`` singular triplets of the layer's map ``M`` by ARPACK
  (``grandtour.align.operator_svd``), each iteration one forward and one adjoint call of
  the convolution; ``M`` is never built.
- ``dense``: what the article did: materialise ``M`` (``n_in x n_out``) and take its SVD
  (``numpy.linalg.svd``, thin). Skipped when ``M`` alone would not fit in memory.
- ``align``: what ``grandtour align`` does for that layer at one epoch with the default
  threshold (1024): form ``C = R_in^T M R_out`` through the operator, where ``R`` is the
  layer's reduction (a random orthonormal basis here, for timing) or the identity, and
  take the full SVD of ``C``.

The table prints the time of each, the ratio dense / operator, the peak resident memory
of the measured step above the resident memory just before it (Linux: the peak counter
is reset with ``/proc/self/clear_refs`` and read from ``VmHWM``), and the largest
relative difference between the top-k singular values of the two methods.

Threads: every subprocess runs with the same number of BLAS and torch threads
(``--threads``, default 1), so both methods get the same hardware. One thread also keeps
the comparison meaningful on a shared machine, where multi-threaded BLAS and torch
spin-wait and per-call times swing by orders of magnitude with the load.

Run: ``python benchmarks/bench_align.py`` (``--k 16``, ``--only NAME``, ``--threads 1``).

Whole runs (issue 14): ``python benchmarks/bench_align.py --run RUN [RUN ...] [--threshold 1024 256]
[--train-cpu]`` aligns a copy of each recorded run (``grandtour train ... --no-align``) with the
code of ``BEFORE_COMMIT`` (``--before COMMIT``; extracted with ``git archive`` into a
temporary directory and put first on ``PYTHONPATH``) and with the working tree, side by side,
each in its own single-threaded process. ``--train-cpu`` first measures, in the same way
(one thread, its own process), the CPU time of one training epoch of each run's network and
dataset (``grandtour.train.train`` for one epoch, the run's own settings; the CPU time between
the callbacks of epochs 0 and 1: training plus recording), the reference each alignment
epoch's CPU time is divided by. Printed per run, variant and threshold: the
reductions' fit plus the first epoch, each further epoch (the marginal cost of an epoch),
its CPU time (one thread: a proxy for the time on an idle machine), the per-epoch
training time of the run (the spacing of its epoch commits, so it is the time the run took
when it was recorded: compare it with the load it was taken under), the ratio, with
``--train-cpu`` the CPU time of a training epoch and the ratio of the CPU times, the peak
resident memory, and the alignment's size next to the run's: in all, the reductions' part
(stored once per run), and without it (what grows with the epochs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

CASES = {
    # name: (in_channels, out_channels, kernel, size, padding)
    "mnist conv1 (1->10, 5x5, 28x28)": (1, 10, 5, 28, 0),
    "mnist conv2 (10->20, 5x5, 12x12)": (10, 20, 5, 12, 0),
    "conv 64->64, 3x3 pad 1, 8x8": (64, 64, 3, 8, 1),
    "conv 64->64, 3x3 pad 1, 32x32": (64, 64, 3, 32, 1),
}
#: Skip the dense method when M (float64) would need more than this much memory.
DENSE_LIMIT_BYTES = 8 * 2**30
THRESHOLD = 1024
#: The commit the "before" figures of ``--run`` are measured with (``--before`` chooses
#: another): the code before the reduced coordinates were computed on read and the checks
#: sampled. (The first round of issue 14's speed work was measured against 93db753.)
BEFORE_COMMIT = "f1653b8d019e302484dc41d23291f0998fa0d597"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise KeyError(field)


def _reset_peak() -> float:
    """Reset the peak-RSS counter (Linux: clear_refs 5) and return the current RSS, MB.

    Without the reset, the high-water mark of the set-up (imports, the random reduction
    bases) would hide the peak of the measured step.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmRSS")
    except OSError:  # not Linux: fall back to the process-lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _layer(case: str):
    import numpy as np
    import torch

    from grandtour.align import layer_map
    from grandtour.store import LayerInfo

    c_in, c_out, k, size, pad = CASES[case]
    out = size + 2 * pad - k + 1
    rng = np.random.default_rng(0)
    bound = 1.0 / math.sqrt(c_in * k * k)  # PyTorch's default initialisation range
    weight = rng.uniform(-bound, bound, (c_out, c_in, k, k))
    prev = LayerInfo("prev", "relu", (c_in, size, size))
    layer = LayerInfo("conv", "conv2d", (c_out, out, out),
                      config={"stride": [1, 1], "padding": [pad, pad], "dilation": [1, 1], "groups": 1})
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return layer_map(prev, layer, {"weight": weight, "bias": np.zeros(c_out)})


def worker(method: str, case: str, k: int) -> dict:
    """Run one method on one case; returns time, peak memory and the top-k singular values."""
    import numpy as np

    from grandtour import align
    from grandtour.align.svd import _svd_alignment

    op = _layer(case)
    reductions = []
    if method == "align":
        rng = np.random.default_rng(1)
        for n in (op.n_in, op.n_out):  # a wide side gets a (random) orthonormal reduction
            reductions.append(np.linalg.qr(rng.standard_normal((n, THRESHOLD)))[0] if n > THRESHOLD else None)
    base = _reset_peak()
    t0 = time.perf_counter()
    if method == "operator":
        _, s, _ = align.operator_svd(op, k)
    elif method == "dense":
        m = op.matrix()
        s = np.linalg.svd(m, full_matrices=False)[1][:k]  # vectors too: what aligning needs
    else:
        c = op.compress(*reductions)
        s = _svd_alignment(c)[1][:k]  # the exact step align_run takes
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": _peak_mb() - base, "s": [float(v) for v in s],
            "n_in": op.n_in, "n_out": op.n_out}


def _run(method: str, case: str, k: int, threads: int) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", method, "--case", case, "--k", str(k)]
    env = dict(os.environ, **{v: str(threads) for v in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tree_bytes(path) -> int:
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def train_worker(src: str, scratch: str) -> dict:
    """CPU seconds of one training epoch (and its recording) of the run ``src``'s network and data."""
    from pathlib import Path

    from grandtour.data import load_dataset
    from grandtour.store import Run
    from grandtour.train import train

    cfg = Run.open(src).config
    ds = load_dataset(cfg["dataset"], cfg.get("data_source"))
    stamps: list[float] = []
    train(ds, Path(scratch) / "run", epochs=1, probe_size=int(cfg.get("probe_size", 1000)),
          seed=int(cfg.get("seed", 0)), batch_size=int(cfg.get("batch_size", 64)), lr=float(cfg.get("lr", 0.01)),
          momentum=float(cfg.get("momentum", 0.5)), logit_relu=bool(cfg.get("logit_relu", True)),
          progress=False, callbacks=[lambda epoch, logs: stamps.append(time.process_time())])
    return {"epoch_cpu": stamps[1] - stamps[0], "n_train": len(ds.y_train)}


def run_worker(src: str, threshold: int, scratch: str) -> dict:
    """Align a copy of the run ``src``: epoch 0 first (with the reductions' fit), then the rest."""
    import shutil
    from pathlib import Path

    import grandtour
    from grandtour.align import align_run
    from grandtour.store import Run

    copy = Path(scratch) / "run"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("alignment", "writer.lock", "train_state.pt"))
    epochs = Run.open(copy).epochs
    base = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    align_run(copy, epochs=epochs[:1], threshold=threshold, progress=False)
    t1, c1 = time.perf_counter(), time.process_time()
    align_run(copy, threshold=threshold, progress=False)
    t2, c2 = time.perf_counter(), time.process_time()
    peak = _peak_mb() - base
    aligned = _tree_bytes(copy / "alignment")
    reductions = _tree_bytes(copy / "alignment" / "reductions") if (copy / "alignment" / "reductions").exists() else 0
    return {"reduction_bytes": reductions,"first": t1 - t0, "rest": t2 - t1, "first_cpu": c1 - c0, "rest_cpu": c2 - c1,
            "epochs": len(epochs), "peak_mb": peak,
            "align_bytes": aligned, "run_bytes": _tree_bytes(copy) - aligned,
            "code": str(Path(grandtour.__file__).parent)}


def _epoch_seconds(src: str) -> float | None:
    """Training plus recording time per epoch: the spacing of the run's epoch commits."""
    from datetime import datetime
    from pathlib import Path

    doc = json.loads((Path(src) / "commit.json").read_text())
    stamps = [datetime.fromisoformat(e["written"]) for e in doc.get("epochs", []) if "written" in e]
    if len(stamps) < 2:
        return None
    return (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)


def _before_tree(tmp: str, commit: str = BEFORE_COMMIT) -> str:
    """``src/`` at ``commit``, extracted into ``tmp``; returns the path to put on PYTHONPATH."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "src"], capture_output=True, cwd=root,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return os.path.join(tmp, "src")


def _train_cpu(src: str, env: dict) -> dict | None:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run([sys.executable, __file__, "--train-worker", src, "--scratch", scratch],
                              capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def runs_main(runs: list[str], thresholds: list[int], threads: int,
              variants: tuple[str, ...] = ("before", "after"), before: str = BEFORE_COMMIT,
              train_cpu: bool = False) -> None:
    import tempfile

    env = dict(os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS")})
    print(f"align of whole runs: before = commit {before}, after = this tree; {threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    train_ref: dict[str, dict] = {}
    if train_cpu:
        for src in runs:
            ref = _train_cpu(src, env)
            if ref is not None:
                train_ref[src] = ref
                print(f"{os.path.basename(src.rstrip('/'))}: one training epoch ({ref['n_train']} examples) "
                      f"{ref['epoch_cpu']:.2f} CPU s, {threads} thread(s)", flush=True)
    head = (f"{'run':>12} {'variant':>7} {'thr':>5} {'fit+epoch0 s':>12} {'per epoch s':>11} {'cpu s':>6} "
            f"{'train s/epoch':>13} {'ratio':>6} {'train cpu s':>11} {'cpu ratio':>9} {'peak MB':>8} "
            f"{'align MB':>9} {'red. MB':>8} {'run MB':>7} {'size':>6} {'w/o red.':>8}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        before_src = _before_tree(tmp, before) if "before" in variants else ""
        for src in runs:
            train_s = _epoch_seconds(src)
            ref_cpu = train_ref.get(src, {}).get("epoch_cpu")
            for threshold in thresholds:
                for variant in variants:
                    venv = dict(env)
                    if variant == "before":
                        venv["PYTHONPATH"] = before_src + os.pathsep + env.get("PYTHONPATH", "")
                    with tempfile.TemporaryDirectory() as scratch:
                        proc = subprocess.run([sys.executable, __file__, "--run-worker", src, "--threshold",
                                               str(threshold), "--scratch", scratch],
                                              capture_output=True, text=True, env=venv)
                    if proc.returncode != 0:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    assert (variant == "before") == r["code"].startswith(tmp), r["code"]
                    per = r["rest"] / max(1, r["epochs"] - 1)
                    per_cpu = r["rest_cpu"] / max(1, r["epochs"] - 1)
                    ratio = f"{per / train_s:6.1%}" if train_s else f"{'n/a':>6}"
                    train = f"{train_s:13.1f}" if train_s else f"{'n/a':>13}"
                    cpu_ref = f"{ref_cpu:11.2f}" if ref_cpu else f"{'n/a':>11}"
                    cpu_ratio = f"{per_cpu / ref_cpu:9.1%}" if ref_cpu else f"{'n/a':>9}"
                    print(f"{os.path.basename(src.rstrip('/')):>12} {variant:>7} {threshold:5d} {r['first']:12.1f} "
                          f"{per:11.2f} {per_cpu:6.2f} {train} {ratio} {cpu_ref} {cpu_ratio} {r['peak_mb']:8.0f} "
                          f"{r['align_bytes'] / 2**20:9.1f} {r.get('reduction_bytes', 0) / 2**20:8.1f} "
                          f"{r['run_bytes'] / 2**20:7.1f} {r['align_bytes'] / r['run_bytes']:6.1%} "
                          f"{(r['align_bytes'] - r.get('reduction_bytes', 0)) / r['run_bytes']:8.1%}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=16, help="leading singular values compared")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads per method")
    parser.add_argument("--run", nargs="+", default=None, metavar="RUN",
                        help="align these recorded runs before/after instead of the operator table")
    parser.add_argument("--threshold", type=int, nargs="+", default=[THRESHOLD],
                        help="alignment thresholds for --run (default: 1024)")
    parser.add_argument("--variant", nargs="+", choices=("before", "after"), default=["before", "after"],
                        help="which code --run measures (default: both, side by side)")
    parser.add_argument("--before", default=BEFORE_COMMIT, help="the commit --run's 'before' is (default: %(default)s)")
    parser.add_argument("--train-cpu", action="store_true",
                        help="with --run: first measure the CPU time of one training epoch of each run's network")
    parser.add_argument("--train-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.k)))
        return
    if args.train_worker:
        print(json.dumps(train_worker(args.train_worker, args.scratch)))
        return
    if args.run_worker:
        print(json.dumps(run_worker(args.run_worker, args.threshold[0], args.scratch)))
        return
    if args.run:
        runs_main(args.run, args.threshold, args.threads, tuple(args.variant), args.before, args.train_cpu)
        return

    print(f"operator = ARPACK top-{args.k} triplets through conv/adjoint; dense = build M, "
          f"numpy.linalg.svd; align = C = R^T M R through the operator + full SVD (threshold {THRESHOLD}).")
    print(f"{args.threads} thread(s) per method ({os.cpu_count()} CPUs); MB = peak resident memory of the step "
          "above the resident memory before it, each method in its own process.\n")
    head = (f"{'layer':34} {'n_in x n_out':>13} {'operator s':>10} {'dense s':>9} {'dense/op':>8} "
            f"{'op MB':>7} {'dense MB':>9} {'max rel diff top-k':>18} {'align s':>8} {'align MB':>8}")
    print(head)
    print("-" * len(head))
    estimated: list[str] = []
    ref = None  # (work, seconds) of the largest dense SVD measured, for extrapolating
    for case in CASES:
        if args.only and args.only not in case:
            continue
        c_in, c_out, kk, size, pad = CASES[case]
        out = size + 2 * pad - kk + 1
        n_in, n_out = c_in * size * size, c_out * out * out
        op = _run("operator", case, args.k, args.threads)
        dense = None
        if n_in * n_out * 8 <= DENSE_LIMIT_BYTES:
            dense = _run("dense", case, args.k, args.threads)
        al = _run("align", case, args.k, args.threads)
        if op is None:
            print(f"{case:34} operator run failed")
            continue
        work = n_in * n_out * min(n_in, n_out)  # the flops of a thin SVD, up to a constant
        if dense is not None:
            diff = max(abs(a - b) / b for a, b in zip(op["s"], dense["s"], strict=True))
            dense_s, ratio = f"{dense['seconds']:9.2f}", f"{dense['seconds'] / op['seconds']:8.1f}"
            dense_mb, diff_s = f"{dense['peak_mb']:9.0f}", f"{diff:18.1e}"
            if ref is None or work > ref[0]:
                ref = (work, dense["seconds"])
        else:
            gib = n_in * n_out * 8 / 2**30
            dense_mb, diff_s = f"{f'M={gib:.0f}GiB':>9}", f"{'(no dense)':>18}"
            if ref is not None:  # not run: M does not fit; the time it would take, by scaling
                est = ref[1] * work / ref[0]
                dense_s, ratio = f"~{est:8.1e}", f"~{est / op['seconds']:7.1e}"
                estimated.append(case)
            else:
                dense_s, ratio = f"{'n/a':>9}", f"{'n/a':>8}"
        al_s = f"{al['seconds']:8.2f}" if al else f"{'failed':>8}"
        al_mb = f"{al['peak_mb']:8.0f}" if al else ""
        print(f"{case:34} {f'{n_in}x{n_out}':>13} {op['seconds']:10.2f} {dense_s} {ratio} "
              f"{op['peak_mb']:7.0f} {dense_mb} {diff_s} {al_s} {al_mb}")
    if estimated:
        print(f"\n~: not run ({', '.join(estimated)}): the dense matrix alone exceeds "
              f"{DENSE_LIMIT_BYTES / 2**30:.0f} GiB; its time is the largest measured dense SVD "
              "scaled by n_in * n_out * min(n_in, n_out).")


if __name__ == "__main__":
    main()
