"""The wire contract: the server still sends what tests/fixtures/wire_responses.json recorded,
and what it recorded is the run's data.

The fixture is written by scripts/make_wire_fixtures.py from a tiny deterministic run
served by the real app; tests/js/wire.test.mjs feeds the same responses to the page's
data source. So a change of the bytes or headers on either side fails one of the two.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("PIL")
pytest.importorskip("torch")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "wire_responses.json"
BUILDER = ROOT / "scripts" / "make_wire_fixtures.py"
JS_DATASOURCE = ROOT / "src" / "grandtour" / "web" / "js" / "datasource.js"


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_wire_fixtures", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mw = _load_builder()


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fresh() -> dict:
    """The fixture as the server answers now (a new run, built and served here)."""
    return json.loads(mw.dumps(mw.build()))


def _cases(doc: dict) -> dict[str, dict]:
    return {c["url"]: c for c in doc["cases"]}


def _num(x):
    """The fixture's special strings back to floats, recursively."""
    if isinstance(x, list):
        return [_num(v) for v in x]
    return float(x) if x in ("NaN", "Infinity", "-Infinity") else x


def test_the_server_sends_what_was_recorded(recorded: dict, fresh: dict) -> None:
    old, new = _cases(recorded), _cases(fresh)
    assert list(new) == list(old), "the requests changed: run python scripts/make_wire_fixtures.py"
    for url, case in new.items():
        assert case["response"] == old[url]["response"], f"{url}: the response changed"
        assert case["decoded"] == old[url]["decoded"], f"{url}: the decoded values changed"
    assert mw.dumps(fresh) == FIXTURE.read_text(encoding="utf-8")


def test_a_stale_fixture_fails_the_check(fresh: dict, tmp_path: Path, capsys) -> None:
    text = mw.dumps(fresh)
    good = tmp_path / "good.json"
    good.write_text(text, encoding="utf-8")
    assert mw.check(text, good) == 0
    doc = json.loads(text)
    doc["cases"][3]["response"]["headers"]["x-scale"] = "2.0"
    stale = tmp_path / "stale.json"
    stale.write_text(mw.dumps(doc), encoding="utf-8")
    assert mw.check(text, stale) == 1
    assert doc["cases"][3]["url"] in capsys.readouterr().err
    assert mw.check(text, tmp_path / "missing.json") == 1


def test_the_fixture_is_small_and_covers_the_page(recorded: dict) -> None:
    assert FIXTURE.stat().st_size < 200_000
    calls = {c["call"][0] for c in recorded["cases"] if c["call"]}
    # Every method of the page's data source is exercised.
    methods = set(re.findall(r"^  async ([a-zA-Z]+)\(", JS_DATASOURCE.read_text(), re.M))
    assert methods - {"_fetch", "_json", "_binary", "_basis"} == calls
    from grandtour.server.wire import CONTRACT_HEADERS

    seen = {h for c in recorded["cases"] for h in c["response"]["headers"]}
    # Every header the page reads occurs. (X-Reduced occurs on transitions only: a reduced
    # layer's activations would need an eigendecomposition, not bit-stable across machines.)
    assert {h.lower() for h in CONTRACT_HEADERS} <= seen
    for case in recorded["cases"]:
        r, headers = case["response"], case["response"]["headers"]
        assert not set(recorded["unrecorded_headers"]) & set(headers)
        if r["status"] != 200:
            assert set(case["decoded"]) == {"error"} and case["decoded"]["error"]
            continue
        # The page revalidates activations and thumbnails by ETag: they must carry one.
        revalidated = case["kind"] in ("float16", "atlas") and "/adversarial/" not in case["url"]
        assert r["etag"] is revalidated, case["url"]
        assert headers["cache-control"] == ("no-cache" if revalidated else "no-store"), case["url"]


def test_decoded_activations_are_the_recorded_run(recorded: dict) -> None:
    cases = _cases(recorded)
    for epoch in mw.EPOCHS:
        for split, layers in mw.epoch_data(epoch).items():
            for layer, want in layers.items():
                if layer == "input":
                    want = mw.epoch_data(0)[split]["input"]  # static: stored once
                d = cases[f"/api/runs/{mw.RUN}/activations/{layer}/{epoch}/{split}"]["decoded"]
                got = np.array(_num(d["values"]), dtype=np.float64)
                assert (d["n"], d["dim"]) == want.shape == got.shape
                # The scale is the smallest power of two that brings the data under 65504.
                scale, peak = d["scale"], np.abs(want[np.isfinite(want)]).max()
                assert scale == 2.0 ** round(math.log2(scale)) and peak / scale <= 65504
                assert scale == 1.0 or peak / (scale / 2) > 65504
                # To float16 rounding (only the entries beyond float16 lose low bits, to the
                # scale); the non-finite entries in place.
                np.testing.assert_allclose(got, want, rtol=2**-11)
                assert d["nonfinite"] == int((~np.isfinite(want)).any(axis=1).sum())
                bits = np.array(d["data"], dtype=np.uint16).view(np.float16).astype(np.float64) * scale
                np.testing.assert_array_equal(bits, got)


def test_decoded_transitions_are_the_stored_alignment(recorded: dict, tmp_path: Path) -> None:
    from grandtour import align

    path = mw.make_run(tmp_path)
    cases = _cases(recorded)
    for layer in ("fc", "act"):
        for epoch in mw.EPOCHS:
            for split in mw.SIZES:
                t = align.load_transition(path, layer, epoch, split)
                url = f"/api/runs/{mw.RUN}/transition/{layer}/{epoch}/{split}"
                d = cases[url]["decoded"]
                assert (d["previous"], d["method"], d["exact"]) == (t.previous, t.method, t.exact)
                assert d["note"] == t.note and d["reduced"] == list(t.reduced)
                assert d["varianceKept"] == list(t.variance_kept) and d["basisUrl"] == url + "/basis"
                assert (d["n"], d["k"]) == t.start.shape
                np.testing.assert_array_equal(np.array(_num(d["start_values"])), t.start)
                np.testing.assert_array_equal(np.array(_num(d["end_values"])), t.end)
                b = cases[url + "/basis"]["decoded"]
                for name, want in (("basis_in", t.basis_in), ("basis_out", t.basis_out)):
                    got = np.array(b[name]["data"]).reshape(b[name]["rows"], b[name]["cols"])
                    np.testing.assert_array_equal(got, want)
                    np.testing.assert_array_equal(got @ got.T, np.eye(len(got)))  # orthogonal, exactly


def test_recorded_bodies_decode_to_the_recorded_values(recorded: dict) -> None:
    """The ``decoded`` values follow from the recorded bytes alone (what the JS side reads)."""
    for case in recorded["cases"]:
        r = case["response"]
        if r["body"] is None:  # a PNG atlas: its pixels are hashed instead
            assert case["kind"] == "atlas" and r["headers"]["content-type"] == "image/png"
            continue
        body = base64.b64decode(r["body"])
        again = mw.enc(mw.decode(case["kind"], r["status"], r["headers"], body))
        assert json.loads(json.dumps(again)) == case["decoded"], case["url"]
