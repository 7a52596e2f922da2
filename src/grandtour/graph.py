"""The dataflow graph of a model: its layers, functional ops included, and their edges.

:class:`~grandtour.capture.Capture` records what this module finds. ``torch.fx``
symbolic tracing (``docs/graph.md`` says why fx and not ``torch.export``) turns the
model's ``forward`` into a graph whose nodes are module calls *and* functional ops
(``F.relu``, ``x + f(x)``, ``torch.cat``, ``x.mean(1)``); every node whose value is a
floating-point tensor with one axis per example is a layer, and a layer's ``inputs``
are the nearest recorded layers upstream of it.

What is a leaf (one layer, not traced into): a module without submodules (a user's
custom layer stays one layer, as ``nn.Linear`` does), and a ``torch.nn`` module other
than the containers (``nn.MultiheadAttention``, ``nn.LSTM``, ...). ``nn.TransformerEncoder``
and ``nn.TransformerEncoderLayer`` are traced through, by their reference (non-fused)
path, so their attention, feed-forward and residual adds are layers. A module whose
``forward`` fx cannot trace (Python control flow on tensor values) becomes a leaf and
the retry goes on: what that hides is listed in ``skipped``; if the model's own
``forward`` cannot be traced, :func:`trace` returns None and capture falls back to module
hooks (a chain, said so).

The batch axis of every node is found by running the graph on two batch sizes (2 and
3): the one axis that grows from 2 to 3. A node with no such axis (a parameter, a
shape) is no layer; one with several, or with the batch merged into another axis, is
listed in ``skipped`` with its shapes.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from grandtour.store import LayerInfo

__all__ = ["GraphLayer", "Traced", "assign_inputs", "describe_output", "find_node", "op_kind",
           "suggest_output", "trace"]

#: Batch sizes of the two discovering passes: the axis that grows from one to the other
#: is the batch axis.
_B1, _B2 = 2, 3

#: Functional ops that only move or view values (or are identities in eval mode): when the
#: per-example values come out unchanged they pass through, as nn.Flatten does.
RESHAPES = frozenset({
    "view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze", "transpose", "permute",
    "clone", "detach", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "feature_alpha_dropout", "to", "float", "type", "type_as", "movedim", "swapaxes",
})
# In-place and aliased spellings of one op.
_CANONICAL = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "truediv", "div": "truediv",
              "concat": "cat", "concatenate": "cat", "swapaxes": "transpose"}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class _Untraceable(Exception):
    """fx could not trace the module ``qualname``'s forward."""

    def __init__(self, qualname: str, module: nn.Module, error: Exception):
        super().__init__(qualname)
        self.qualname, self.module, self.error = qualname, module, error


# -------------------------------------------------------------- traced-through modules


def _encoder_layer_forward(layer: nn.TransformerEncoderLayer, src, src_mask=None,
                           src_key_padding_mask=None, is_causal=False):
    # PyTorch's reference path (the fused eval fast path is one opaque kernel): the same
    # maths, so attention, feed-forward and residual adds become layers.
    x = src
    if layer.norm_first:
        x = x + layer._sa_block(layer.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)  # noqa: SLF001
        x = x + layer._ff_block(layer.norm2(x))  # noqa: SLF001
    else:
        x = layer.norm1(x + layer._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))  # noqa: SLF001
        x = layer.norm2(x + layer._ff_block(x))  # noqa: SLF001
    return x


def _encoder_forward(encoder: nn.TransformerEncoder, src, mask=None, src_key_padding_mask=None,
                     is_causal=None):
    out = src
    for mod in encoder.layers:
        out = mod(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                  is_causal=bool(is_causal))
    return out if encoder.norm is None else encoder.norm(out)


#: Modules traced through by a forward of our own (their own has tensor control flow).
TRACED_THROUGH: dict[type, Callable] = {
    nn.TransformerEncoderLayer: _encoder_layer_forward,
    nn.TransformerEncoder: _encoder_forward,
}


