"""Past the article: a run of 100,000 probes of the article's MNIST network, recorded and aligned.

MNIST has 70,000 images, so the probes are every one of them (splits ``train``, 60,000, and
``test``, 10,000) and ``shifted``: 30,000 training images (a seeded choice), each moved by a
seeded whole-pixel shift of up to ``--shift`` pixels in x and y (zero fill), with their
labels: how the network treats digits a little off centre, a question the Grand Tour's
fixed projection can show. The network, its initial weights, the optimiser and the data
order are those of ``grandtour train --dataset mnist`` (``grandtour.models.build_model``,
SGD with the defaults' learning rate and momentum, batches of 64), trained on the 60,000
training images. Each epoch is timed in two parts, training and recording
(``Recorder.record``), then the run is aligned by ``grandtour.align.align_run`` (the
reductions' fit and epoch 0 in one call, then each further epoch in its own call) and its
size is reported. Open the result in the page with
``python benchmarks/bench_page.py --sizes --run OUT`` (first frame and memory).

Run::

    python benchmarks/bench_scale.py --data-dir ../shared/data/mnist --out /tmp/big/mnist100k
    python benchmarks/bench_scale.py --out /tmp/big/mnist100k --align-epoch 3

Peak memory: a few GB (the probes' inputs, 100,000 x 784 float32, and conv1's activations
per recorded batch; the alignment's fit keeps a sample of 32,768 rows per layer).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np


def _shifted(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image ``(1, H, W)`` moved by its ``(dy, dx)``, zero fill."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    for i, (dy, dx) in enumerate(shifts):
        src = x[i, :, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        out[i, :, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
    return out


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def align_one_epoch(path: Path, epoch: int) -> int:
    """Align one epoch of an aligned run again, on its own: what a further epoch costs a
    fresh process (opening the run and its alignment included; torch imported before)."""
    import torch  # noqa: F401 - imported once per process, not per epoch

    from grandtour.align import align_run
    from grandtour.align.storage import _AlignmentStore
    from grandtour.store import Run

    run = Run.open(path)
    store = _AlignmentStore.read(run, writable=True)
    store.commit["epochs"].pop(str(epoch), None)
    store.save()
    store._group.close()  # noqa: SLF001 - a benchmark undoing one epoch
    t, c = time.perf_counter(), time.process_time()
    align_run(path, epochs=[epoch], progress=False)
    print(f"epoch {epoch} aligned in {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s "
          f"CPU, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="the MNIST IDX files (not needed with --align-epoch)")
    ap.add_argument("--out", required=True, help="the run to create (replaced if it exists)")
    ap.add_argument("--probes", type=int, default=100_000, help="in all, at least 70,000")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--shift", type=int, default=3)
    ap.add_argument("--no-align", action="store_true")
    ap.add_argument("--align-epoch", type=int, metavar="E",
                    help="record nothing: time the alignment of epoch E of the run at --out alone, in "
                         "this process (E is dropped from the alignment's commit record first)")
    args = ap.parse_args()
    if args.align_epoch is not None:
        return align_one_epoch(Path(args.out), args.align_epoch)
    if args.data_dir is None:
        ap.error("--data-dir is needed to record a run")

    import torch

    from grandtour import defaults
    from grandtour.align import align_run
    from grandtour.data import load_dataset
    from grandtour.models import build_model, normalize
    from grandtour.record import Recorder

    ds = load_dataset("mnist", args.data_dir)
    extra = args.probes - len(ds.y_train) - len(ds.y_test)
    if extra < 0:
        raise SystemExit(f"--probes {args.probes}: MNIST alone holds {len(ds.y_train) + len(ds.y_test)}")
    rng = np.random.default_rng(defaults.SEED)
    pick = np.sort(rng.choice(len(ds.y_train), size=extra, replace=False))
    shifts = rng.integers(-args.shift, args.shift + 1, size=(extra, 2))
    images = {"train": ds.x_train, "test": ds.x_test, "shifted": _shifted(ds.x_train[pick], shifts)}
    labels = {"train": ds.y_train, "test": ds.y_test, "shifted": ds.y_train[pick]}
    indices = {"train": np.arange(len(ds.y_train)), "test": np.arange(len(ds.y_test)), "shifted": pick}
    probes = {s: (normalize(images[s], "mnist"), labels[s]) for s in images}

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(defaults.SEED)
    model = build_model("mnist")
    opt = torch.optim.SGD(model.parameters(), lr=defaults.LR, momentum=defaults.MOMENTUM)
    generator = torch.Generator().manual_seed(defaults.SEED)
    x_train = normalize(ds.x_train, "mnist")
    y_train = torch.as_tensor(ds.y_train, dtype=torch.long)
    config = {"dataset": "mnist", "probes": args.probes, "shift": args.shift, "epochs": args.epochs,
              "lr": defaults.LR, "momentum": defaults.MOMENTUM, "batch_size": defaults.BATCH_SIZE,
              "trainer": "benchmarks/bench_scale.py", "torch": torch.__version__}
    rec = Recorder(model, out, probes=probes, class_names=ds.class_names, dataset="mnist",
                   images=images, probe_indices=indices, config=config)
    rows = []
    try:
        t0 = time.perf_counter()
        rec.record(0)
        rows.append((0, 0.0, time.perf_counter() - t0))
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            for batch in torch.randperm(len(y_train), generator=generator).split(defaults.BATCH_SIZE):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
                opt.step()
            t1 = time.perf_counter()
            metrics = rec.record(epoch)
            rows.append((epoch, t1 - t0, time.perf_counter() - t1))
            print(f"epoch {epoch}: trained {t1 - t0:.1f} s, recorded {rows[-1][2]:.1f} s, test accuracy "
                  f"{metrics['test']['accuracy']:.4f}, shifted {metrics['shifted']['accuracy']:.4f}", flush=True)
    finally:
        rec.writer.close()
    run_mb = _size_mb(out)
    report = {"probes": {s: int(len(v)) for s, v in labels.items()}, "epochs": rows, "run_mb": round(run_mb, 1)}
    if not args.no_align:
        t0 = time.perf_counter()
        align_run(out, epochs=[0], progress=False)
        first = time.perf_counter() - t0
        further = []
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            align_run(out, epochs=[epoch], progress=False)
            further.append(time.perf_counter() - t0)
        report.update(align_fit_and_epoch0_s=round(first, 1), align_further_epoch_s=[round(t, 1) for t in further],
                      alignment_mb=round(_size_mb(out / "alignment"), 1))
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    print(json.dumps(report, indent=1))
    for epoch, train_s, record_s in rows[1:]:
        print(f"epoch {epoch}: train {train_s:.1f} s + record {record_s:.1f} s", end="")
        if "align_further_epoch_s" in report:
            a = report["align_further_epoch_s"][epoch - 1]
            print(f", align {a:.1f} s = {100 * a / (train_s + record_s):.1f} % of train + record, "
                  f"{100 * a / train_s:.1f} % of training", end="")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
