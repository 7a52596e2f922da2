"""Training the article's networks, with every layer recorded at every epoch.

:func:`train` trains one of :func:`grandtour.models.build_model`'s networks with SGD
and momentum on the cross-entropy of the logits, and records every layer's output on
fixed, class-balanced probe sets (:func:`grandtour.record.select_probes`) into a run
(:mod:`grandtour.store`): epoch 0 is the untrained network, then one record per epoch.

Why these settings
------------------
The defaults are the classic PyTorch MNIST example's: SGD, learning rate 0.01,
momentum 0.5, batches of 64. They are the settings under which the article's MNIST
network (with its ReLU between the last linear layer and the softmax) learns some
classes late and suddenly: a logit clipped at zero for every example gets no gradient
through that ReLU until a few examples revive it. With these settings one to three
classes of full MNIST passed 50 % test accuracy only at epochs 7 to 35 in 4 of 6
seeds, every other class at epoch 1 (BENCHMARKS.md, the 99-epoch runs). A larger
learning rate or batch changes when (and whether) that happens, so the defaults stay
the article's, and the summary says which classes were late.

Determinism
-----------
The run is a function of its seed: ``torch.manual_seed(seed)`` before the network is
built (PyTorch's default initialisation), and the shuffling of every epoch drawn from a
CPU ``torch.Generator`` seeded with ``seed`` (so the data order is the same on a GPU).
The global torch random state is saved and restored around training, so calling
:func:`train` does not disturb the caller's. On the CPU every operation used is
deterministic, and two runs with the same seed end with bit-identical weights. On CUDA,
cuDNN is put in deterministic mode for the duration.

Resuming
--------
At the end of every epoch the optimizer state (the momentum buffers) and the random
states are saved in :data:`STATE_FILE` inside the run directory, before the epoch is
committed to the store. The file keeps the last two epochs and is replaced atomically
(written to a temporary file, then ``os.replace``; for a run at a URL, one PUT of the
whole object), so whichever moment a process is killed at, it holds the state of the
store's last committed epoch. ``resume=True``
rebuilds the network from the run's config, loads the weights of the last committed
epoch from the store, the optimizer and random states from the file, and continues:
the result is bit-identical to an uninterrupted run.

Modules
-------
:mod:`~grandtour.train.loop` (:func:`train`), :mod:`~grandtour.train.settings` (checks at
the boundary), :mod:`~grandtour.train.state` (saved state and resuming),
:mod:`~grandtour.train.summary` and :mod:`~grandtour.train.command` (``grandtour train``).
The default settings live in :mod:`grandtour.defaults`.

Example
-------
>>> from grandtour.data import load_dataset
>>> run = train(load_dataset("digits"), "runs/digits", epochs=30)  # doctest: +SKIP
>>> run.epochs[-1], run.metrics("test")["accuracy"][-1]              # doctest: +SKIP
"""

from __future__ import annotations

from grandtour.train.command import DATASET_DEFAULTS, DEFAULT_EPOCHS, train_command
from grandtour.train.loop import Callback, train
from grandtour.train.settings import resolve_device
from grandtour.train.state import STATE_FILE, load_weights
from grandtour.train.summary import LEARNT_ACCURACY, first_learnt_epochs, training_summary

__all__ = [
    "DATASET_DEFAULTS",
    "DEFAULT_EPOCHS",
    "LEARNT_ACCURACY",
    "STATE_FILE",
    "Callback",
    "first_learnt_epochs",
    "load_weights",
    "resolve_device",
    "train",
    "train_command",
    "training_summary",
]
