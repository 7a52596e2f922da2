"""scikit-learn's bundled 8x8 digits, with a documented, fixed train/test split."""

from __future__ import annotations

import numpy as np

from grandtour.data.dataset import CLASS_NAMES, Dataset

#: Test share of each digit class, and the seed of the (documented, fixed) digits split.
DIGITS_TEST_FRACTION = 1 / 3
DIGITS_SPLIT_SEED = 0


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits  # the `torch` extra; imported only when asked

    bunch = load_digits()
    # 0..16 -> 0..255; the half-way values (v = 8: 127.5) round to even, like round().
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255 / 16)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = _stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    x = images[:, None]
    return Dataset("digits", x[train], labels[train], x[test], labels[test],
                   CLASS_NAMES["digits"], "scikit-learn")


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices; ``round(n_c * test_fraction)`` of each class to test."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[: int(round(len(members) * test_fraction))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
