"""Recording overhead and store figures, measured side by side in one run.

Trains the article's Fashion-MNIST (or MNIST) network on the full training set and
times epochs with and without a Recorder (the article's probe sizes: 1000 train + 1000
test examples, every layer), alternating the two so machine noise hits both alike.
Then reports the store's size per epoch and the time to read one (layer, epoch, split)
slice.

    python benchmarks/bench_record.py --dataset fashion-mnist --epochs 2
    python benchmarks/bench_record.py --dataset mnist --data-dir DIR
    python benchmarks/bench_record.py --graph        # any model: record and align times

``--graph`` times, for each model of ``tests/graph_models.py`` (trained on the digits)
and for a ResNet-18-shaped network (random init, 3x32x32 inputs, 1000 probes): an epoch
of training, ``record()`` of an epoch (the graph's every layer) and ``align_run`` of one
epoch (every transition, from every input of every merge).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from grandtour.data import load_dataset
from grandtour.models import build_model, normalize
from grandtour.record import Recorder, select_probes
from grandtour.store import Run


def train_epoch(model, opt, x, y, batch, gen):
    model.train()
    order = torch.randperm(len(x), generator=gen)
    for k in range(0, len(x), batch):
        idx = order[k:k + batch]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def graph_figures(resnet_layers: str) -> None:
    """Record and align times per epoch for the graph tests' models and a ResNet-18 shape."""
    import sys
    import warnings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from graph_models import MODELS, resnet18

    from grandtour.align import Aligner, AlignmentWarning, align_run
    from grandtour.capture import Capture

    ds = load_dataset("digits")
    x, y = normalize(ds.x_train, "digits"), torch.as_tensor(ds.y_train)
    probes = {"train": (x[:500], ds.y_train[:500]),
              "test": (normalize(ds.x_test, "digits")[:500], ds.y_test[:500])}
    print(f"torch threads {torch.get_num_threads()}; digits: {len(x)} training examples, "
          "1000 probes (500 train + 500 test)")
    print()
    print("| model | layers | epoch of training | record() | overhead | align one epoch | exact / transitions |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = [(name, build, output, x, y, probes, None) for name, (build, output, _) in MODELS.items()]
    gen = torch.Generator().manual_seed(0)
    big = torch.randn(1000, 3, 32, 32, generator=gen)
    big_probes = {"train": (big[:500], np.arange(500) % 1000), "test": (big[500:], np.arange(500) % 1000)}
    rows.append(("resnet-18 shape, 32x32", resnet18, None, None, None, big_probes,
                 None if resnet_layers == "all" else "blocks"))
    for name, build, output, xs, ys, pr, layer_choice in rows:
        torch.manual_seed(0)
        model = build()
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", AlignmentWarning)
            layers = None
            if layer_choice == "blocks":
                names = Capture(model, pr["train"][0][:3]).names
                layers = [n for n in names if n in ("input", "relu", "pool", "fc", "softmax")
                          or n.endswith(".act2")]
            rec = Recorder(model, Path(tmp) / "run", probes=pr, output=output, layers=layers)
            rec.record(0)
            train = float("nan")
            if xs is not None:
                opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
                t0 = time.perf_counter()
                model.train()
                for idx in torch.randperm(len(xs), generator=gen).split(32):
                    out = model(xs[idx])
                    opt.zero_grad()
                    F.cross_entropy(out if output is None else output(out), ys[idx]).backward()
                    opt.step()
                train = time.perf_counter() - t0
            t0 = time.perf_counter()
            rec.record(1)
            record = time.perf_counter() - t0
            align_run(Path(tmp) / "run", epochs=[0], progress=False)  # reductions fitted here
            t0 = time.perf_counter()
            align_run(Path(tmp) / "run", epochs=[1], progress=False)
            align = time.perf_counter() - t0
            doc = Aligner(Run.open(Path(tmp) / "run")).store.commit["epochs"]["1"]
            entries = list(doc["layers"].values()) + [e for b in doc.get("branches", {}).values()
                                                      for e in b.values()]
            exact = sum(bool(e["exact"]) for e in entries)
        over = f"{100 * record / train:.0f} %" if train == train else "-"
        tr = f"{train:.2f} s" if train == train else "-"
        print(f"| {name} | {len(rec.layers)} | {tr} | {record:.2f} s | {over} | {align:.2f} s | "
              f"{exact} / {len(entries)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each kind (default 2)")
    ap.add_argument("--probe-size", type=int, default=1000)
    ap.add_argument("--graph", action="store_true", help="record and align times of any-model networks")
    ap.add_argument("--resnet-layers", default="blocks", choices=("blocks", "all"),
                    help="ResNet-18 shape: record the block outputs (default) or every layer")
    args = ap.parse_args()
    if args.graph:
        graph_figures(args.resnet_layers)
        return

    ds = load_dataset(args.dataset, args.data_dir)
    x = normalize(ds.x_train, args.dataset)
    y = torch.as_tensor(ds.y_train)
    xt = normalize(ds.x_test, args.dataset)
    ptr = select_probes(ds.y_train, args.probe_size, seed=0)
    pte = select_probes(ds.y_test, args.probe_size, seed=0)
    probes = {"train": (x[ptr], ds.y_train[ptr]), "test": (xt[pte], ds.y_test[pte])}
    torch.manual_seed(0)
    model = build_model(args.dataset)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    gen = torch.Generator().manual_seed(0)
    print(f"{args.dataset}: {len(x)} training examples, torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        run_path = Path(tmp) / "run"
        t0 = time.perf_counter()
        rec = Recorder(model, run_path, probes=probes, dataset=args.dataset,
                       class_names=list(ds.class_names),
                       images={"train": ds.x_train[ptr], "test": ds.x_test[pte]})
        rec.record(0)
        first_record = time.perf_counter() - t0
        size_after_0 = dir_size(run_path)

        train_epoch(model, opt, x, y, 64, gen)  # warm-up, not timed (allocator, caches)
        plain, recorded, record_only = [], [], []
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            train_epoch(model, opt, x, y, 64, gen)
            plain.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            train_epoch(model, opt, x, y, 64, gen)
            t1 = time.perf_counter()
            rec.record(epoch)
            t2 = time.perf_counter()
            recorded.append(t2 - t0)
            record_only.append(t2 - t1)
            plain.append(t1 - t0)  # the training part of a recorded epoch is plain training too
        size_total = dir_size(run_path)

        run = Run.open(run_path)
        last = run.epochs[-1]
        reads = {}
        for layer in ("conv1", "fc1", "softmax"):
            t0 = time.perf_counter()
            for _ in range(5):
                run.activations(layer, last, "test")
            reads[layer] = (time.perf_counter() - t0) / 5

    # The overhead is record()'s time over an epoch's training time, both medians: the
    # difference of two epoch totals would drown in this machine's noise.
    p, r, ro = np.median(plain), np.median(recorded), np.median(record_only)
    dims = sum(layer.dim for layer in rec.layers if layer.name != "input")
    per_epoch = (size_total - size_after_0) / args.epochs
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| epoch of training (median of {len(plain)}) | {p:.2f} s |")
    print(f"| epoch of training + record() (median of {len(recorded)}) | {r:.2f} s |")
    print(f"| record() alone (median of {len(record_only)}) | {ro:.2f} s |")
    print(f"| overhead: record() / epoch of training | {100 * ro / p:.1f} % |")
    print(f"| first record (epoch 0, includes the static input and probe images) | {first_record:.2f} s |")
    print(f"| recorded dims per example (all layers but the input) | {dims} |")
    print(f"| store size per epoch | {per_epoch / 2**20:.1f} MiB "
          f"(float16 raw: {2 * dims * 2 * args.probe_size / 2**20:.1f} MiB) |")
    for layer, t in reads.items():
        d = run.layer(layer).dim
        print(f"| read one slice: {layer} ({args.probe_size} x {d}) | {1e3 * t:.1f} ms |")


if __name__ == "__main__":
    main()
