"""The training state saved beside the run (optimizer, random states), weights from the store,
and resuming: what :func:`grandtour.train.train` needs to continue bit-identically."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grandtour.errors import CorruptFileError, GrandTourError, StoreError
from grandtour.store import Run
from grandtour.store.location import RemotePath, replace_atomic
from grandtour.store.schema import TRAIN_STATE

#: The training state (optimizer, random states) of the last epochs, in the run directory
#: (or beside the run's other objects, for a run at a URL).
STATE_FILE = TRAIN_STATE

#: The settings a resumed run must share with the run it continues (config keys).
_RESUME_KEYS = ("dataset", "seed", "logit_relu", "batch_size", "lr", "momentum", "probe_size")

_STATE_FORMAT = 1


def _cpu_copy(obj):
    """A deep copy with every tensor on the CPU: the saved state must not alias live buffers."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _capture_state(epoch, model, optimizer, generator, device) -> dict:
    state = {
        "epoch": epoch,
        "model": _cpu_copy(model.state_dict()),
        "optimizer": _cpu_copy(optimizer.state_dict()),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def _save_states(run_dir: Path | RemotePath, states: Mapping[int, dict]) -> None:
    """Replace :data:`STATE_FILE` atomically: a reader sees the old file or the new one
    (a temporary file renamed over it locally, one PUT of the whole object remotely)."""
    buffer = io.BytesIO()
    torch.save({"format": _STATE_FORMAT, "states": dict(states)}, buffer)
    replace_atomic(run_dir / STATE_FILE, buffer.getvalue())


def _load_state(run_dir: Path | RemotePath, epoch: int) -> dict:
    """The saved training state of ``epoch``, or a StoreError saying why there is none."""
    path = run_dir / STATE_FILE
    fresh = "start the run again with --overwrite"
    if not path.is_file():
        raise StoreError(
            f"cannot resume {run_dir}: its training state {STATE_FILE} is missing (the run "
            f"was not written by `grandtour train`, or the file was deleted), so the "
            f"optimizer's momentum at epoch {epoch} is lost; {fresh}"
        )
    try:
        saved = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        states = saved["states"]
    except Exception as err:  # noqa: BLE001 - any unreadable file: torch raises several kinds
        raise CorruptFileError(
            f"cannot resume {run_dir}: {path} is unreadable ({type(err).__name__}: {err}); {fresh}"
        ) from None
    if epoch not in states:
        raise StoreError(
            f"cannot resume {run_dir}: the store's last committed epoch is {epoch}, but "
            f"{STATE_FILE} holds the training state of epoch(s) "
            f"{', '.join(map(str, sorted(states)))}; the two disagree (the store or the "
            f"file was changed by hand, or copied from another run); {fresh}"
        )
    return states[epoch]


def _state_dict_from_params(model: nn.Module, params_of: Callable[[str], dict]) -> dict:
    """The model's state_dict filled from the store's per-layer params."""
    state = {}
    for name, module in model.named_modules():
        own = {**dict(module.named_parameters(recurse=False)),
               **dict(module.named_buffers(recurse=False))}
        own = {k: v for k, v in own.items() if v is not None and v.is_floating_point()}
        if not own:
            continue
        stored = params_of(name)
        for key, tensor in own.items():
            if key not in stored:
                raise StoreError(f"the run's params of layer {name!r} lack {key!r}")
            value = torch.as_tensor(np.asarray(stored[key]))
            if tuple(value.shape) != tuple(tensor.shape):
                raise StoreError(
                    f"the run's params {name}.{key} have shape {tuple(value.shape)}, the "
                    f"network's {tuple(tensor.shape)}: the run is from another network"
                )
            state[f"{name}.{key}" if name else key] = value.to(tensor.dtype)
    return state


def load_weights(model: nn.Module, run: Run, epoch: int) -> nn.Module:
    """Load the weights a run recorded at ``epoch`` into ``model`` (in place).

    Parameters
    ----------
    model : nn.Module
        The run's network, e.g. ``build_model(run.dataset, logit_relu=run.config["logit_relu"])``.
    run : grandtour.store.Run
    epoch : int
        A completed epoch of the run.

    Returns
    -------
    nn.Module
        ``model``, with the stored parameters and floating-point buffers.
    """
    if epoch not in run.epochs:
        raise StoreError(f"{run.path} has no epoch {epoch}; its epochs are {run.epochs}")
    state = _state_dict_from_params(model, lambda layer: run.params(layer, epoch))
    missing = [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in state]
    if missing:
        raise StoreError(f"the run's params lack {', '.join(missing)}")
    model.load_state_dict(state, strict=False)
    return model


def _check_resume(out: Path, stored: Mapping, config: Mapping, indices) -> None:
    if stored.get("trainer") != "grandtour.train":
        raise StoreError(
            f"cannot resume {out}: it was not written by `grandtour train` (its config has "
            "no trainer); only training runs can be resumed"
        )
    differ = [k for k in _RESUME_KEYS if stored.get(k) != config[k]]
    if differ:
        pairs = ", ".join(f"{k}: run {stored.get(k)!r}, given {config[k]!r}" for k in differ)
        raise GrandTourError(
            f"cannot resume {out} with other settings ({pairs}); give the run's own "
            "settings, or start a new run"
        )
    run = Run.open(out)
    for split, idx in indices.items():
        stored_idx = run.indices(split)
        if stored_idx is not None and not np.array_equal(np.asarray(stored_idx), idx):
            raise GrandTourError(
                f"cannot resume {out}: the {split} probes chosen now differ from the run's; "
                "the dataset is not the one the run was trained on "
                f"(it was read from {stored.get('data_source')!r})"
            )


def _restore(out, model, optimizer, generator, state, epoch, dev) -> None:
    """Weights from the store's epoch, the rest from the saved state; check they agree."""
    load_weights(model, Run.open(out), epoch)
    for key, saved in state["model"].items():
        now = model.state_dict()[key].detach().cpu()
        if saved.is_floating_point() and not torch.equal(now, saved.to(now.dtype)):
            diff = (now - saved).abs().max().item()
            raise StoreError(
                f"cannot resume {out}: the weights the store holds for epoch {epoch} differ "
                f"from the ones saved with its training state ({key}: max difference "
                f"{diff:.3g}); the store or {STATE_FILE} was changed; start the run again "
                "with --overwrite"
            )
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and dev.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], dev)