class _Tracer(fx.Tracer):
    def __init__(self, opaque: set[str]):
        super().__init__()
        self.opaque = opaque

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.opaque:
            return True
        if type(m) in TRACED_THROUGH:
            return False
        if next(m.children(), None) is None:
            return True
        if isinstance(m, _CONTAINERS):
            return False
        return type(m).__module__.startswith(("torch.nn", "torch.ao.nn"))

    def call_module(self, m, forward, args, kwargs):
        qualname = self.path_of_module(m)
        rule = TRACED_THROUGH.get(type(m))
        if rule is not None and qualname not in self.opaque:
            forward = rule.__get__(m)  # bound: rule(m, *args)
        try:
            return super().call_module(m, forward, args, kwargs)
        except _Untraceable:
            raise
        except Exception as err:
            raise _Untraceable(qualname, m, err) from err


# ------------------------------------------------------------------------ the result


@dataclass
class GraphLayer:
    """One recordable node: its layer, module call (if a module), batch axis."""

    node: str
    info: LayerInfo
    module: nn.Module | None = None
    call: int = 0
    batch_axis: int = 0
    identity: bool = False           # passes its input's values through: left out by default
    parents: tuple[str, ...] = ()    # fx names of the nodes it reads (per-example tensors)
    operand_nodes: tuple[str, ...] = ()  # functional ops: the tensor arguments, in order


@dataclass
class Traced:
    """What :func:`trace` found: the graph, its layers in execution order, what was left out."""

    graph: fx.Graph
    layers: list[GraphLayer]
    skipped: list[tuple[str, str]]
    logits_node: str | None
    output: Any                      # the model's output on the discovering batch of 3
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every node's tensor inputs
    values: dict[str, Any] = field(default_factory=dict)  # node values on that batch (dropped later)


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def op_kind(node: fx.Node) -> str:
    """The lowercased op name of a function or method node (``add`` for ``+=``, ``cat``, ...)."""
    target = node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    name = name.lower()
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]  # x.add_(y), x.relu_()
    return _CANONICAL.get(name, name)


def _target_name(node: fx.Node) -> str:
    """``Tensor.mean``, ``operator.add``, ``torch.cat``, ``torch.nn.functional.relu``."""
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    module = getattr(target, "__module__", None) or ""
    if module == "_operator":
        module = "operator"
    if module.startswith("torch.nn.functional") or module == "torch.nn.functional":
        module = "torch.nn.functional"
    elif module.startswith("torch") and hasattr(torch, getattr(target, "__name__", "")):
        module = "torch"
    return f"{module}.{getattr(target, '__name__', str(target))}"


class _NotJson(Exception):
    pass


