r"""The 2-D embeddings the Grand Tour is compared with, one epoch at a time.

Each method maps a layer's activations ``X`` (N x D) at one epoch to a picture ``Y``
(N x 2); all are seeded, so the same run, layer, epochs and seed give the same pictures.

``linear``
    The Grand Tour's own projection held still: :math:`Y = X\,GT_0[:, :2]`, the initial
    frame of the seeded :class:`~grandtour.tour.GrandTour` of dimension D, the same map
    at every epoch. A change of the picture is a change of the data, nothing else.
``pca``
    Per-epoch PCA (scikit-learn): the two leading principal axes of that epoch.
``tsne``
    Per-epoch t-SNE (openTSNE, its defaults: perplexity 30, PCA initialisation),
    each epoch embedded on its own, as the article compares it.
``umap``
    Per-epoch UMAP (umap-learn, its defaults).
``dtsne``
    Dynamic t-SNE over all the chosen epochs at once: :mod:`grandtour.compare.dynamic_tsne`.

t-SNE and UMAP see at most :data:`~grandtour.defaults.COMPARE_PCA_DIMS` principal
components of a wider layer (the usual practice: neighbours in 5000 dims are noise).
"""

from __future__ import annotations

import numpy as np

from grandtour import defaults
from grandtour.errors import GrandTourError

#: Every method ``embed`` knows; ``dtsne`` is the one that embeds all epochs jointly.
METHODS: tuple[str, ...] = ("linear", "pca", "tsne", "dtsne", "umap")
#: Methods that embed every epoch on its own (the rest embed the chosen epochs jointly).
PER_EPOCH: frozenset[str] = frozenset({"linear", "pca", "tsne", "umap"})


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a GrandTourError listing them."""
    if method not in METHODS:
        raise GrandTourError(f"unknown comparison method {method!r}; methods: {', '.join(METHODS)}")
    return method


def check_points(X: np.ndarray, what: str) -> np.ndarray:
    """``X`` as float64 if finite and at least 2 x 2, else a GrandTourError naming ``what``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 4 or X.shape[1] < 2:
        raise GrandTourError(f"{what}: need at least 4 points of at least 2 dimensions to embed, "
                             f"got shape {X.shape}")
    bad = int((~np.isfinite(X).all(axis=1)).sum())
    if bad:
        raise GrandTourError(f"{what}: {bad} points have non-finite activations; no embedding "
                             "method accepts them (pick another epoch or layer)")
    return X


def linear_frame(dim: int, seed: int) -> np.ndarray:
    """The Grand Tour's initial frame ``GT_0[:, :2]`` (D x 2, orthonormal) for ``seed``."""
    from grandtour.tour import GrandTour

    return GrandTour(dim, seed=seed).frame()


def reduce_dims(X: np.ndarray, seed: int, dims: int = defaults.COMPARE_PCA_DIMS) -> np.ndarray:
    """``X`` itself, or its first ``dims`` principal components when it is wider."""
    if X.shape[1] <= dims or X.shape[0] <= dims:
        return X
    from sklearn.decomposition import PCA

    return PCA(dims, random_state=seed).fit_transform(X)


def perplexity_for(n: int, perplexity: float = defaults.TSNE_PERPLEXITY) -> float:
    """openTSNE's perplexity, lowered for tiny probe sets (it needs 3 x perplexity < N)."""
    return float(min(perplexity, max(1.0, (n - 1) / 3.0)))


def pca(X: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(X)


def linear(X: np.ndarray, seed: int) -> np.ndarray:
    return X @ linear_frame(X.shape[1], seed)


def tsne(X: np.ndarray, seed: int) -> np.ndarray:
    from openTSNE import TSNE

    Z = reduce_dims(X, seed)
    return np.asarray(TSNE(perplexity=perplexity_for(len(Z)), random_state=seed, n_jobs=1,
                           verbose=False).fit(Z))


def umap(X: np.ndarray, seed: int, n_components: int = 2) -> np.ndarray:
    import warnings

    from umap import UMAP

    Z = reduce_dims(X, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap-learn's notices about seeding and n_jobs
        model = UMAP(n_components=n_components, n_neighbors=min(defaults.UMAP_NEIGHBORS, len(Z) - 1),
                     random_state=seed, n_jobs=1)
        return model.fit_transform(Z)


#: The per-epoch methods by name.
PER_EPOCH_FUNCTIONS = {"linear": linear, "pca": pca, "tsne": tsne, "umap": umap}
