"""A restricted unpickler for the CIFAR-10 batches: plain containers and numeric arrays only.

A pickle names the callables that rebuild it; this one can call nothing but stand-ins
that check their arguments, so a hostile file cannot run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from grandtour.errors import CorruptFileError, DatasetNotFoundError


class _DTypeSpec:
    """Stands in for ``numpy.dtype`` in a pickle: only plain numeric dtypes, built fresh.

    A pickled dtype is ``dtype(code, align, copy)`` then a ``BUILD`` with its state; we
    never hand that state to numpy (it can set internal flags), we read the byte order.
    """

    _CODE = re.compile(r"[?biuf][1248]")

    def __init__(self, code, *_):
        code = code.decode("ascii", "replace") if isinstance(code, bytes) else code
        if not isinstance(code, str) or not self._CODE.fullmatch(code):
            raise pickle.UnpicklingError(f"refusing to build dtype {code!r}: only plain numeric "
                                         "dtypes are allowed")
        self.dtype = np.dtype(code)

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("refusing a structured or sub-array dtype")
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if order in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        elif order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"unknown byte order {order!r}")


class _ArraySpec:
    """Stands in for ``numpy.ndarray`` rebuilt by ``_reconstruct`` + ``BUILD``."""

    array: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, fortran, data); older pickles omit version
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("unexpected ndarray state")
        shape, dtype, fortran, data = state
        self.array = _array_from(data, dtype, shape, "F" if fortran else "C")


_NDARRAY = object()  # what the pickle gets for numpy.ndarray: a token, never callable


def _array_from(data, dtype, shape, order) -> np.ndarray:
    if not isinstance(dtype, _DTypeSpec):
        raise pickle.UnpicklingError("ndarray without a plain numeric dtype")
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("ndarray data must be raw bytes (object arrays are refused)")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
    if int(np.prod(shape, dtype=np.int64)) * dtype.dtype.itemsize != len(data):
        raise pickle.UnpicklingError(f"ndarray of shape {shape} does not match its {len(data)} bytes")
    order = order.decode("ascii") if isinstance(order, bytes) else order
    return np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order="F" if order == "F" else "C")


def _reconstruct(subtype, shape, typecode) -> _ArraySpec:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy arrays can be rebuilt")
    return _ArraySpec()


def _frombuffer(buffer, dtype, shape, order) -> np.ndarray:  # how protocol 5 pickles arrays
    return _array_from(buffer, dtype, shape, order)


def _latin1_encode(text, encoding="utf-8", errors="strict") -> bytes:  # protocol 2's bytes
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1")


_SAFE_GLOBALS: dict[tuple[str, str], object] = {
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTypeSpec,
    ("_codecs", "encode"): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a dataset pickle holds only containers, "
                "numbers, strings and numeric arrays") from None


def _resolve(obj, memo: dict | None = None):
    """Replace the stand-ins by the arrays they built.

    Memoised by identity: a pickle can share one list many times over (a "billion
    laughs" bomb), and each shared object must be walked once, not once per reference.
    """
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key][1]
    if isinstance(obj, _ArraySpec):
        if obj.array is None:
            raise pickle.UnpicklingError("ndarray without data")
        out = obj.array
    elif isinstance(obj, dict):
        out = {k: _resolve(v, memo) for k, v in obj.items()}
    elif isinstance(obj, list):
        out = [_resolve(v, memo) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_resolve(v, memo) for v in obj)
    elif isinstance(obj, _DTypeSpec):
        out = obj.dtype
    else:
        return obj
    memo[key] = (obj, out)  # keep obj alive so its id is not reused during the walk
    return out


def _load_pickle(path: Path):
    try:
        with path.open("rb") as f:
            return _resolve(_SafeUnpickler(f, encoding="bytes").load())
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{path} does not exist") from err
    except Exception as err:
        raise CorruptFileError(f"{path}: not a CIFAR-10 python batch, or not a safe one: "
                               f"{type(err).__name__}: {err}") from err


def _get(mapping: dict, key: str):
    """A CIFAR dict's entry under the bytes key (``encoding="bytes"``) or the str key."""
    value = mapping.get(key.encode())
    return mapping.get(key) if value is None else value