def _encode(value, operands: list[fx.Node], per_example: Callable[[fx.Node], bool]):
    """JSON form of an fx argument; a per-example tensor becomes ``{"operand": i}``."""
    if isinstance(value, fx.Node):
        if per_example(value):
            operands.append(value)
            return {"operand": len(operands) - 1}
        raise _NotJson(value.name)  # a parameter or constant tensor: not replayable from the run
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_encode(v, operands, per_example) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, operands, per_example) for v in value]}
    if isinstance(value, slice):
        return {"slice": [_encode(v, operands, per_example) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    raise _NotJson(repr(value))


# Keyword arguments worth reading in a layer's config (and in the viewer).
_SHOWN = ("dim", "keepdim", "approximate", "negative_slope", "alpha", "start_dim", "end_dim",
          "dims", "dim0", "dim1", "beta", "threshold", "lambd", "min_val", "max_val", "value")


def _function_config(node: fx.Node, per_example) -> tuple[dict, list[fx.Node]]:
    cfg: dict[str, Any] = {"op": op_kind(node), "target": _target_name(node)}
    operands: list[fx.Node] = []
    try:
        cfg["args"] = _encode(list(node.args), operands, per_example)
        cfg["kwargs"] = {k: _encode(v, operands, per_example) for k, v in node.kwargs.items()}
        cfg["replay"] = True
    except _NotJson as err:
        cfg.pop("args", None)
        cfg.pop("kwargs", None)
        cfg["replay"] = False
        cfg["not_replayable"] = f"an argument is not a per-example tensor or a constant: {err}"
        operands = [a for a in node.all_input_nodes if per_example(a)]
    # Named settings, bound to the function's signature where it has one (F.gelu, ...).
    named = dict(node.kwargs)
    target = node.target
    if callable(target):
        with contextlib.suppress(TypeError, ValueError):  # builtins may have no signature
            named = dict(inspect.signature(target).bind(*node.args, **node.kwargs).arguments)
    for key in _SHOWN:
        value = named.get(key)
        if value is not None and not isinstance(value, fx.Node):
            with contextlib.suppress(_NotJson):
                cfg[key] = _encode(value, [], lambda _n: False)
    return cfg, operands


# ---------------------------------------------------------------------------- tracing


def _fx_graph(model: nn.Module) -> tuple[fx.Graph | None, list[tuple[str, str]]]:
    """The fx graph of ``model`` (None if its own forward is untraceable), and what it hides."""
    opaque: set[str] = set()
    notes: list[tuple[str, str]] = []
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    concrete = {p.name: p.default for p in params[1:] if p.default is not inspect.Parameter.empty}
    for _ in range(1 + sum(1 for _m in model.modules())):
        try:
            return _Tracer(opaque).trace(model, concrete_args=concrete or None), notes
        except _Untraceable as u:
            opaque.add(u.qualname)
            reason = (f"inside {u.qualname!r} ({type(u.module).__name__}), whose forward torch.fx "
                      f"cannot trace ({type(u.error).__name__}: {str(u.error).splitlines()[0][:160]}); "
                      f"{u.qualname!r} is recorded as one layer")
            inner = [f"{u.qualname}.{n}" for n, m in u.module.named_modules()
                     if n and next(m.children(), None) is None]
            notes.extend((name, reason) for name in inner)
        except Exception as err:  # noqa: BLE001 - the model's own forward: fall back to hooks
            notes.append(("(graph)", f"torch.fx cannot trace {type(model).__name__}.forward "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                          "the leaf modules are recorded by hooks instead, as a chain (each reading "
                          "the one before): functional ops are not recorded and branches not known"))
            return None, notes
    return None, notes


class _Values(fx.Interpreter):
    """Runs a graph on the model's own modules and keeps every node's value."""

    def __init__(self, model: nn.Module, graph: fx.Graph):
        super().__init__(model, garbage_collect_values=False, graph=graph)
        self.values: dict[str, Any] = {}

    def run_node(self, n):
        value = super().run_node(n)
        self.values[n.name] = value
        return value


def _batch_axis(s1: tuple[int, ...], s2: tuple[int, ...]) -> tuple[int | None, str]:
    """The axis growing from _B1 to _B2; or None and why."""
    if len(s1) != len(s2):
        return None, f"its number of axes depends on the batch ({s1} for {_B1} examples, {s2} for {_B2})"
    changed = [i for i, (a, b) in enumerate(zip(s1, s2)) if a != b]
    if not changed:
        return None, ""
    if len(changed) == 1 and s1[changed[0]] == _B1 and s2[changed[0]] == _B2:
        return changed[0], ""
    return None, (f"its batch axis is ambiguous: shape {s1} for {_B1} examples and {s2} for {_B2} "
                  f"(axes {changed} change); only an output with exactly one axis per example is "
                  "recorded")


def trace(model: nn.Module, example: torch.Tensor, run: Callable[[Callable], Any]
          ) -> tuple[Traced | None, list[tuple[str, str]]]:
    """The graph of ``model`` and its candidate layers; ``(None, notes)`` to fall back to hooks.

    ``example``: model-ready inputs ``(B, ...)``, B >= 1, on the model's device.
    ``run(fn)`` calls ``fn()`` in capture's evaluating context (eval mode, no grad,
    random states restored).
    """
    if next(model.children(), None) is None:
        return None, []  # a single module is its own one layer: hooks say all there is
    graph, notes = run(lambda: _fx_graph(model))
    if graph is None:
        return None, notes
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    rows = torch.arange(_B2, device=example.device) % example.shape[0]
    passes = []
    for b in (_B1, _B2):
        interp = _Values(model, graph)
        x = example[rows[:b]].clone()
        out = run(lambda interp=interp, x=x: interp.run(x))
        passes.append((interp.values, out))
    (v1, _), (v2, out2) = passes

    batch_axes: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for node in graph.nodes:
        t1, t2 = _first_tensor(v1.get(node.name)), _first_tensor(v2.get(node.name))
        if t1 is None or t2 is None or node.op in ("output", "get_attr"):
            continue
        axis, why = _batch_axis(tuple(t1.shape), tuple(t2.shape))
        if axis is not None:
            batch_axes[node.name] = axis
        elif why:
            reasons[node.name] = why

    def per_example(n: fx.Node) -> bool:
        return n.name in batch_axes

    parents = {n.name: tuple(a.name for a in n.all_input_nodes if per_example(a)) for n in graph.nodes}
    module_calls: dict[str, int] = {}
    module_names = set()
    for node in graph.nodes:
        if node.op == "call_module":
            k = module_calls.get(node.target, 0)
            module_calls[node.target] = k + 1
            module_names.add(node.target if k == 0 else f"{node.target}-{k + 1}")
    used = set(module_names) | {"input", "softmax"}
    module_calls.clear()

    from grandtour.capture import EVAL_IDENTITIES, _module_config  # capture imports this module

    layers: list[GraphLayer] = []
    skipped = list(notes)
    modules = dict(model.named_modules())
    for node in graph.nodes:
        if node.op == "placeholder":
            if node is placeholders[0]:
                shape = tuple(int(s) for s in example.shape[1:])
                layers.append(GraphLayer(node.name, LayerInfo("input", "input", shape, static=True)))
            continue
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        if node.op == "call_module":
            k = module_calls.get(node.target, 0)
            module_calls[node.target] = k + 1
            name = node.target if k == 0 else f"{node.target}-{k + 1}"
        else:
            stack = list(node.meta.get("nn_module_stack", {}).values())
            scope = stack[-1][0] if stack else ""
            base = re.sub(r"_\d+$", "", node.name)
            name = f"{scope}.{base}" if scope else base
            i = 1
            while name in used:
                name = f"{scope}.{base}_{i}" if scope else f"{base}_{i}"
                i += 1
            used.add(name)
        if node.name in reasons:
            skipped.append((name, reasons[node.name]))
            continue
        if node.name not in batch_axes:
            t = _first_tensor(v2.get(node.name))
            if t is not None and t.is_floating_point():
                skipped.append((name, f"the same for every example (shape {tuple(t.shape)}, no batch "
                                      "axis): a constant, not a layer"))
            continue
        value = _first_tensor(v2[node.name])
        if node.op == "call_function" and node.target is operator.getitem and node.args \
                and isinstance(node.args[0], fx.Node) and node.args[0].op == "call_module" \
                and node.args[1] == 0 and not isinstance(v2.get(node.args[0].name), torch.Tensor):
            continue  # a module's first output (MultiheadAttention, LSTM): recorded as the module
        if not value.is_floating_point():
            skipped.append((name, f"its values are {value.dtype}, not floating point"))
            continue
        if not node.users:
            skipped.append((name, "its value is not used by the model"))
            continue
        axis = batch_axes[node.name]
        shape = tuple(int(s) for i, s in enumerate(value.shape) if i != axis)
        if node.op == "call_module":
            module = modules[node.target]
            config = _module_config(module)
            if axis:
                config["batch_axis"] = axis
            info = LayerInfo(name, type(module).__name__.lower(), shape, module=repr(module),
                             config=config)
            layers.append(GraphLayer(node.name, info, module, k, axis,
                                     isinstance(module, EVAL_IDENTITIES), parents[node.name]))
            continue
        config, operands = _function_config(node, per_example)
        config["batch_axis"] = axis
        config["operand_shapes"] = [
            [int(s) for i, s in enumerate(_first_tensor(v2[o.name]).shape) if i != batch_axes[o.name]]
            for o in operands]
        config["operand_batch_axes"] = [batch_axes[o.name] for o in operands]
        identity = False
        if config["op"] in RESHAPES and len(operands) == 1:
            src = _first_tensor(v2[operands[0].name])
            a = value.movedim(axis, 0).reshape(_B2, -1)
            b = src.movedim(batch_axes[operands[0].name], 0).reshape(_B2, -1)
            identity = a.shape == b.shape and bool(torch.equal(a, b))
        info = LayerInfo(name, config["op"], shape, module=node.format_node() or "", config=config)
        layers.append(GraphLayer(node.name, info, None, 0, axis, identity, parents[node.name],
                                 tuple(o.name for o in operands)))
    return Traced(graph, layers, skipped, None, out2, parents, v2), []


def describe_output(value, depth: int = 0) -> str:
    """A model output's structure: ``(Tensor(2, 32), Tensor(2, 10))``, ``{'logits': ...}``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    if depth > 2:
        return "..."
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe_output(v, depth + 1)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe_output(v, depth + 1) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return type(value).__name__


def suggest_output(value) -> str:
    """An ``output=`` that picks a (batch, classes) tensor out of a structured output."""
    if isinstance(value, dict):
        keys = [k for k, v in value.items() if isinstance(v, torch.Tensor) and v.ndim == 2]
        key = "logits" if "logits" in keys else (keys[-1] if keys else next(iter(value), "logits"))
        return f"output=lambda out: out[{key!r}]"
    index = [i for i, v in enumerate(value) if isinstance(v, torch.Tensor) and v.ndim == 2]
    return f"output=lambda out: out[{index[-1] if index else 0}]"


def find_node(values: dict[str, Any], tensor: torch.Tensor) -> str | None:
    """The node whose value is ``tensor`` itself (by identity), or None."""
    for name, value in values.items():
        if _first_tensor(value) is tensor:
            return name
    return None


def assign_inputs(traced: Traced | None, chosen: list[GraphLayer], logits_node: str | None
                  ) -> list[LayerInfo]:
    """The chosen layers' infos with their ``inputs`` (and functional ops' ``operands``) set.

    A layer's inputs are the nearest chosen layers upstream along every path; a
    functional op's ``config["operands"]`` names, for each tensor argument, the nearest
    chosen layer up its first-input path (None if none). Without a graph (hooks): the chain.
    """
    if traced is None:
        return [replace(g.info, inputs=() if i == 0 else (chosen[i - 1].info.name,))
                for i, g in enumerate(chosen)]
    by_node = {g.node: g.info.name for g in chosen if g.node}
    memo: dict[str, tuple[str, ...]] = {}

    def upstream(node: str) -> tuple[str, ...]:
        if node in by_node:
            return (by_node[node],)
        if node not in memo:
            memo[node] = ()  # cycles cannot happen in fx; guards recursion on bad input
            out: list[str] = []
            for p in traced.parents.get(node, ()):
                for name in upstream(p):
                    if name not in out:
                        out.append(name)
            memo[node] = tuple(out)
        return memo[node]

    def first_up(node: str) -> str | None:
        while node not in by_node:
            ps = traced.parents.get(node, ())
            if len(ps) != 1:
                return None
            node = ps[0]
        return by_node[node]

    infos = []
    for g in chosen:
        if g.info.name == "softmax":
            src = upstream(logits_node) if logits_node else ()
            if not src:
                prev = [c.info.name for c in chosen if c.info.name != "softmax"]
                src = (prev[-1],) if prev else ()
            infos.append(replace(g.info, inputs=src[:1]))
            continue
        inputs: list[str] = []
        for p in g.parents:
            for name in upstream(p):
                if name not in inputs:
                    inputs.append(name)
        info = replace(g.info, inputs=tuple(inputs))
        if g.operand_nodes:
            info = replace(info, config={**info.config,
                                         "operands": [first_up(o) for o in g.operand_nodes]})
        infos.append(info)
    return infos
