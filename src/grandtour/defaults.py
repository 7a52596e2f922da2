"""Every default setting of grandtour, each stated once.

The command line (:mod:`grandtour.cli`), the library functions and ``grandtour demo`` read
their defaults from here, so that a flag left out, a keyword left out and the demo mean the
same value. This module imports nothing (not even numpy): ``grandtour --help`` and a
numpy-only install can read it.

Why the training values are what they are is told where they act
(:mod:`grandtour.train`, :mod:`grandtour.demo`); here each has one line.
"""

from __future__ import annotations

__all__ = [
    "ALIGN_CHECK_POINTS",
    "ALIGN_THRESHOLD",
    "ARTICLE_EPOCHS",
    "BATCH_SIZE",
    "CHUNK_BYTES",
    "COMPARE_METHODS",
    "COMPARE_PCA_DIMS",
    "DATASET",
    "DATASETS",
    "DATASET_TRAINING",
    "DEMO_ADVERSARIAL",
    "DEMO_EPOCHS",
    "DEMO_OUT",
    "DEMO_TRAINING",
    "DEVICE",
    "DTSNE_LAMBDA",
    "EPOCHS",
    "EXPORT_MAX_MB",
    "FGSM_EPS",
    "FGSM_SOURCE",
    "FGSM_STEPS",
    "FGSM_TARGET",
    "FORWARD_BATCH",
    "FPS",
    "FRAMES",
    "HOST",
    "LOGIT_RELU",
    "LR",
    "MOMENTUM",
    "PORT",
    "PROBE_SIZE",
    "REMOTE_LOCK_LEASE_S",
    "SEED",
    "TSNE_PERPLEXITY",
    "UMAP_NEIGHBORS",
    "VIDEO_ANIMATE",
    "VIDEO_ANIMATIONS",
    "VIDEO_SECONDS",
    "VIDEO_SIZE",
    "WIDGET_HEIGHT",
    "training_defaults",
]

# --------------------------------------------------------------------------- datasets

#: The datasets grandtour can load and train on (``grandtour train --dataset``).
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
#: The dataset ``grandtour train`` trains on when none is given.
DATASET = "digits"

# --------------------------------------------------------------------------- training

#: Training epochs of the article's networks.
ARTICLE_EPOCHS = 99
#: Training epochs per dataset: the article's, and 30 for the small digits network.
EPOCHS: dict[str, int] = {"digits": 30, "mnist": ARTICLE_EPOCHS,
                          "fashion-mnist": ARTICLE_EPOCHS, "cifar10": ARTICLE_EPOCHS}
#: Probe examples per split, class-balanced, recorded at every epoch.
PROBE_SIZE = 1000
#: Seed of the weights, the shuffling and the probe choice.
SEED = 0
#: Where training and the adversarial steps run.
DEVICE = "cpu"
#: SGD batch size (the classic PyTorch MNIST example's).
BATCH_SIZE = 64
#: SGD learning rate (the classic PyTorch MNIST example's).
LR = 0.01
#: SGD momentum (the classic PyTorch MNIST example's).
MOMENTUM = 0.5
#: Keep the article's ReLU between the last linear layer and the softmax.
LOGIT_RELU = True
#: Per-dataset settings that differ from the ones above (digits: see grandtour.train.command).
DATASET_TRAINING: dict[str, dict] = {"digits": {"logit_relu": False, "lr": 0.05}}

# --------------------------------------------------------------------------- recording

#: Inputs per forward pass when activations are computed (Recorder, FGSM steps).
FORWARD_BATCH = 512
#: Target size of one chunk of a stored array, in bytes (the run store).
CHUNK_BYTES = 64 * 2**20

# --------------------------------------------------------------------------- adversarial

#: Class the iterative FGSM perturbs: the article's digit 8.
FGSM_SOURCE = 8
#: Class it pushes the examples toward: the article's digit 0.
FGSM_TARGET = 0
#: Number of FGSM steps, every one recorded.
FGSM_STEPS = 100
#: L-infinity size of one step, in [0, 1] pixel units.
FGSM_EPS = 0.01

