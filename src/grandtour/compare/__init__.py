"""The article's comparison: t-SNE, dynamic t-SNE, UMAP and PCA against the Grand Tour.

The package reads as the comparison:

``methods``
    the per-epoch embeddings (``linear``: the Grand Tour's fixed projection, ``pca``,
    ``tsne`` with openTSNE, ``umap`` with umap-learn);
``dynamic_tsne``
    dynamic t-SNE (Rauber et al. 2016) on openTSNE's affinities and optimiser;
``storage``
    ``RUN/comparisons/``, the derived group the embeddings are kept in;
``embed``
    :func:`embed`: a layer's pictures epoch by epoch, computed once, resumable;
``correspondence``
    :func:`correspondence`: does the picture move where the data moved?
``hybrid``
    the article's proposed hybrid: UMAP to a few dimensions, then the Grand Tour;
``command``
    ``grandtour compare``.

See ``docs/compare.md``.
"""

from grandtour.compare.correspondence import correspondence, correspondence_of
from grandtour.compare.embed import embed, stored
from grandtour.compare.methods import METHODS

__all__ = ["METHODS", "correspondence", "correspondence_of", "embed", "stored"]
