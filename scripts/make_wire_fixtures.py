#!/usr/bin/env python
"""Record the wire contract between the server and the page, from the real app.

    python scripts/make_wire_fixtures.py            # (re)write tests/fixtures/wire_responses.json
    python scripts/make_wire_fixtures.py --check    # exit 1 if the committed file is stale

One tiny deterministic run (fixed data; input -> fc (linear) -> act (relu) with a NaN and
an infinity in ``act``, a value beyond float16 in ``input``; 2 epochs, 2 splits, an
adversarial record, aligned by ``grandtour.align``) is served by
:func:`grandtour.server.create_app` through Starlette's TestClient. For every request the
page makes, the file holds the response (status, headers, body in base64) and ``decoded``:
the values the page must get from it, read here from the bytes by the contract of
:mod:`grandtour.server.wire` alone. ``tests/test_wire.py`` regenerates the responses and
compares; ``tests/js/wire.test.mjs`` feeds the recorded responses to ``datasource.js``.

What is pinned or left out, and why:

* ``live`` (in ``/api/runs`` and ``meta``) compares the wall clock with the last commit:
  the served run's clock is pinned to one second after its last commit.
* ``ETag`` values hash the run's creation time: only their presence is recorded
  (``"etag": true``); ``Date`` and ``Content-Length`` are not recorded.
* PNG atlases: the bytes depend on the zlib build, so the file records their headers and
  a hash of the decoded pixels, not the body.
* The weights of ``fc`` are a signed, scaled permutation and every value is a multiple of
  1/8: the SVD alignment, the transitions and their bases are exact (no LAPACK rounding),
  so the bits are the same on every machine.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))  # also when loaded from a file path (tests/test_wire.py)

from make_js_fixtures import enc  # noqa: E402 - one JSON encoding of test vectors for both fixtures

OUT = ROOT / "tests" / "fixtures" / "wire_responses.json"
RUN = "wire"  # the run's directory name, hence its id
CLASSES = ["ant", "bee", "cow"]
SIZES = {"train": 6, "test": 4}
EPOCHS = (0, 1)
DIM = 4
PERM = (2, 0, 3, 1)  # fc output i reads input PERM[i] ...
GAINS = (2.0, -1.5, 1.0, -0.5)  # ... times GAINS[i] * (epoch + 1)
BIAS = (0.125, -0.25, 0.5, 0.0)
BIG = 1.5 * 2**17  # beyond float16 (65504): sent with X-Scale > 1
ADV_STEPS, ADV_M = 2, 2
#: Response headers not recorded (volatile, or implied by the body).
UNRECORDED = ("date", "etag", "content-length")
BASE = "http://127.0.0.1"


# ----------------------------------------------------------------------------- the run


def _values(rng: np.random.Generator, shape) -> np.ndarray:
    # Multiples of 1/8 in [-4, 4]: exact in float16, and through the maps below.
    return rng.integers(-32, 33, size=shape) / 8.0


def fc_params(epoch: int) -> dict[str, np.ndarray]:
    """``fc``'s weight ``(4, 4)`` (row i: GAINS[i] (epoch + 1) at column PERM[i]) and bias."""
    w = np.zeros((DIM, DIM))
    for i, (j, g) in enumerate(zip(PERM, GAINS, strict=True)):
        w[i, j] = g * (epoch + 1)
    return {"weight": w, "bias": np.array(BIAS)}


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    x = {s: _values(rng, (n, DIM)) for s, n in SIZES.items()}
    x["test"][0, 0] = BIG
    return x


def epoch_data(epoch: int) -> dict[str, dict[str, np.ndarray]]:
    """``{split: {layer: (N, 4)}}`` as recorded at ``epoch``.

    ``act`` is ``relu(fc)`` at epoch 0; at epoch 1 one train row is off by 2 (so the
    transition is labelled inexact, with a note), one train row is NaN and one test
    entry infinite.
    """
    p = fc_params(epoch)
    out = {}
    for split, x in inputs().items():
        fc = x @ p["weight"].T + p["bias"]
        act = np.maximum(fc, 0.0)
        if epoch == 1:
            act[0] += 2.0 if split == "train" else 0.0
            if split == "train":
                act[2, 1] = np.nan
            else:
                act[1, 3] = np.inf
        out[split] = {"input": x, "fc": fc, "act": act}
    return out


