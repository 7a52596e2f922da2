"""Recording overhead and store figures, measured side by side in one run.

Trains the article's Fashion-MNIST (or MNIST) network on the full training set and
times epochs with and without a Recorder (the article's probe sizes: 1000 train + 1000
test examples, every layer), alternating the two so machine noise hits both alike.
Then reports the store's size per epoch and the time to read one (layer, epoch, split)
slice.

    python benchmarks/bench_record.py --dataset fashion-mnist --epochs 2
    python benchmarks/bench_record.py --dataset mnist --data-dir DIR
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each kind (default 2)")
    ap.add_argument("--probe-size", type=int, default=1000)
    args = ap.parse_args()

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