# --------------------------------------------------------------------------- alignment

#: Layers wider than this many coordinates are shown in a fixed linear reduction.
ALIGN_THRESHOLD = 256
#: Probe points (a fixed, seeded sample) on which each transition is checked against the data.
ALIGN_CHECK_POINTS = 256

# --------------------------------------------------------------------------- viewer

#: Address the viewer's server binds: loopback, so runs are not exposed.
HOST = "127.0.0.1"
#: Port the viewer's server tries first (then the next free ones).
PORT = 8787

# --------------------------------------------------------------------------- figures

#: Frames of an animation (GIF or PNG frames).
FRAMES = 120
#: Frames per second of an animation.
FPS = 30

# --------------------------------------------------------------------------- the demo

#: Where ``grandtour demo`` writes its run and figures.
DEMO_OUT = "grandtour-demo"
#: Training epochs of the demo: the digits network's.
DEMO_EPOCHS = EPOCHS["digits"]
#: The demo trains the digits network with ``grandtour train --dataset digits``'s settings.
DEMO_TRAINING: dict = {"batch_size": BATCH_SIZE, "momentum": MOMENTUM,
                       **DATASET_TRAINING["digits"]}
#: The demo's adversarial steps: the article's 8 -> 0.
DEMO_ADVERSARIAL: dict = {"source": FGSM_SOURCE, "target": FGSM_TARGET, "steps": FGSM_STEPS,
                          "eps": FGSM_EPS}


def training_defaults(dataset: str) -> dict:
    """The training settings of ``dataset`` when none are given.

    Parameters
    ----------
    dataset : str
        A name of :data:`DATASETS` (another name gets the article's settings).

    Returns
    -------
    dict
        ``epochs``, ``probe_size``, ``seed``, ``batch_size``, ``lr``, ``momentum`` and
        ``logit_relu``: :data:`DATASET_TRAINING` over the general defaults.
    """
    return {"epochs": EPOCHS.get(dataset, ARTICLE_EPOCHS), "probe_size": PROBE_SIZE,
            "seed": SEED, "batch_size": BATCH_SIZE, "lr": LR, "momentum": MOMENTUM,
            "logit_relu": LOGIT_RELU, **DATASET_TRAINING.get(dataset, {})}

# --------------------------------------------------------------------------- comparisons

#: The embeddings ``grandtour compare`` makes when ``--methods`` is not given.
COMPARE_METHODS: tuple[str, ...] = ("linear", "pca", "tsne", "dtsne", "umap")
#: t-SNE's and dynamic t-SNE's perplexity (openTSNE's default).
TSNE_PERPLEXITY = 30.0
#: Dynamic t-SNE's weight of the temporal-coherence term (lambda in Rauber et al. 2016).
DTSNE_LAMBDA = 0.003
#: UMAP's neighbourhood size (umap-learn's default).
UMAP_NEIGHBORS = 15
#: Layers wider than this are first reduced to this many principal components before
#: t-SNE and UMAP (the usual practice; the Grand Tour's "linear" and "pca" use all of them).
COMPARE_PCA_DIMS = 50

# --------------------------------------------------------------------------- object storage

#: Seconds a run's writer lock on object storage (a lease object) stays valid without a
#: renewal; the holder renews it every third of that. Environment: GRANDTOUR_LOCK_LEASE_S.
REMOTE_LOCK_LEASE_S = 30.0

# --------------------------------------------------------------------------- exports

#: The largest HTML export ``grandtour export --html`` writes without ``--max-size``, in MB
#: (10**6 bytes): the estimate is checked before anything is encoded.
EXPORT_MAX_MB = 200.0
#: What ``grandtour export --video`` can animate, what it does by default, for how long,
#: and its frame size.
VIDEO_ANIMATIONS = ("tour", "epochs", "layers", "adversarial")
VIDEO_ANIMATE = "tour"
VIDEO_SECONDS = 10.0
VIDEO_SIZE = (1280, 720)
#: The notebook widget's height in CSS pixels (its width is the cell's).
WIDGET_HEIGHT = 640
