"""Layer dynamics: each layer's transition from the previous one, aligned by the SVD.

The article's second use case shows the same points flowing from one layer to the next.
For a linear layer ``X_l = X_{l-1} M + b`` with ``M = U S V^T``, it draws

    (1 - t) (X_{l-1} U) + t (X_l V),        t in [0, 1],

so the rotational part of the layer (``U``, ``V``) is invisible and only the scaling
``S`` (and the shift ``b V``) moves the points: ``X_l V = (X_{l-1} U) S + b V``
coordinate-wise. This package computes such a :class:`Transition` for every recorded
layer from each of its inputs in the recorded graph (``run.inputs(layer)``; the main
path, the first, by default; ``docs/graph.md``), for every layer kind:

=====================  ======================================================================
kind                   transition
=====================  ======================================================================
linear, conv1d/2d/3d,  the affine map ``X M + b``, aligned by the SVD of ``M``; convolutions
avgpool2d,             are used as operators (torch forward + its adjoint), never as a dense
adaptiveavgpool2d      matrix of the full layer
maxpool2d              the article's replacement: average pooling (linear, SVD-aligned) times
                       a per-point, per-coordinate scaling ``max / average`` (see ``scale``)
add, cat (merges)      from one input: ``x -> x + f(x)`` in ``x``'s basis; the embedding of
                       one input's coordinates in a concatenation (``method="merge"``)
mean, permute, ...     the graph's linear ops, replayed from their config, SVD-aligned
relu, softmax, gelu,   interpolation in the standard basis (``basis_in = basis_out = I``),
batchnorm, ...         checked by rebuilding the layer (batch norm from its running stats)
flatten, dropout, ...  the identity
anything else          a least-squares affine fit ``X_{l-1} -> X_l``, labelled ``exact=False``,
                       with an :class:`AlignmentWarning` naming the layer and its module
=====================  ======================================================================

A layer wider than ``threshold`` (default 256, ``grandtour.defaults.ALIGN_THRESHOLD``)
coordinates is shown in a fixed linear *reduction*: the leading principal directions of
its activations pooled over epochs and splits, ``Z = X R`` with ``R`` of shape
``(dim, r)``, orthonormal columns, ``r <= threshold``, the same at every epoch.
Transitions touching a reduced layer are aligned by the SVD of the map *between the reduced coordinates*,
``C = R_{l-1}^T M R_l``, formed through the operator (``R = I`` on a side that is not
reduced). ``docs/align.md`` states the maths, the storage layout and the choices.

``align_run`` (``grandtour align RUN``) precomputes the reductions and the bases of every
(layer, epoch) once and stores them under ``RUN/alignment/``, so that
:func:`load_transition` and a viewer only read (the reduced coordinates ``X R`` are
computed when read, :func:`~grandtour.align.reduction.reduced_coordinates`).

The modules, in the order of the pipeline:

=================  ==================================================================
``maps``           :class:`LayerMap`: the linear map of each layer kind, as an operator
``svd``            the aligning SVD (deterministic signs, degenerate cases), operator SVD
``reduction``      :class:`Reduction`: the fixed principal basis of a wide layer
``replay``         rebuilding functional ops and coordinate-wise modules, for the checks
``transitions``    :class:`Transition`: the rule of each kind, the check, the fallback
``storage``        the ``RUN/alignment/`` group and its commit record
``aligner``        :class:`Aligner` and :func:`align_run`: a run's transitions
``command``        ``grandtour align RUN``
=================  ==================================================================
"""

from __future__ import annotations

# The constants not in __all__ (ALIGNMENT_GROUP, VERIFY_RTOL, ...) are
# re-exported for the code that reads them by name (the server, tests). Each is owned by
# the module it is imported from: to change behaviour (a test's monkeypatch), set it there.
from grandtour.align.aligner import (
    Aligner,
    align_run,
    layer_coordinates,
    load_reduction,
    load_transition,
    transition,
)
from grandtour.align.command import align_command
from grandtour.align.maps import (  # noqa: F401
    COORDINATEWISE,
    IDENTITIES,
    LayerMap,
    layer_map,
    register_layer_map,
)
from grandtour.align.reduction import (  # noqa: F401
    DEFAULT_THRESHOLD,
    EXACT_COVARIANCE_DIM,
    RANK_RTOL,
    REDUCTION_EPOCHS,
    REDUCTION_FIT_POINTS,
    Reduction,
    fit_reduction,
)
from grandtour.align.storage import ALIGNMENT_GROUP, ALIGNMENT_VERSION  # noqa: F401
from grandtour.align.svd import operator_svd
from grandtour.align.transitions import (  # noqa: F401
    VERIFY_RTOL,
    AlignmentWarning,
    Transition,
    transition_from_arrays,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "Aligner",
    "AlignmentWarning",
    "LayerMap",
    "Reduction",
    "Transition",
    "align_command",
    "align_run",
    "fit_reduction",
    "layer_coordinates",
    "layer_map",
    "load_reduction",
    "load_transition",
    "operator_svd",
    "register_layer_map",
    "transition",
    "transition_from_arrays",
]
