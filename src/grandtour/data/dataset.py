"""The :class:`Dataset` every loader returns, and the class names of the four datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "Dataset"]

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(d) for d in range(10)),
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}


@dataclass(frozen=True)
class Dataset:
    """A labelled image dataset split into train and test.

    Attributes
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (or a user's name).
    x_train, x_test : ndarray of shape (N, C, H, W), uint8
        Pixels, 0..255. C is 1 for the grey datasets, 3 (R, G, B) for CIFAR-10.
    y_train, y_test : ndarray of shape (N,), int64
        Class indices into ``class_names``.
    class_names : tuple of str
    source : str
        Where the files were read from (a directory), or ``"scikit-learn"``.

    Integer labels of another integer dtype are converted to int64; anything else that
    breaks the shapes above raises ``ValueError``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        n_classes = len(self.class_names)
        image_shape = None
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), np.asarray(getattr(self, f"y_{split}"))
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"Dataset {self.name!r}: x_{split} must be a uint8 array of shape "
                                 f"(N, C, H, W), got {getattr(x, 'dtype', type(x))} "
                                 f"{getattr(x, 'shape', '')}")
            if image_shape is not None and x.shape[1:] != image_shape:
                raise ValueError(f"Dataset {self.name!r}: train images are {image_shape}, "
                                 f"test images {x.shape[1:]}")
            image_shape = x.shape[1:]
            if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"Dataset {self.name!r}: y_{split} must be ({x.shape[0]},) "
                                 f"integers, got {y.dtype} {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ValueError(f"Dataset {self.name!r}: y_{split} has labels in "
                                 f"[{y.min()}, {y.max()}], outside 0..{n_classes - 1} "
                                 f"({n_classes} class names)")
            object.__setattr__(self, f"y_{split}", y.astype(np.int64, copy=False))

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.class_names)}, source={self.source!r})")
