"""The in-process API behind the notebook widget and the HTML export, the export's data
table and size budget, and the widget's kernel side (no browser here: see
tests/browser/test_widget.py and test_export_html.py for the page)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import traitlets

from grandtour.errors import GrandTourError
from grandtour.store import Run

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    rng = np.random.default_rng(3)
    labels = np.arange(40) % 4
    a = np.stack([rng.standard_normal((40, 6)) + labels[:, None] * k for k in (1.0, 2.0, 3.0)])
    path = tmp_path_factory.mktemp("export") / "arrays"
    Run.from_arrays(path, {"hidden": a, "out": a[..., :4] * 2}, labels, split="train", epochs=[0, 5, 9])
    return path


URLS = ["api/runs", "api/runs/arrays/meta", "api/runs/arrays/activations/hidden/5/train",
        "api/runs/arrays/labels/train", "api/runs/arrays/predictions/9/train", "api/runs/arrays/metrics/train",
        "api/runs/arrays/activations/nope/5/train"]


def test_local_api_answers_the_bytes_the_server_sends(run_path):
    from fastapi.testclient import TestClient

    from grandtour.export.local import LocalApi
    from grandtour.server import create_app

    with LocalApi([run_path]) as api, TestClient(create_app([run_path]), base_url="http://127.0.0.1") as http:
        for url in URLS:
            mine, theirs = api.get(url), http.get("/" + url)
            assert (mine.status, mine.body) == (theirs.status_code, theirs.content), url
            for k, v in mine.headers.items():
                assert theirs.headers[k] == v, (url, k)
        assert api.get(URLS[-1]).status == 404


def test_page_url_encodes_as_the_page_does():
    from grandtour.export.local import page_url

    # encodeURIComponent("a/b c!(x)") === "a%2Fb%20c!(x)"; "é" is its UTF-8 bytes.
    assert page_url("r", "activations", "a/b c!(x)", 3, "é") == "api/runs/r/activations/a%2Fb%20c!(x)/3/%C3%A9"


def _table(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="grandtour-data">(.*?)</script>', html, re.S)
    data = json.loads(m.group(1))  # {"u": URL -> entry, "b": shared bodies}
    return {url: ({**e, "b": data["b"][e["r"]]} if "r" in e else e) for url, e in data["u"].items()}


def test_html_export_embeds_only_what_was_chosen_and_estimates_its_size(run_path, tmp_path):
    from grandtour.export.html import export_html
    from grandtour.export.local import LocalApi

    s = export_html(run_path, tmp_path / "v.html", layers=["out"], epochs=[5, 9])
    html = (tmp_path / "v.html").read_text()
    assert s.size == len(html.encode()) and abs(s.estimate - s.size) < 0.1 * s.size
    table = _table(html)
    meta = json.loads(table["api/runs/arrays/meta"]["t"])
    assert [L["name"] for L in meta["layers"]] == ["out"] and meta["epochs"] == [5, 9] and meta["live"] is False
    assert {k for k in table if "/activations/" in k} == {"api/runs/arrays/activations/out/5/train",
                                                          "api/runs/arrays/activations/out/9/train"}
    # The bytes are the server's, float16 and all.
    e = table["api/runs/arrays/activations/out/9/train"]
    with LocalApi([run_path]) as api:
        assert base64.b64decode(e["b"]) == api.get("api/runs/arrays/activations/out/9/train").body
    metrics = json.loads(table["api/runs/arrays/metrics/train"]["t"])
    assert metrics["epochs"] == [5, 9]
    with pytest.raises(GrandTourError, match="over the 0.001 MB budget"):
        export_html(run_path, tmp_path / "w.html", max_mb=0.001)
    assert not (tmp_path / "w.html").exists()
    with pytest.raises(GrandTourError, match="no layer nope"):
        export_html(run_path, tmp_path / "w.html", layers=["nope"])


def test_widget_answers_the_page_and_checks_what_python_sets(run_path):
    pytest.importorskip("anywidget")
    from grandtour.export.local import LocalApi
    from grandtour.widget import Viewer

    v = Viewer(run_path, layer="hidden", epoch=5)
    sent = []
    v.send = lambda content, buffers=None: sent.append((content, buffers))
    v._on_page_message(v, {"type": "request", "id": 7, "url": URLS[2]}, [])
    content, buffers = sent[-1]
    with LocalApi([run_path]) as api:
        want = api.get(URLS[2])
    assert content == {"type": "response", "id": 7, "status": 200, "headers": want.headers}
    assert bytes(buffers[0]) == want.body and v.bytes_sent == len(want.body)
    with pytest.raises(traitlets.TraitError, match="no epoch 4"):
        v.epoch = 4
    with pytest.raises(traitlets.TraitError, match="6 x 6"):
        v.matrix = np.eye(3).tolist()
    v.matrix = np.eye(6).tolist()
    v.selection = {"train": [3, 1, 1]}
    assert v.selection == {"train": [1, 3]}
    with pytest.raises(traitlets.TraitError, match="no split 'test'"):
        v.selection = {"test": [1]}
    v.close()


def test_viewer_from_arrays_needs_no_run_on_disk():
    pytest.importorskip("anywidget")
    from grandtour.widget import Viewer

    labels = np.arange(30) % 3
    v = Viewer.from_arrays({"h": np.random.default_rng(0).standard_normal((2, 30, 5))}, labels, layer="h")
    assert v.layer == "h" and v._epochs == [0, 1] and "<script type=\"module\">" in v._page
    v.close()


def test_export_command_hands_the_video_flags_to_write_video(run_path, tmp_path, monkeypatch, capsys):
    import grandtour.export.video as video
    from grandtour.cli import main

    calls = []

    def fake(run, out, **kw):
        calls.append((run, out, kw))
        out_path = tmp_path / "v.mp4"
        out_path.write_bytes(b"0" * 1000)
        return {}

    monkeypatch.setattr(video, "write_video", fake)
    out = str(tmp_path / "v.mp4")
    assert main(["export", str(run_path), "--video", out, "--animate", "epochs", "--seconds", "2.5",
                 "--fps", "12", "--size", "640x360", "--preset", "view.json"]) == 0
    assert calls == [(str(run_path), out, {"preset": "view.json", "animate": "epochs", "seconds": 2.5, "fps": 12,
                                           "size": "640x360"})]
    assert main(["export", str(run_path)]) == 2
    assert "--html OUT.html" in capsys.readouterr().err
