"""Checking training settings, the device and the dataset at the boundary, before any work."""

from __future__ import annotations

import math

import numpy as np
import torch

from grandtour.errors import GrandTourError
from grandtour.models import INPUT_SHAPES


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``device``, checked to exist here.

    Raises
    ------
    GrandTourError
        An unknown device name, or CUDA (MPS) requested where PyTorch has none.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise GrandTourError(
            f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GrandTourError(
                f"device {device!r} was requested, but this PyTorch ({torch.__version__}) "
                "sees no CUDA GPU: use --device cpu, or install a CUDA build of PyTorch"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise GrandTourError(
                f"device {device!r} was requested, but there are only {count} CUDA "
                f"device(s): use cuda:0 .. cuda:{count - 1}"
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise GrandTourError(f"device {device!r} was requested, but MPS is not available")
        return dev
    raise GrandTourError(f"unsupported device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GrandTourError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_settings(epochs, probe_size, batch_size, lr, momentum, seed) -> None:
    _positive_int("epochs", epochs)
    _positive_int("probe_size", probe_size)
    _positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GrandTourError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise GrandTourError(f"lr (the learning rate) must be a finite number > 0, got {lr!r}")
    if not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise GrandTourError(f"momentum must be in [0, 1), got {momentum!r}")


def _check_dataset(dataset) -> None:
    name = getattr(dataset, "name", None)
    if name not in INPUT_SHAPES:
        raise GrandTourError(
            f"cannot train on dataset {name!r}: the networks are defined for "
            f"{', '.join(INPUT_SHAPES)} (grandtour.models.build_model)"
        )
    expected = INPUT_SHAPES[name]
    for split in ("train", "test"):
        x = getattr(dataset, f"x_{split}")
        if tuple(x.shape[1:]) != expected:
            raise GrandTourError(
                f"the {name} network takes images of shape {expected}, but x_{split} is "
                f"{tuple(x.shape)}"
            )
        if len(x) == 0:
            raise GrandTourError(f"dataset {name!r} has no {split} examples")
