#!/usr/bin/env python
"""Write the vectors the JavaScript tour maths is tested against, from the Python reference.

    python scripts/make_js_fixtures.py            # (re)write tests/fixtures/tour_vectors.json
    python scripts/make_js_fixtures.py --check    # exit 1 if the committed file is stale

Every case is computed by ``grandtour.tour`` / ``grandtour.manipulate`` from fixed seeds,
with explicit parameters (angular velocities, phases, bases, target lists), so the JS side
(``tests/js/fixtures.test.mjs``) can rebuild the same objects and must agree to 1e-9.
Floats are written with ``repr`` (shortest round trip), so nothing is lost; non-finite
inputs of the error cases are written as the strings "NaN", "Infinity", "-Infinity". The
layout is fixed (sorted keys, one case per line), so the file is byte-stable.

Only what is *defined* is recorded: where two principal angles are equal the principal
vectors are any rotation of each other, so those cases keep their angles and drop
``P, G, U`` (the tests check their invariants instead).

``--check`` compares the parsed numbers exactly, then the bytes. ``--tol`` relaxes that for
a machine whose BLAS kernels or libm round differently (``scripts/test`` passes 1e-12): a
number may then move by ``tol`` relative, times the condition number of its case (a nearly
dependent Gram-Schmidt row, principal vectors of nearly equal angles), see :func:`compare`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from grandtour import manipulate as mp  # noqa: E402
from grandtour import tour as tr  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "tour_vectors.json"
SIZES = (2, 3, 5, 10, 33)
# Principal vectors are recorded only where the cosines of the two principal angles differ
# by more than this: below it they are any rotation of each other (ill-posed).
PAIRS_GAP = 1e-6


# ----------------------------------------------------------------------------- encoding


def enc(x):
    """JSON-ready: arrays to nested lists, non-finite floats to strings."""
    if isinstance(x, np.ndarray):
        return enc(x.tolist())
    if isinstance(x, (list, tuple)):
        return [enc(v) for v in x]
    if isinstance(x, dict):
        return {str(k): enc(v) for k, v in x.items()}
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    return x


def dec(x):
    """Inverse of :func:`enc` for inputs: the special strings back to floats."""
    if isinstance(x, list):
        return [dec(v) for v in x]
    if x == "NaN":
        return math.nan
    if x == "Infinity":
        return math.inf
    if x == "-Infinity":
        return -math.inf
    return x


def dumps(obj) -> str:
    """Byte-stable JSON: sorted keys, compact, each case of a top-level list on its own line."""
    def one(v):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), allow_nan=False)

    lines = ["{"]
    keys = sorted(obj)
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        val = obj[key]
        if isinstance(val, list):
            lines.append(f"{json.dumps(key)}:[")
            lines += [one(case) + ("," if j < len(val) - 1 else "") for j, case in enumerate(val)]
            lines.append("]" + comma)
        else:
            lines.append(f"{json.dumps(key)}:{one(val)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- helpers


def random_orthogonal(n: int, rng: np.random.Generator, det: int = 1) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q * np.sign(np.diag(R))
    if np.linalg.det(Q) * det < 0:
        Q[:, 0] = -Q[:, 0]
    return Q


def orthonormal_frame(n: int, rng: np.random.Generator) -> np.ndarray:
    return tr.random_frame(n, rng)


# ----------------------------------------------------------------------------- tours

GT_DTS = [1 / 60, 0.5, -0.3, 1 / 144, 2.0, -1e-3, 0.0, 12.5, -40.0]


def grand_tour_cases():
    cases = []
    for n in SIZES:
        rng = np.random.default_rng(100 + n)
        m = n * (n - 1) // 2
        omega = rng.standard_normal(m) * 0.8
        phase = rng.uniform(-20.0, 20.0, m)  # outside [0, 2 pi): the constructor wraps them
        base = random_orthogonal(n, rng, det=-1 if n == 5 else 1)
        right = random_orthogonal(n, rng)
        t = tr.GrandTour(n, angular_velocity=omega, phase=phase, base=base, right=right)
        case = {
            "n": n, "angular_velocity": omega, "phase": phase, "base": base, "right": right,
            "stages": [s.tolist() for s in tr.givens_stages(n)],
            "initial": enc({"angles": t.angles, "frame": t.frame()}),  # enc copies: angles change in place
            "steps": [],
        }
        for dt in GT_DTS:
            t.step(dt)
            case["steps"].append(enc({"dt": dt, "frame": t.frame(), "time": t.time}))
        case["final_angles"] = enc(t.angles)
        case["matrix"] = t.matrix
        X = rng.standard_normal((4, n))
        case["project"] = {"X": X, "Y": t.project(X)}
        GT = random_orthogonal(n, rng, det=-1 if n == 3 else 1)
        t.matrix = GT
        case["set_matrix"] = enc({"GT": GT, "frame": t.frame(), "matrix": t.matrix,
                                  "frame_after_step": t.step(0.25).frame()})
        P = random_orthogonal(n, rng)
        t.rebase(P)
        case["rebase"] = enc({"P": P, "frame": t.frame(), "matrix": t.matrix,
                              "frame_after_step": t.step(-0.1).frame(), "time": t.time})
        cases.append(enc(case))
    return cases


def _target_list(n, rng, count):
    return [rng.standard_normal((n, 2)) for _ in range(count)]


def _geodesic_run(n, speed, targets, start, dts, set_dts, rebase_dts, rng):
    used = [0]

    def next_target():
        if used[0] >= len(targets):
            raise RuntimeError("fixture needs more targets: lengthen the target list")
        used[0] += 1
        return targets[used[0] - 1]

    g = tr.GeodesicTour(n, speed=speed, targets=next_target, start=start)

    def state():  # enc copies, so later steps cannot change what was recorded
        return enc({"frame": g.frame(), "progress": g.progress, "segment_length": g.segment_length,
                "targets_reached": g.targets_reached, "time": g.time})

    case = {"n": n, "speed": speed, "targets": targets, "start": start,
            "initial": state(), "steps": []}
    for dt in dts:
        g.step(dt)
        case["steps"].append({"dt": dt, **state()})
    case["matrix"] = enc(g.matrix)
    GT = random_orthogonal(n, rng)
    g.matrix = GT
    case["set_matrix"] = {"GT": GT, "matrix": g.matrix, **state(), "steps": []}
    for dt in set_dts:
        g.step(dt)
        case["set_matrix"]["steps"].append({"dt": dt, **state()})
    P = random_orthogonal(n, rng)
    g.rebase(P)
    case["rebase"] = {"P": P, "matrix": g.matrix, **state(), "steps": []}
    for dt in rebase_dts:
        g.step(dt)
        case["rebase"]["steps"].append({"dt": dt, **state()})
    case["final_matrix"] = g.matrix
    case["targets"] = targets[:used[0]]  # only those the tour asked for
    return case


def geodesic_cases():
    cases = []
    for n in (3, 5, 10, 33):
        rng = np.random.default_rng(200 + n)
        targets = _target_list(n, rng, 30)
        start = random_orthogonal(n, rng) if n in (5, 33) else None
        cases.append(_geodesic_run(
            n, 0.9, targets, start,
            dts=[0.1, 0.5, 0.0, 1.7, 0.05, 3.0, 0.3, 6.0],
            set_dts=[0.2, 2.5], rebase_dts=[0.4, 1.1], rng=rng))
    # Zero-length segments: the first target is the starting plane (another basis of
    # it), and a later one repeats the plane just reached.
    rng = np.random.default_rng(299)
    n = 4
    t1 = rng.standard_normal((n, 2))
    targets = [np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]), t1, t1 * [2.0, -3.0]]
    targets += _target_list(n, rng, 20)
    cases.append(_geodesic_run(n, 0.7, targets, None, dts=[0.01, 1.0, 2.0, 0.5, 4.0],
                               set_dts=[0.3], rebase_dts=[0.6], rng=rng))
    # n = 2: the only plane is R^2, the tour stands still.
    rng = np.random.default_rng(301)
    cases.append(_geodesic_run(2, 0.5, _target_list(2, rng, 3), random_orthogonal(2, rng), dts=[0.5, 3.0],
                               set_dts=[1.0], rebase_dts=[1.0], rng=rng))
    # Speed 0: nothing moves.
    rng = np.random.default_rng(300)
    cases.append(_geodesic_run(3, 0.0, _target_list(3, rng, 3), None, dts=[0.5, 10.0],
                               set_dts=[1.0], rebase_dts=[1.0], rng=rng))
    return cases


# ----------------------------------------------------------------------------- linalg


def svd2_cases():
    rng = np.random.default_rng(400)
    c, s = math.cos(0.7), math.sin(0.7)
    mats = [rng.standard_normal((2, 2)) for _ in range(6)] + [
        np.eye(2), -np.eye(2), np.zeros((2, 2)), np.diag([2.0, 3.0]), np.diag([3.0, -2.0]),
        np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0, 2.0], [2.0, 4.0]]),
        np.array([[1.0, 0.0], [0.0, 0.0]]), 1.5 * np.array([[c, -s], [s, c]]),
        0.5 * np.array([[c, s], [s, -c]]), np.array([[1e-8, 0.0], [0.0, 1e-8]]),
        np.array([[1e6, -3.0], [2e-3, 7.0]]),
    ]
    out = []
    for M in mats:
        U, sv, V = tr.svd2(M)
        out.append({"M": M, "U": U, "s": sv, "V": V})
    return out


def principal_cases():
    out = []
    for n in SIZES:
        rng = np.random.default_rng(500 + n)
        A, B = orthonormal_frame(n, rng), orthonormal_frame(n, rng)
        out.append((A, B))
        out.append((A, A @ np.array([[0.6, -0.8], [0.8, 0.6]])))  # the same plane
    e = np.eye(4)
    out.append((e[:, :2], e[:, 2:]))  # orthogonal planes
    for angle in (1e-8, 0.3, math.pi / 2 - 1e-9):
        B = np.stack([e[:, 0], math.cos(angle) * e[:, 1] + math.sin(angle) * e[:, 2]], axis=1)
        out.append((e[:, :2], B))  # one shared direction
    B = np.stack([math.cos(1e-6) * e[:, 0] + math.sin(1e-6) * e[:, 3], e[:, 2]], axis=1)
    out.append((e[:, :2], B))  # one tiny angle, one right angle
    cases = []
    for A, B in out:
        P, G, theta, U = tr._principal_pairs(A, B)  # noqa: SLF001 - what the JS principalPairs mirrors
        _, s, _ = tr.svd2(A.T @ B)
        case = {"A": A, "B": B, "angles": tr.principal_angles(A, B), "theta": theta,
                "pairs_defined": bool(s[0] - s[1] > PAIRS_GAP)}
        if case["pairs_defined"]:
            case.update(P=P, G=G, U=U)
        # else equal principal angles leave the principal vectors free (any rotation of
        # them): P, G, U are rounding noise that differs between BLAS kernels, so they are
        # not recorded; tests/test_tour.py and the JS test check their invariants instead.
        cases.append(case)
    return cases


# ----------------------------------------------------------------------------- manipulation


def gram_schmidt_cases():
    rng = np.random.default_rng(600)
    mats = []
    for n, first in ((2, 1), (3, 0), (3, 1), (3, 2), (5, 3), (10, 7), (33, 20)):
        mats.append((rng.standard_normal((n, n)), first))
    M = rng.standard_normal((4, 4))
    M[2] = M[1] + 1e-6 * rng.standard_normal(4)  # nearly dependent: kept, not replaced
    mats.append((M, 0))
    e = np.eye(3)
    for first in range(3):
        mats.append((np.stack([e[0], e[1], e[1]]), first))  # dependent: one row completed
    mats.append((np.zeros((4, 4)), 0))  # every row completed
    mats.append((np.zeros((4, 4)), 3))
    R = rng.standard_normal((2, 5))
    mats.append((rng.standard_normal((5, 2)) @ R, 1))  # rank 2 of 5
    mats.append((np.array([[1.0, 1.0], [1.0, 1.0]]), 0))
    Q = random_orthogonal(4, rng, det=-1)
    Q[3] = Q[0]
    mats.append((Q, 2))
    return [{"M": M, "first": f, "Q": mp.gram_schmidt_rows(M, first=f)} for M, f in mats]


def axis_drag_cases():
    rng = np.random.default_rng(700)
    cases = []

    def add(GT, i, dx, dy):
        h = GT[i, :2]
        cases.append({"GT": GT, "i": i, "dx": dx, "dy": dy,
                      "flip_test": 1.0 + float(h @ [dx, dy]),
                      "result": mp.axis_drag(GT, i, dx, dy)})

    for n in (2, 3, 5, 10):
        GT = random_orthogonal(n, rng)
        add(GT, 0, 0.1, -0.05)
        add(GT, n - 1, 0.8, 0.6)
        h = GT[1, :2]
        add(GT, 1, float(-2.5 * h[0]), float(-2.5 * h[1]))  # through the origin: split
        add(GT, 1, 0.0, 0.0)  # zero drag
    GT = random_orthogonal(5, rng, det=-1)
    add(GT, 2, 0.3, 0.2)
    h = GT[4, :2]
    add(GT, 4, float(-3 * h[0] + 0.01), float(-3 * h[1]))
    add(np.eye(3), 2, 0.4, -0.3)  # handle at the origin
    add(random_orthogonal(33, rng), 17, -0.2, 0.35)
    return cases


def point_drag_cases():
    rng = np.random.default_rng(800)
    cases = []

    def add(GT, c, dx, dy, note):
        cases.append({"GT": GT, "c": c, "dx": dx, "dy": dy, "note": note,
                      "result": mp.point_drag(GT, c, dx, dy)})

    for n in (2, 3, 5, 10, 33):
        GT = random_orthogonal(n, rng)
        c = rng.standard_normal(n)
        add(GT, c, 0.2, -0.1, "generic")
        add(GT, c, -3.0, 4.0, "large")
        add(GT, np.zeros(n), 0.2, 0.1, "zero centroid")
        add(GT, c, 0.0, 0.0, "zero drag")
    I3 = np.eye(3)
    add(I3, np.array([0.3, -0.2, 0.0]), -0.3, 0.2, "target at the origin")
    add(I3, np.array([0.3, -0.2, 0.0]), -0.3 + 1e-12, 0.2, "target within 1e-9 |c~| of the origin")
    add(I3, np.array([0.3, -0.2, 0.0]), -0.3 + 1e-6, 0.2, "target near, not at, the origin")
    add(I3, np.array([0.3, -0.2, 0.0]), -0.6, 0.4, "opposite")
    add(I3, np.array([0.3, -0.2, 0.0]), 0.3, -0.2, "parallel")
    add(I3, np.array([0.3, -0.2, 0.5]), -0.6, 0.4, "through the origin, off the screen plane")
    GT = random_orthogonal(4, rng)
    ct = np.array([0.5, 0.25, 0.0, 0.0])
    add(GT, ct @ GT.T, -1.0, -0.5, "opposite, rotated GT")
    return cases


def centroid_cases():
    rng = np.random.default_rng(900)
    X = rng.standard_normal((7, 4))
    X[3, 1] = math.nan
    X[5, 2] = math.inf
    sels = [None, [True, False, True, True, False, True, True], [0, 2, -1, 2], [3, 4], [6]]
    return [{"X": X, "selection": s, "c": mp.centroid(X, s)} for s in sels]


# ----------------------------------------------------------------------------- errors


def _gt(a):
    return tr.GrandTour(a["ndim"], seed=0, angular_velocity=a.get("angular_velocity"), phase=a.get("phase"),
                        base=a.get("base"), right=a.get("right"))


def _geo(a):
    n = a["ndim"]
    if "target" in a:
        return tr.GeodesicTour(n, seed=0, speed=a.get("speed", 0.5), targets=lambda: np.array(a["target"]))
    return tr.GeodesicTour(n, seed=0, speed=a.get("speed", 0.5))


ERROR_RUNNERS = {
    "grand_tour": lambda a: _gt(a).frame(),
    "grand_tour_step": lambda a: _gt(a).step(a["dt"]),
    "grand_tour_set_matrix": lambda a: setattr(_gt(a), "matrix", np.array(a["GT"])),
    "grand_tour_rebase": lambda a: _gt(a).rebase(np.array(a["P"])),
    "geodesic_tour": lambda a: _geo(a),
    "geodesic_step": lambda a: _geo(a).step(a["dt"]),
    "check_orthogonal": lambda a: tr.check_orthogonal(np.array(a["GT"])),
    "svd2": lambda a: tr.svd2(np.array(a["M"])),
    "gram_schmidt_rows": lambda a: mp.gram_schmidt_rows(np.array(a["M"]), first=a["first"]),
    "axis_drag": lambda a: mp.axis_drag(np.array(a["GT"]), a["i"], a["dx"], a["dy"]),
    "point_drag": lambda a: mp.point_drag(np.array(a["GT"]), np.array(a["c"]), a["dx"], a["dy"]),
    "centroid": lambda a: mp.centroid(np.array(a["X"]), a["selection"]),
}


def error_cases():
    I3 = np.eye(3).tolist()
    specs = [
        ("grand_tour", {"ndim": 1}),
        ("grand_tour", {"ndim": 3, "angular_velocity": [1.0, 2.0]}),
        ("grand_tour", {"ndim": 3, "phase": [0.0, "NaN", 0.0]}),
        ("grand_tour", {"ndim": 3, "base": np.eye(4).tolist()}),
        ("grand_tour", {"ndim": 3, "base": [[1.0, 0, 0], [0, 1.1, 0], [0, 0, 1]]}),
        ("grand_tour", {"ndim": 3, "right": np.eye(2).tolist()}),
        ("grand_tour", {"ndim": 3, "right": [[0.0, 1, 0], [1, 0, 0], [0, 0, 1]]}),
        ("grand_tour", {"ndim": 3, "angular_velocity": [1.0, 2.0, 3.0], "phase": [0.0, 1.0, 2.0]}),
        ("grand_tour_step", {"ndim": 3, "dt": "Infinity"}),
        ("grand_tour_step", {"ndim": 3, "dt": -1.5}),
        ("grand_tour_set_matrix", {"ndim": 3, "GT": [[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1]]}),
        ("grand_tour_set_matrix", {"ndim": 3, "GT": np.eye(4).tolist()}),
        ("grand_tour_set_matrix", {"ndim": 3, "GT": [[1.0, 0, 0], [0, "NaN", 0], [0, 0, 1]]}),
        ("grand_tour_rebase", {"ndim": 3, "P": [[0.0, 1.0], [1.0, 0.0]]}),
        ("grand_tour_rebase", {"ndim": 3, "P": [[0.0, 1, 0], [1, 0, 0], [0, 0, -1]]}),
        ("geodesic_tour", {"ndim": 1}),
        ("geodesic_tour", {"ndim": 3, "speed": -1.0}),
        ("geodesic_tour", {"ndim": 3, "target": [[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]]}),
        ("geodesic_tour", {"ndim": 3, "target": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}),
        ("geodesic_tour", {"ndim": 3, "target": [[1.0, 0.0], ["NaN", 1.0], [0.0, 0.0]]}),
        ("geodesic_tour", {"ndim": 3, "target": [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]}),
        ("geodesic_step", {"ndim": 3, "dt": -0.1}),
        ("geodesic_step", {"ndim": 3, "dt": "NaN"}),
        ("geodesic_step", {"ndim": 3, "dt": 0.1}),
        ("geodesic_step", {"ndim": 2, "dt": 0.1}),
        ("check_orthogonal", {"GT": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}),
        ("check_orthogonal", {"GT": [[1.0]]}),
        ("check_orthogonal", {"GT": [[1.0, 1e-3], [0.0, 1.0]]}),
        ("check_orthogonal", {"GT": [[1.0, 1e-7], [0.0, 1.0]]}),
        ("svd2", {"M": I3}),
        ("gram_schmidt_rows", {"M": I3, "first": 3}),
        ("gram_schmidt_rows", {"M": I3, "first": -1}),
        ("gram_schmidt_rows", {"M": [[1.0, 0.0], [0.0, "Infinity"]], "first": 0}),
        ("gram_schmidt_rows", {"M": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "first": 0}),
        ("axis_drag", {"GT": I3, "i": 3, "dx": 0.1, "dy": 0.0}),
        ("axis_drag", {"GT": I3, "i": 0, "dx": "NaN", "dy": 0.0}),
        ("axis_drag", {"GT": [[1.0, 0, 0], [0, 1.5, 0], [0, 0, 1]], "i": 0, "dx": 0.1, "dy": 0.0}),
        ("point_drag", {"GT": I3, "c": [1.0, 2.0], "dx": 0.1, "dy": 0.0}),
        ("point_drag", {"GT": I3, "c": [1.0, "NaN", 0.0], "dx": 0.1, "dy": 0.0}),
        ("point_drag", {"GT": I3, "c": [1.0, 2.0, 3.0], "dx": 0.1, "dy": "-Infinity"}),
        ("centroid", {"X": I3, "selection": [True, False]}),
        ("centroid", {"X": I3, "selection": [False, False, False]}),
        ("centroid", {"X": [[1.0, "NaN"], [2.0, 3.0]], "selection": [0]}),
        ("centroid", {"X": I3, "selection": [5]}),
        ("centroid", {"X": I3, "selection": [-1]}),
    ]
    cases = []
    for fn, args in specs:
        try:
            ERROR_RUNNERS[fn](dict((k, dec(v)) for k, v in args.items()))
        except Exception as exc:  # noqa: BLE001 - we record which calls raise
            raises, error = True, type(exc).__name__
        else:
            raises, error = False, None
        cases.append({"fn": fn, "args": args, "raises": raises, "error": error})
    return cases


# ----------------------------------------------------------------------------- main


def build() -> dict:
    obj = {
        "about": ("Test vectors for src/grandtour/web/js (tour.js, manipulate.js, linalg.js), "
                  "written by scripts/make_js_fixtures.py from grandtour.tour and "
                  "grandtour.manipulate. Matrices are lists of rows. Do not edit by hand."),
        "tolerance": 1e-9,
        "flip_margin": mp.FLIP_MARGIN,
        "substep": mp.SUBSTEP,
        "grand_tour": grand_tour_cases(),
        "geodesic_tour": geodesic_cases(),
        "svd2": svd2_cases(),
        "principal_angles": principal_cases(),
        "gram_schmidt_rows": gram_schmidt_cases(),
        "axis_drag": axis_drag_cases(),
        "point_drag": point_drag_cases(),
        "centroid": centroid_cases(),
        "errors": error_cases(),
    }
    return enc(obj)


# ----------------------------------------------------------------------------- check
#
# What --check compares. Every value in the file is defined by its inputs (the ill-posed
# ones, the principal vectors of equal angles, are not recorded), but not equally well:
# a value that is a condition number kappa away from its inputs moves by about
# kappa * eps when another BLAS kernel rounds the inputs' products differently. So a
# number passes when |committed - regenerated| <= tol * kappa(case) * max(1, |value|),
# with kappa computed from the committed inputs of its case (1 where the maths is
# orthogonal, hence perfectly conditioned: tours, drags, centroids, the closed-form svd2).


def _principal_condition(case) -> float:
    """Error amplification of the principal pairs ``P, G, U`` of ``span A`` and ``span B``.

    ``P`` and ``U`` are singular vectors of ``A^T B`` (2 x 2): they move by
    ``eps / (s_0 - s_1)``. ``G_k`` is the normalised residual of a partner, of length
    ``sin theta_k``: it moves by ``eps / sin theta_k``. The angles alone are
    well-conditioned (kappa 1), which is all a case without pairs records.
    """
    if not case.get("pairs_defined"):
        return 1.0
    A, B = np.array(case["A"], dtype=float), np.array(case["B"], dtype=float)
    _, s, _ = tr.svd2(A.T @ B)
    sines = [math.sin(t) for t in case["theta"] if t > 0]
    return max(1.0, 1.0 / (s[0] - s[1]), *(1.0 / x for x in sines))


def _gram_schmidt_condition(case) -> float:
    """Error amplification of ``gram_schmidt_rows(M)``: kappa_2 of ``M`` on its numerical rank.

    Orthonormalising nearly dependent rows divides by their small residual: the Q factor's
    forward error is about ``eps * sigma_max / sigma_min``; rows in the span of the others
    (``sigma`` at rounding level) are completed from the kept ones, so they do not count.
    """
    M = np.array(dec(case["M"]), dtype=float)
    if not np.all(np.isfinite(M)):
        return 1.0
    sv = np.linalg.svd(M, compute_uv=False)
    rank = int(np.linalg.matrix_rank(M))
    return float(sv[0] / sv[rank - 1]) if rank else 1.0


CONDITION = {"principal_angles": _principal_condition, "gram_schmidt_rows": _gram_schmidt_condition}


def _differences(old, new, path="$", tol=0.0, out=None, worst=None):
    """Collect paths where ``old`` and ``new`` differ.

    Numbers differ when ``|old - new| > tol * max(1, |old|, |new|)`` (so ``tol = 0`` is
    exact, sign of zero included); anything else must be equal.
    """
    if out is None:
        out, worst = [], [0.0]
    num = (int, float)
    numbers = isinstance(old, num) and isinstance(new, num)
    if numbers and not isinstance(old, bool) and not isinstance(new, bool):
        d = abs(float(old) - float(new))
        worst[0] = max(worst[0], d)
        same_zero_sign = math.copysign(1.0, old) == math.copysign(1.0, new) or d > 0
        if d > tol * max(1.0, abs(old), abs(new)) or (tol == 0 and not same_zero_sign):
            out.append(f"{path}: {old!r} != {new!r}")
    elif isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                out.append(f"{path}.{k}: only in the {'new' if k not in old else 'committed'} vectors")
            else:
                _differences(old[k], new[k], f"{path}.{k}", tol, out, worst)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _differences(a, b, f"{path}[{i}]", tol, out, worst)
    elif old != new or type(old) is not type(new):
        out.append(f"{path}: {json.dumps(old)[:60]} != {json.dumps(new)[:60]}")
    return out, worst[0]


def compare(old: dict, new: dict, tol: float) -> tuple[list[str], float]:
    """Differences between the committed vectors ``old`` and the regenerated ``new``.

    Each case of a section in :data:`CONDITION` is compared with ``tol`` times its
    condition number (from the committed inputs); every other value with ``tol``.
    Returns the differing paths and the largest numeric difference.
    """
    out, worst = [], [0.0]
    for key in sorted(set(old) | set(new)):
        if key not in old or key not in new:
            out.append(f"$.{key}: only in the {'new' if key not in old else 'committed'} vectors")
            continue
        a, b = old[key], new[key]
        if key in CONDITION and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (ca, cb) in enumerate(zip(a, b)):
                try:
                    kappa = CONDITION[key](ca)
                except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
                    kappa = 1.0  # a case of another layout: it will differ anyway
                _differences(ca, cb, f"$.{key}[{i}]", tol * kappa, out, worst)
        else:
            _differences(a, b, f"$.{key}", tol, out, worst)
    return out, worst[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and fail if the committed file differs")
    ap.add_argument("--tol", type=float, default=0.0,
                    help="with --check: accept numbers within this relative difference, times the "
                         "condition number of their case (default 0: exact, and the bytes too)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    text = dumps(build())
    rel = args.out.resolve().relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {rel} ({len(text.encode()) / 1024:.0f} KiB)")
        return 0
    regen = "python scripts/make_js_fixtures.py"
    if not args.out.exists():
        print(f"{rel} is missing: generate it with `{regen}`", file=sys.stderr)
        return 1
    committed = args.out.read_text(encoding="utf-8")
    diffs, worst = compare(json.loads(committed), json.loads(text), args.tol)
    if diffs:
        print(f"{rel} is stale: {len(diffs)} value(s) differ from what grandtour.tour/manipulate "
              f"compute now (largest numeric difference {worst:.3g}); first ones:", file=sys.stderr)
        for d in diffs[:10]:
            print("  " + d, file=sys.stderr)
        print(f"Regenerate it with `{regen}` (and rerun `node --test tests/js/`). A difference of "
              "about 1e-16 (times the case's condition number) only means this machine rounds "
              "differently (BLAS/libm): see --tol.", file=sys.stderr)
        return 1
    if committed != text and args.tol == 0:
        print(f"{rel} has the right numbers but not the canonical layout: regenerate it with `{regen}`",
              file=sys.stderr)
        return 1
    print(f"{rel} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