def adversarial_activations() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(9)
    fc = _values(rng, (ADV_STEPS + 1, ADV_M, DIM))
    fc[2, 1, 0] = 1.5 * 2**16  # X-Scale 2
    return {"fc": fc, "act": np.maximum(fc, 0.0)}


def make_run(root: Path) -> Path:
    """Write and align the run under ``root``; returns its directory."""
    from grandtour.align import align_run
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    rng = np.random.default_rng(3)
    layers = [LayerInfo("input", "input", (DIM,), static=True),
              LayerInfo("fc", "linear", (DIM,), module="Linear(4, 4)",
                        config={"in_features": DIM, "out_features": DIM, "bias": True}),
              LayerInfo("act", "relu", (DIM,), module="ReLU()")]
    probes = {"train": ProbeSet(labels=np.arange(SIZES["train"]) % 3,
                                images=rng.integers(0, 256, (SIZES["train"], 1, 3, 2), dtype=np.uint8)),
              "test": ProbeSet(labels=(np.arange(SIZES["test"]) + 1) % 3)}  # no thumbnails
    path = root / RUN
    writer = RunWriter.create(path, dataset="toy", class_names=CLASSES, layers=layers, probes=probes,
                              config={"lr": 0.125})
    for epoch in EPOCHS:
        metrics = {"train": {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.25 * epoch,
                             "class_loss": [0.5, 1.0, 1.5], "class_accuracy": [0.25, 0.5, 0.75]}}
        if epoch:  # epoch 0 has no test metrics: NaN, sent as null
            metrics["test"] = {"loss": 2.0, "accuracy": 0.25, "class_loss": [2.0, 2.0, 2.0],
                               "class_accuracy": [0.0, 0.5, 0.25]}
        predictions = {"train": (np.arange(SIZES["train"]) + epoch) % 3}
        if epoch:  # epoch 0 has no test predictions: -1
            predictions["test"] = np.arange(SIZES["test"]) % 3
        writer.write_epoch(epoch, activations=epoch_data(epoch), predictions=predictions,
                           metrics=metrics, params={"fc": fc_params(epoch)})
    writer.write_adversarial(
        "default", epoch=1, source=0, target=2, eps=0.25, split="test", example_index=np.array([1, 3]),
        activations=adversarial_activations(),
        images=rng.integers(0, 256, (ADV_STEPS + 1, ADV_M, 3, 2, 2), dtype=np.uint8),
        predictions=np.array([[0, 0], [0, 2], [2, 2]]), target_loss=np.array([2.0, 1.25, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the inexact `act` at epoch 1 warns; it is recorded
        align_run(path, progress=False)
    return path


# ----------------------------------------------------------------------------- requests


def requests() -> list[tuple[str, str, list | None]]:
    """``(kind, url, call)`` for every request of the page; ``call`` is the
    ``HttpDataSource`` method and arguments that make it (None: not one of its own)."""
    api = f"/api/runs/{RUN}"
    out: list[tuple[str, str, list | None]] = [("json", "/api/runs", ["runs"]),
                                               ("json", f"{api}/meta", ["meta", RUN])]
    for layer in ("input", "fc", "act"):
        for epoch in EPOCHS:
            for split in SIZES:
                out.append(("float16", f"{api}/activations/{layer}/{epoch}/{split}",
                            ["activations", RUN, layer, epoch, split]))
    for split in SIZES:
        out.append(("int16", f"{api}/labels/{split}", ["labels", RUN, split]))
        for epoch in EPOCHS:
            out.append(("int16", f"{api}/predictions/{epoch}/{split}", ["predictions", RUN, epoch, split]))
        out.append(("json", f"{api}/metrics/{split}", ["metrics", RUN, split]))
        out.append(("atlas", f"{api}/images/{split}", ["images", RUN, split]))
        out.append(("json", f"{api}/images/{split}/layout", None))
    for layer in ("fc", "act"):
        for epoch in EPOCHS:
            for split in SIZES:
                url = f"{api}/transition/{layer}/{epoch}/{split}"
                out.append(("transition", url, ["transition", RUN, layer, epoch, split]))
                out.append(("basis", url + "/basis", None))
    # From a named input (`?source=`, a merge's other inputs; here the main one).
    url = f"{api}/transition/fc/1/test"
    out += [("transition", f"{url}?source=input", ["transition", RUN, "fc", 1, "test", "input"]),
            ("basis", f"{url}/basis?source=input", None)]
    out += [("json", f"{api}/adversarial/default", ["adversarial", RUN, "default"]),
            ("adv_predictions", f"{api}/adversarial/default/predictions",
             ["adversarialPredictions", RUN, "default"]),
            ("atlas", f"{api}/adversarial/default/images", None)]
    for layer in ("fc", "act"):
        out.append(("adv_layer", f"{api}/adversarial/default/{layer}",
                    ["adversarialLayer", RUN, "default", layer]))
    # Errors the page shows: JSON {"error"} with the status.
    out += [("json", f"{api}/activations/nope/0/train", ["activations", RUN, "nope", 0, "train"]),
            ("json", f"{api}/transition/input/0/train", ["transition", RUN, "input", 0, "train"]),
            ("json", f"{api}/predictions/9/train", ["predictions", RUN, 9, "train"])]
    return out


# ----------------------------------------------------------------------------- decoding


def _shape(headers) -> list[int]:
    return [int(v) for v in headers["x-shape"].split(",")]


def _float16(body: bytes, shape, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The bits and the values ``bits * scale`` of a float16 body of ``shape``."""
    bits = np.frombuffer(body, "<u2").reshape(shape)
    return bits, bits.view("<f2").astype(np.float64) * scale


def _slice(headers, body: bytes, names: tuple[str, ...]) -> dict:
    shape, scale = _shape(headers), float(headers["x-scale"])
    bits, values = _float16(body, shape, scale)
    return {**dict(zip(names, shape, strict=True)), "scale": scale,
            "nonfinite": int(headers["x-nonfinite"]), "data": bits, "values": values}


def _transition(headers, body: bytes) -> dict:
    n, k = _shape(headers)
    scale = float(headers["x-scale"])
    bits, values = _float16(body, (2, n, k), scale)
    return {"n": n, "k": k, "scale": scale, "nonfinite": int(headers["x-nonfinite"]),
            "previous": headers["x-previous"], "method": headers["x-method"],
            "exact": headers["x-exact"] != "0", "note": headers.get("x-note", ""),
            "residual": float(headers["x-residual"]) if "x-residual" in headers else None,
            "varianceKept": [float(v) for v in headers["x-variance-kept"].split(",")],
            "reduced": [v == "1" for v in headers["x-reduced"].split(",")],
            "basisUrl": headers["x-basis"], "start": bits[0], "end": bits[1],
            "start_values": values[0], "end_values": values[1]}


def _bases(headers, body: bytes) -> dict:
    flat = _shape(headers)
    values = np.frombuffer(body, "<f4").astype(np.float64)
    out, offset = {}, 0
    for name, rows, cols in zip(headers["x-basis-names"].split(","), flat[::2], flat[1::2], strict=True):
        out[name] = {"rows": rows, "cols": cols, "data": values[offset:offset + rows * cols]}
        offset += rows * cols
    return out


def _atlas(headers, body: bytes) -> dict:
    from PIL import Image

    cols, rows, cell_w, cell_h, n = (int(v) for v in headers["x-atlas"].split(","))
    img = Image.open(io.BytesIO(body))
    pixels = np.ascontiguousarray(np.asarray(img))
    return {"cols": cols, "rows": rows, "cellW": cell_w, "cellH": cell_h, "n": n,
            "png": {"mode": img.mode, "width": img.width, "height": img.height,
                    "pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}}


def decode(kind: str, status: int, headers, body: bytes) -> dict | list:
    """What the page must get from one response, read by the contract alone."""
    if status != 200 or kind == "json":
        return json.loads(body)
    if kind == "float16":
        return _slice(headers, body, ("n", "dim"))
    if kind == "adv_layer":
        return _slice(headers, body, ("steps1", "m", "dim"))
    if kind == "int16":
        return {"data": np.frombuffer(body, "<i2")}
    if kind == "adv_predictions":
        steps1, m = _shape(headers)
        return {"data": np.frombuffer(body, "<i2"), "steps1": steps1, "m": m}
    if kind == "transition":
        return _transition(headers, body)
    if kind == "basis":
        return _bases(headers, body)
    if kind == "atlas":
        return _atlas(headers, body)
    raise ValueError(f"unknown kind {kind!r}")


# ----------------------------------------------------------------------------- recording


def record(client, kind: str, url: str, call: list | None) -> dict:
    """One case: the request, the response as recorded, and its decoded values."""
    resp = client.get(url)
    headers = {k: v for k, v in sorted(resp.headers.items()) if k not in UNRECORDED}
    png = resp.headers.get("content-type") == "image/png"
    return {"kind": kind, "url": url, "call": call,
            "response": {"status": resp.status_code, "headers": headers, "etag": "etag" in resp.headers,
                         "body": None if png else base64.b64encode(resp.content).decode("ascii")},
            "decoded": enc(decode(kind, resp.status_code, resp.headers, resp.content))}


def serve(path: Path):
    """The app over the run at ``path``, its clock pinned (see the module docstring)."""
    from grandtour.server import create_app

    app = create_app([path])
    for h in app.state.runs:
        h.clock = lambda h=h: h.run.last_commit_time() + 1.0
    return app


def build() -> dict:
    """The whole fixture, from a fresh run in a temporary directory."""
    with warnings.catch_warnings():
        # Starlette >= 1.x prefers the `httpx2` fork for its test client; `httpx` still works.
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory(prefix="grandtour-wire-") as tmp:
        client = TestClient(serve(make_run(Path(tmp))), base_url=BASE)
        cases = [record(client, kind, url, call) for kind, url, call in requests()]
    return {"about": "Recorded by scripts/make_wire_fixtures.py: the server's responses and "
                     "what the page must decode from them. Do not edit.",
            "run": RUN, "unrecorded_headers": list(UNRECORDED), "cases": cases}


def dumps(obj) -> str:
    """Byte-stable JSON: sorted keys, compact, one case a line."""
    def one(v):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), allow_nan=False)

    head = {k: v for k, v in obj.items() if k != "cases"}
    lines = ",\n".join(one(c) for c in obj["cases"])
    return one(head)[:-1] + ',"cases":[\n' + lines + "\n]}\n"


def check(text: str, path: Path) -> int:
    """0 if ``path`` holds ``text``; else 1, saying which cases differ."""
    try:
        old = path.read_text(encoding="utf-8")
    except OSError as err:
        print(f"{path}: cannot read it ({err}); run python scripts/make_wire_fixtures.py", file=sys.stderr)
        return 1
    if old == text:
        return 0
    try:
        old_cases = {c["url"]: c for c in json.loads(old)["cases"]}
    except (ValueError, KeyError, TypeError):
        old_cases = {}
    new_cases = {c["url"]: c for c in json.loads(text)["cases"]}
    stale = sorted(u for u in new_cases.keys() | old_cases.keys() if new_cases.get(u) != old_cases.get(u))
    print(f"{path} is stale: the server's responses changed ({len(stale)} cases: "
          f"{', '.join(stale[:5]) or 'layout'}{' ...' if len(stale) > 5 else ''}). If the change is meant, "
          "run python scripts/make_wire_fixtures.py and update web/js/wire.js if the format changed",
          file=sys.stderr)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    text = dumps(build())
    if args.check:
        return check(text, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode()) // 1024} KB, {text.count(chr(10)) - 2} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
