"""A tiny run for the fault-injection suites (tests/test_reliability*.py), shared with
the subprocesses they kill: the same data in the test and in the child, so a resumed
run can be compared bit for bit with one written without interruption."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import grandtour
from grandtour.store import LayerInfo, ProbeSet, Run, RunWriter

CLASSES = ["a", "b", "c"]
SIZES = {"train": 5, "test": 4}
LAYERS = [LayerInfo("input", "input", (1, 2, 2), static=True),
          LayerInfo("fc", "linear", (3,), config={"in_features": 4, "out_features": 3}),
          LayerInfo("softmax", "softmax", (3,))]
V = "grandtour_test_version"  # the version key of the derived group the tests write


def probes() -> dict:
    return {s: ProbeSet(labels=np.arange(n) % 3, indices=np.arange(n) + 10,
                        images=(np.arange(n * 4).reshape(n, 1, 2, 2) * 3).astype(np.uint8))
            for s, n in SIZES.items()}


def create(path, **kw) -> RunWriter:
    return RunWriter.create(path, dataset="toy", class_names=CLASSES, layers=LAYERS, probes=probes(),
                            config={"lr": 0.1}, **kw)


def epoch_data(epoch: int) -> dict:
    rng = np.random.default_rng(epoch)
    acts = {s: {lay.name: rng.standard_normal((n, lay.dim)) * (1 + epoch) for lay in LAYERS}
            for s, n in SIZES.items()}
    for s, n in SIZES.items():  # the static input: the same at every epoch
        acts[s]["input"] = np.random.default_rng(99).standard_normal((n, 4))
    return dict(activations=acts,
                predictions={s: (np.arange(n) + epoch) % 3 for s, n in SIZES.items()},
                metrics={s: {"loss": 1.0 / (epoch + 1), "accuracy": 0.5,
                             "class_loss": np.arange(3.0) + epoch, "class_accuracy": np.full(3, 0.5)}
                         for s in SIZES},
                params={"fc": {"weight": rng.standard_normal((3, 4)), "bias": np.arange(3.0) * epoch}})


def adversarial_data(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return dict(epoch=1, source=0, target=2, eps=0.1, split="test", example_index=np.array([0, 2]),
                activations={"fc": rng.standard_normal((3, 2, 3)), "input": rng.standard_normal((3, 2, 4))},
                images=rng.integers(0, 256, (3, 2, 1, 2, 2), dtype=np.uint8),
                predictions=rng.integers(0, 3, (3, 2)), target_loss=np.linspace(1, 0, 3))


def write(w: RunWriter, epochs) -> RunWriter:
    for e in epochs:
        w.write_epoch(e, **epoch_data(e))
    return w


def make(path, epochs=(0, 1), **kw) -> Path:
    """A closed run with ``epochs`` written."""
    with create(path, **kw) as w:
        write(w, epochs)
    return Path(path)


def snapshot(path) -> dict[str, bytes]:
    """Everything a reader can read of the run, as bytes (NaN patterns included), without
    the times and identities that differ between two writings of the same data."""
    run = Run.open(path)
    out: dict[str, bytes] = {"epochs": repr(run.epochs).encode(),
                             "meta": repr((run.dataset, run.class_names, run.layers, run.splits,
                                           run.config)).encode()}
    for split in run.splits:
        for what in ("labels", "indices", "images"):
            out[f"{split}/{what}"] = getattr(run, what)(split).tobytes()
        for name, value in run.metrics(split).items():
            out[f"{split}/metrics/{name}"] = value.tobytes()
        for e in run.epochs:
            out[f"{split}/predictions/{e}"] = run.predictions(e, split).tobytes()
            for layer in run.layer_names:
                y, scale = run.activations_float16(layer, e, split)
                out[f"{split}/{layer}/{e}"] = y.tobytes() + repr(scale).encode()
    for e in run.epochs:
        out[f"nonfinite/{e}"] = repr(run.nonfinite(e)).encode()
        for layer in run.layer_names:
            for name, value in run.params(layer, e).items():
                out[f"params/{layer}/{name}/{e}"] = value.tobytes()
    for name in run.adversarial_names():
        rec = run.adversarial(name)
        out[f"adv/{name}"] = repr((rec.epoch, rec.source, rec.target, rec.eps, rec.split,
                                   rec.steps, rec.layers)).encode()
        out[f"adv/{name}/arrays"] = (rec.example_index.tobytes() + rec.predictions.tobytes()
                                     + rec.target_loss.tobytes() + rec.images().tobytes())
        for layer in rec.layers:
            out[f"adv/{name}/{layer}"] = rec.activations(layer).tobytes()
    group = run.group("alignment", version_key=V, version=1)
    if group is not None:
        out["alignment"] = repr(group.record).encode() + (
            group.read("basis").tobytes() if group.has("basis") else b"")
    return out


def env() -> dict:
    env = dict(os.environ)
    src = str(Path(grandtour.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


def spawn(body: str, *args: str, **popen) -> subprocess.Popen:
    """A Python child running ``body`` with this module and the store imported."""
    code = ("import os, sys, signal, time\nimport numpy as np\nfrom reliability_run import *\n"
            "from grandtour.store import Run, RunWriter, RunLock\n" + textwrap.dedent(body))
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env(), **popen)


#: Child code: kill this process (SIGKILL) the first time the store reaches stage argv[1].
KILL_AT = textwrap.dedent("""
    stage = sys.argv[1]
    def hook(at):
        if at == stage:
            os.kill(os.getpid(), signal.SIGKILL)
    RunWriter._test_hook = hook
""")


def flip_byte(path: Path, at: float = 0.5) -> None:
    """Flip one bit of the byte at relative position ``at`` of file ``path``."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at) if len(data) > 1 else 0] ^= 0x10
    path.write_bytes(bytes(data))
