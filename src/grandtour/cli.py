"""The ``grandtour`` command line.

Each sub-command's arguments are declared here, and its work is done by a function
in the module named for the concept (``grandtour.train.train_command``, ...), imported
only when that command runs: ``grandtour --help`` works on a numpy-only install, and
PyTorch is loaded only by the commands that need it. Every default a flag stands for is
read from :mod:`grandtour.defaults`, the one place it is stated.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from grandtour import __version__, defaults
from grandtour.errors import GrandTourError

DATASETS = defaults.DATASETS


# What the extras install: a missing one is a message naming the extra, not a traceback.
_EXTRAS_PACKAGES = frozenset({"torch", "zarr", "matplotlib", "sklearn", "tqdm", "fastapi", "uvicorn", "PIL", "scipy",
                              "openTSNE", "umap"})


def _handler(module: str, function: str):
    def run(args: argparse.Namespace) -> int | None:
        return getattr(importlib.import_module(module), function)(args)

    return run


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory holding the dataset's files (IDX .gz files for mnist and "
        "fashion-mnist, cifar-10-batches-py for cifar10); default: the usual places, "
        "listed in the error message if nothing is found",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch the dataset from its official source if it is not found (needs internet)",
    )


def _per_dataset(key: str) -> str:
    """``"; 0.05 for digits"``: the datasets whose default ``key`` differs, for a help text."""
    values = {}
    for name in DATASETS:
        value = defaults.training_defaults(name)[key]
        if value != defaults.training_defaults("")[key]:
            values.setdefault(value, []).append(name)
    return "".join(f"; {v} for {', '.join(names)}" for v, names in values.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grandtour",
        description="See what a neural network does with the Grand Tour "
        "(Li, Zhao, Scheidegger, Distill 2020).",
    )
    parser.add_argument("--version", action="version", version=f"grandtour {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="train a small network on 8x8 digits, record it, and show it",
        description="Train the digits network, record every layer at every epoch, run "
        "the adversarial steps, and render the Grand Tour of the result.",
    )
    p.add_argument("--out", default=defaults.DEMO_OUT, metavar="DIR",
                   help="where the run and the figures go (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=defaults.DEMO_EPOCHS,
                   help="training epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.SEED,
                   help="random seed (default: %(default)s)")
    p.add_argument("--frames", type=int, default=defaults.FRAMES,
                   help="frames per animation (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo run")
    p.add_argument("--no-serve", dest="serve", action="store_false",
                   help="stop after writing the run and the figures instead of opening the viewer")
    p.add_argument("--port", type=int, default=None,
                   help=f"viewer port (default: {defaults.PORT} or the next free one)")
    p.add_argument("--no-browser", action="store_true", help="serve the viewer without opening a browser")
    p.set_defaults(func=_handler("grandtour.demo", "demo_command"))

    p = sub.add_parser(
        "train",
        help="train one of the article's networks, recording every layer into a run",
        description="Train a network with every layer's output on fixed probe sets "
        "recorded at every epoch (epoch 0 is the untrained network).",
    )
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help=f"default: {defaults.DATASET} (with --resume: the run's own)")
    _add_data_dir(p)
    p.add_argument("--out", required=True, metavar="RUN",
                   help="run directory to write, or a URL (s3://bucket/runs/x; credentials from the environment)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default: {defaults.ARTICLE_EPOCHS} as in the article"
                   f"{_per_dataset('epochs')})")
    p.add_argument("--probe-size", type=int, default=None,
                   help=f"probe examples per split, class-balanced (default: "
                   f"{defaults.PROBE_SIZE})")
    p.add_argument("--seed", type=int, default=None,
                   help=f"random seed (default: {defaults.SEED})")
    p.add_argument("--device", default=defaults.DEVICE,
                   help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"default: {defaults.BATCH_SIZE}{_per_dataset('batch_size')}")
    p.add_argument("--lr", type=float, default=None,
                   help=f"SGD learning rate (default: {defaults.LR}{_per_dataset('lr')})")
    p.add_argument("--momentum", type=float, default=None,
                   help=f"SGD momentum (default: {defaults.MOMENTUM}{_per_dataset('momentum')})")
    p.add_argument("--logit-relu", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the ReLU between the last linear layer and the softmax, as the "
                   "article's MNIST network has it (default: on; off for digits, where it "
                   "leaves classes unlearnt)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last completed epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="skip precomputing the layer transitions (run `grandtour align` later)")
    p.set_defaults(func=_handler("grandtour.train", "train_command"))

    p = sub.add_parser(
        "adversarial",
        help="iterative FGSM on a trained run, every step of every layer recorded",
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `grandtour train`")
    _add_data_dir(p)
    p.add_argument("--source", default=str(defaults.FGSM_SOURCE),
                   help="class to perturb, by index or name (default: %(default)s)")
    p.add_argument("--target", default=str(defaults.FGSM_TARGET),
                   help="class to push toward (default: %(default)s)")
    p.add_argument("--steps", type=int, default=defaults.FGSM_STEPS,
                   help="FGSM steps (default: %(default)s)")
    p.add_argument("--eps", type=float, default=defaults.FGSM_EPS,
                   help="L-infinity step per iteration, in [0, 1] pixel units (default: %(default)s)")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the weights (default: last)")
    p.add_argument("--device", default=defaults.DEVICE,
                   help="cpu, cuda or cuda:N (default: %(default)s)")
    p.set_defaults(func=_handler("grandtour.adversarial", "adversarial_command"))

    p = sub.add_parser(
        "align",
        help="precompute the layer transitions (SVD alignment) of a run for the viewer",
        description="Align every pair of consecutive layers by the SVD of the map between "
        "them, once per run, and store the result in the run so that the viewer only reads.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--epochs", type=int, nargs="*", default=None,
                   help="epochs to align (default: all)")
    p.add_argument("--threshold", type=int, default=defaults.ALIGN_THRESHOLD,
                   help="layers wider than this are shown in a fixed reduction (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute what is already stored")
    p.add_argument("--dask", default=None, metavar="SCHEDULER",
                   help="spread the epochs over a Dask cluster: a scheduler address (tcp://host:8786) or "
                   "local:N for N worker processes on this machine; the result is the serial one")
    p.set_defaults(func=_handler("grandtour.align", "align_command"))

    p = sub.add_parser(
        "serve",
        help="open runs in the viewer (a local web page)",
        description="Serve the viewer and the given runs on a local web server, and open "
        "it in the browser.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (several can be picked in the page)")
    p.add_argument("--host", default=defaults.HOST,
                   help="address to bind (default: %(default)s; any other lets other machines reach the "
                   "viewer, with a token)")
    p.add_argument("--port", type=int, default=None,
                   help=f"port (default: {defaults.PORT}, or the next free one; 0 = any free port)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="also answer requests addressed to HOST (the name a proxy or tunnel forwards); "
                   "repeatable; asks for a token")
    p.add_argument("--token", default=None,
                   help="access token asked of every request (default: $GRANDTOUR_TOKEN, or one generated "
                   "and printed when bound beyond loopback or with --allow-host)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=_handler("grandtour.server", "serve_command"))

    p = sub.add_parser(
        "import",
        help="make a run from activations recorded elsewhere (.npz)",
        description="Make a run store from a .npz file of activations; see docs/store.md "
        "for the expected keys.",
    )
    p.add_argument("npz", help="the .npz file")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")
    p.set_defaults(func=_handler("grandtour.store", "import_command"))

    p = sub.add_parser(
        "compare",
        help="embed a layer by t-SNE, dynamic t-SNE, UMAP, PCA and the Grand Tour's projection; "
        "print how faithfully each shows each epoch's change",
        description="Embed a layer at each epoch by each method, keep the pictures in the run "
        "(resumable), and print per method the time per epoch and the data-visual "
        "correspondence of each epoch step (docs/compare.md).",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--layer", default=None, help="layer to embed (default: the last before the softmax)")
    p.add_argument("--split", default=None, help="probe split (default: test, else the run's first)")
    p.add_argument("--epochs", type=int, nargs="*", default=None, help="epochs (default: all)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated, of linear, pca, tsne, dtsne, umap (default: "
                   f"{','.join(defaults.COMPARE_METHODS)})")
    p.add_argument("--hybrid", default=None, metavar="umap:K",
                   help="also make the article's hybrid: UMAP to K dimensions, for the Grand Tour to run on")
    p.add_argument("--seed", type=int, default=defaults.SEED, help="random seed (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute what is already stored")
    p.add_argument("--dask", default=None, metavar="SCHEDULER",
                   help="spread the (method, epoch) embeddings over a Dask cluster, as align --dask does: "
                   "tcp://host:8786 or local:N; dtsne is one task (its epochs are embedded jointly); "
                   "the pictures are the serial ones")
    p.set_defaults(func=_handler("grandtour.compare.command", "compare_command"))

    p = sub.add_parser("info", help="summarise a run: layers, epochs, splits, metrics")
    p.add_argument("run", metavar="RUN")
    p.set_defaults(func=_handler("grandtour.store", "info_command"))

    p = sub.add_parser("check", help="verify a whole run: checksums, metadata, chunks; list what is damaged",
                       description="Read every committed chunk and record of a run and check it; exit 0 "
                       "if the run is intact, 1 if something is damaged (listed), 2 if it is not a run.")
    p.add_argument("run", metavar="RUN")
    p.set_defaults(func=_handler("grandtour.store", "check_command"))

    p = sub.add_parser(
        "export",
        help="save the viewer as one HTML file (data inside, no server) or as a video",
        description="Write the viewer of a run as one self-contained HTML file that opens from disk "
        "(--html), or a video of the viewer's picture (--video).",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--html", metavar="OUT.html", help="write the viewer with the run's data embedded (float16)")
    p.add_argument("--layers", nargs="+", metavar="LAYER", help="layers to include (default: all)")
    p.add_argument("--epochs", nargs="+", type=int, metavar="EPOCH", help="epochs to include (default: all)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to include (default: all)")
    p.add_argument("--max-size", type=float, default=defaults.EXPORT_MAX_MB, metavar="MB",
                   help="refuse an HTML export estimated larger than this (default: %(default)s MB)")
    p.add_argument("--video", metavar="OUT.mp4|OUT.gif", help="write a video of the viewer (MP4 or GIF)")
    p.add_argument("--preset", metavar="VIEW.json", help="the view to film, saved with the page's Save view")
    p.add_argument("--animate", choices=defaults.VIDEO_ANIMATIONS, default=defaults.VIDEO_ANIMATE,
                   help="what moves in the video (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=defaults.VIDEO_SECONDS,
                   help="video length (default: %(default)s)")
    p.add_argument("--fps", type=int, default=defaults.FPS, help="frames per second (default: %(default)s)")
    p.add_argument("--size", default="{}x{}".format(*defaults.VIDEO_SIZE), metavar="WxH",
                   help="frame size in pixels (default: %(default)s)")
    p.set_defaults(func=_handler("grandtour.export.command", "export_command"))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GrandTourError as err:
        print(f"grandtour {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in _EXTRAS_PACKAGES:
            print(
                f"grandtour {args.command}: error: this command needs the Python package "
                f"'{err.name.split('.')[0]}'. Install the extras: pip install 'grandtour[all]' "
                "(with PyTorch pinned to the build you want, e.g. torch==2.13.0 for the CPU).",
                file=sys.stderr,
            )
            return 2
        raise
    except BrokenPipeError:  # `grandtour info RUN | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"grandtour {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
