"""Checks at the store's boundary, and the error messages that list what exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grandtour.errors import StoreError
from grandtour.store.schema import NAME, RESERVED_NAMES, LayerInfo


class StoreKeyError(StoreError, KeyError):
    """An unknown split, layer, epoch or record; the message lists what exists."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def check_name(name: Any, what: str) -> str:
    """``name`` if it can be a directory name in the run, else StoreError saying what can."""
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED_NAMES:
        raise StoreError(
            f"invalid {what} name {name!r}: names become directory names in the run, so use "
            "letters, digits, '_', '.', '-' (not starting with '.', '-' or '__')"
        )
    return name


def check_unique(names: Sequence[str], what: str) -> None:
    seen: dict[str, str] = {}
    for n in names:
        # Case-insensitive file systems (macOS, Windows) would merge "FC" and "fc".
        if n.lower() in seen:
            raise StoreError(f"two {what}s named {seen[n.lower()]!r} and {n!r}: {what} names "
                             "must differ (also ignoring case)")
        seen[n.lower()] = n


def describe_epochs(epochs: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    if not epochs:
        return "none"
    parts, start, prev = [], epochs[0], epochs[0]
    for e in list(epochs[1:]) + [None]:
        if e is not None and e == prev + 1:
            prev = e
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if e is not None:
            start = prev = e
    return ", ".join(parts)


def is_int(value: Any) -> bool:
    """An int or numpy integer, and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_int(value: Any, what: str) -> int:
    if not is_int(value):
        raise StoreError(f"{what} must be an integer, got {value!r}")
    return int(value)


def as_array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise StoreError(f"{what} must be a numeric array, got dtype object")
    return arr


def int_array(value: Any, what: str, shape: tuple[int, ...] | None = None,
              low: int | None = None, high: int | None = None) -> np.ndarray:
    arr = as_array(value, what)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise StoreError(f"{what} must hold integers, got dtype {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise StoreError(f"{what} has shape {arr.shape}, expected {shape}")
    arr = arr.astype(np.int64)
    if arr.size and low is not None and int(arr.min()) < low:
        raise StoreError(f"{what} holds {int(arr.min())}, below the smallest allowed value {low}")
    if arr.size and high is not None and int(arr.max()) >= high:
        raise StoreError(f"{what} holds {int(arr.max())}, but must be below {high}")
    return arr


def activation_matrix(value: Any, layer: LayerInfo, lead: tuple[int, ...], what: str) -> np.ndarray:
    """Validate one layer's activations, shaped ``lead + (dim,)`` or ``lead + layer.shape``."""
    arr = as_array(value, what)
    if arr.shape[: len(lead)] != lead or (arr.shape[len(lead):] != (layer.dim,)
                                          and arr.shape[len(lead):] != tuple(layer.shape)):
        expected = lead + (layer.dim,)
        raise StoreError(f"{what} has shape {arr.shape}, expected {expected} (dim {layer.dim} = "
                         f"prod{tuple(layer.shape)} of layer {layer.name!r})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise StoreError(f"{what} must be a real-valued array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    check_magnitude(arr, what)
    return arr.reshape(lead + (layer.dim,))


def check_magnitude(arr: np.ndarray, what: str) -> None:
    """Refuse finite values a run cannot give back (reads return float32), before anything
    is written: a float64 1e300 would otherwise need a scale beyond float32 (NaN on read)."""
    from grandtour.store.codec import FLOAT32_SAFE_MAX, finite_peak

    if arr.dtype.itemsize <= 4 and np.issubdtype(arr.dtype, np.floating):
        return  # float32 and narrower: every finite value is representable
    peak = finite_peak(arr)
    if peak > FLOAT32_SAFE_MAX:
        raise StoreError(f"{what} holds a value of magnitude {peak:.4g}, beyond what a run stores "
                         f"({FLOAT32_SAFE_MAX:.4g}, about float32's largest: reads return float32); "
                         "rescale the activations before writing them")
