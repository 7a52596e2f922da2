"""``grandtour compare RUN``: embed a layer by each method and print how faithful each is."""

from __future__ import annotations

import math
from itertools import pairwise

from grandtour.compare.correspondence import correspondence
from grandtour.compare.embed import check_epochs, embed, open_run, stored_seconds
from grandtour.compare.methods import check_method
from grandtour.errors import GrandTourError


def default_layer(run) -> str:
    """The layer compared when none is given: the last non-softmax layer (the article's)."""
    names = [layer.name for layer in run.layers if layer.kind != "softmax" and not layer.static]
    if not names:
        names = run.layer_names
    return names[-1]


def parse_methods(text: str | None) -> list[str]:
    from grandtour import defaults

    if not text:
        return list(defaults.COMPARE_METHODS)
    chosen = [m.strip() for m in str(text).split(",") if m.strip()]
    if not chosen:
        raise GrandTourError("--methods needs at least one method")
    return [check_method(m) for m in chosen]


def compare_command(args) -> int:
    """``grandtour compare RUN [--layer L] [--split S] [--epochs E ...] [--methods ...] [--hybrid umap:k]
    [--dask SCHEDULER]``."""
    from grandtour.compare.hybrid import CAVEAT, hybrid, parse_hybrid

    run = open_run(args.run)
    split = args.split or ("test" if "test" in run.splits else run.splits[0])
    run.check_split(split)
    layer = args.layer or default_layer(run)
    run.layer(layer)
    chosen = parse_methods(args.methods)
    hybrid_dims = parse_hybrid(args.hybrid)[1] if args.hybrid else None
    epochs = check_epochs(run, args.epochs or None)
    force = bool(getattr(args, "force", False))
    print(f"compare {layer} of {run.path} ({split}, N={run.size(split)}), epochs "
          f"{', '.join(map(str, epochs))}")
    if getattr(args, "dask", None):
        from grandtour.compare.distributed import embed_dask

        tasks = embed_dask(run, layer, chosen, epochs, split, args.dask, seed=args.seed, force=force)
        print(f"  embedded on the Dask cluster {args.dask}: {tasks} task(s)")
        force = False  # done: what follows reads the stored pictures
    steps = list(pairwise(epochs))
    for method in chosen:
        embed(run, layer, method, epochs, split, seed=args.seed, force=force)
        seconds = stored_seconds(run, layer, method, split)
        mean = sum(seconds[e] for e in epochs) / len(epochs)
        print(f"  {method}: {mean:.3f} s per epoch")
        for a, b in steps:
            value = correspondence(run, layer, a, b, method, split, seed=args.seed)
            print(f"    {a} -> {b}  correspondence {'n/a' if math.isnan(value) else f'{value:.3f}'}")
    if hybrid_dims is not None:
        hybrid(run, layer, hybrid_dims, epochs, split, seed=args.seed)
        print(f"  hybrid umap:{hybrid_dims}: stored as a derived layer of {layer} ({CAVEAT})")
    return 0
