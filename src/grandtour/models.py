"""The article's networks, and the per-dataset input normalisation.

Each network is an ``nn.Sequential`` with named children, so every layer the article
shows is a module with a stable name (``conv1``, ``pool1``, ``relu1``, ...) that the
:class:`~grandtour.record.Recorder` hooks. The networks output **logits**: the softmax
the article draws last is added by the Recorder as a pseudo-layer, and the loss is the
cross-entropy of the logits.

The logit ReLU
--------------
The article's MNIST network has a ReLU between the last linear layer and the softmax
(``relu4``; its published activations show it). It is kept by default, to reproduce
the article, and ``logit_relu=False`` drops it. It matters: a logit clipped at zero for
every example gets no gradient through the ReLU, so its class can stay unlearnt for
many epochs and then revive suddenly. With it, one to three classes of full MNIST
reached 50 % test accuracy only at epochs 7 to 35 in 4 of 6 seeds (SGD lr 0.01,
momentum 0.5, batch 64); without it every class did at epoch 1. The article's "digit 1
at epoch 14, digit 7 at epoch 21" is this mechanism, and it depends on the seed. The
CIFAR-10 network ends in a plain linear layer in the article, so it has no logit ReLU.

Example
-------
>>> import numpy as np
>>> model = build_model("mnist")
>>> x = normalize(np.zeros((2, 1, 28, 28), np.uint8), "mnist")
>>> tuple(model(x).shape)
(2, 10)
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

__all__ = ["INPUT_SHAPES", "MEAN_STD", "build_model", "normalize"]

#: Per-example input shape (C, H, W) of each dataset.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}

#: Per-channel mean and standard deviation of the training images scaled to [0, 1].
#: MNIST, Fashion-MNIST and CIFAR-10: the usual constants of their training sets.
#: digits: computed once from scikit-learn's 1797 8x8 images, scaled 0..16 -> 0..255
#: (rounded) -> [0, 1]; fixed here so the normalisation never depends on the split.
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "digits": ((0.3053,), (0.3759,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def _check_dataset(dataset: str) -> str:
    if dataset not in INPUT_SHAPES:
        raise ValueError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(sorted(INPUT_SHAPES))}"
        )
    return dataset


def normalize(x_uint8: np.ndarray | torch.Tensor, dataset: str) -> torch.Tensor:
    """Scale uint8 images to [0, 1] and standardise each channel.

    Done outside the model, so the recorded ``input`` layer is exactly what the first
    layer sees.

    Parameters
    ----------
    x_uint8 : ndarray or Tensor of shape (N, C, H, W), dtype uint8
        Images with values 0..255.
    dataset : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.

    Returns
    -------
    Tensor of shape (N, C, H, W), float32
        ``(x / 255 - mean[c]) / std[c]``, on the device of ``x_uint8`` (CPU for arrays).
    """
    _check_dataset(dataset)
    x = torch.as_tensor(x_uint8)
    if x.dtype != torch.uint8:
        raise ValueError(f"normalize expects uint8 images (0..255), got dtype {x.dtype}")
    channels = INPUT_SHAPES[dataset][0]
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"normalize expects images of shape (N, {channels}, H, W) for {dataset}, "
            f"got {tuple(x.shape)}"
        )
    mean, std = MEAN_STD[dataset]
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.to(torch.float32) / 255.0 - mean_t) / std_t


def _mnist_net(logit_relu: bool) -> list[tuple[str, nn.Module]]:
    # (1,28,28) -conv5-> (10,24,24) -pool-> (10,12,12) -conv5-> (20,8,8) -pool-> (20,4,4)
    return [
        ("conv1", nn.Conv2d(1, 10, kernel_size=5)),
        ("pool1", nn.MaxPool2d(2)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(10, 20, kernel_size=5)),
        ("pool2", nn.MaxPool2d(2)),
        ("relu2", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(320, 50)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(50, 10)),
        *([("relu4", nn.ReLU())] if logit_relu else []),
    ]


def _digits_net(logit_relu: bool) -> list[tuple[str, nn.Module]]:
    # The MNIST net scaled to 8x8: padded 3x3 convolutions keep the size, pooling halves it.
    # (1,8,8) -> (10,8,8) -> (10,4,4) -> (20,4,4) -> (20,2,2) -> 80
    return [
        ("conv1", nn.Conv2d(1, 10, kernel_size=3, padding=1)),
        ("pool1", nn.MaxPool2d(2)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(10, 20, kernel_size=3, padding=1)),
        ("pool2", nn.MaxPool2d(2)),
        ("relu2", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(80, 50)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(50, 10)),
        *([("relu4", nn.ReLU())] if logit_relu else []),
    ]


def _cifar_net() -> list[tuple[str, nn.Module]]:
    # The article's CIFAR-10 order: Conv, ReLU, MaxPool, Conv, ReLU, MaxPool, Linear, ReLU,
    # Linear, ReLU, Linear. Widths as in LeNet-5 (120, 84); flatten is 20*5*5 = 500.
    # (3,32,32) -> (10,28,28) -> (10,14,14) -> (20,10,10) -> (20,5,5) -> 500
    return [
        ("conv1", nn.Conv2d(3, 10, kernel_size=5)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(10, 20, kernel_size=5)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(500, 120)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)),
        ("relu4", nn.ReLU()),
        ("fc3", nn.Linear(84, 10)),
    ]


def build_model(dataset: str, *, logit_relu: bool = True) -> nn.Sequential:
    """The article's network for ``dataset``, outputting logits.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` and ``"fashion-mnist"`` (the same network), ``"cifar10"`` or
        ``"digits"`` (the MNIST network scaled to 8x8 images).
    logit_relu : bool, default True
        Keep the ReLU between the last linear layer and the softmax (``relu4``) of the
        MNIST and digits networks, as in the article; see the module docstring for why
        you may want to drop it. The CIFAR-10 network has none either way.

    Returns
    -------
    nn.Sequential
        Named children in network order. Layer names and per-example output shapes:

        - mnist, fashion-mnist: conv1 (10,24,24), pool1 (10,12,12), relu1,
          conv2 (20,8,8), pool2 (20,4,4), relu2, flatten (320), fc1 (50), relu3,
          fc2 (10), relu4.
        - digits: conv1 (10,8,8), pool1 (10,4,4), relu1, conv2 (20,4,4),
          pool2 (20,2,2), relu2, flatten (80), fc1 (50), relu3, fc2 (10), relu4.
        - cifar10: conv1 (10,28,28), relu1, pool1 (10,14,14), conv2 (20,10,10), relu2,
          pool2 (20,5,5), flatten (500), fc1 (120), relu3, fc2 (84), relu4, fc3 (10).

        The weights are PyTorch's default initialisation: seed ``torch.manual_seed``
        first for a reproducible network.
    """
    _check_dataset(dataset)
    if dataset in ("mnist", "fashion-mnist"):
        layers = _mnist_net(logit_relu)
    elif dataset == "digits":
        layers = _digits_net(logit_relu)
    else:
        layers = _cifar_net()
    return nn.Sequential(OrderedDict(layers))
