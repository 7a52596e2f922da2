"""The viewer as one self-contained HTML file: ``grandtour export RUN --html OUT.html``.

The file holds the page (``web/index.html`` with ``web/style.css`` inlined), the bundled
viewer (``web/bundle/embedded.js``, built by ``npm run build``) and the data: every answer
the page will ask for, as the server sends it (:class:`~grandtour.export.local.LocalApi`:
float16 slices, int16 vectors, float32 bases, PNG atlases, JSON), the bytes in base64.
The page reads them through ``EmbeddedDataSource`` (``web/js/sources/embedded.js``), so it
opens from ``file://`` and asks the network for nothing.

The size is estimated from the run's shapes before anything is encoded; over the budget
(``max_mb``) the export is refused with the estimate and what to leave out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grandtour import defaults
from grandtour.errors import GrandTourError
from grandtour.export.local import LocalApi, page_url

__all__ = ["ExportSummary", "export_html", "page_html"]

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
BUNDLE_DIR = WEB_DIR / "bundle"
_STYLESHEET = re.compile(r'<link rel="stylesheet" href="style\.css">')
_SCRIPT = re.compile(r'<script type="module" src="js/main\.js"></script>')
_TITLE = re.compile(r"<title>[^<]*</title>")
#: Bytes of base64 per byte of data.
_B64 = 4 / 3
#: PNG atlases of small thumbnails compress poorly: budget a byte per pixel.
_PNG_PER_PIXEL = 1.0


def _script_text(js: str) -> str:
    # An inline script ends at the first "</script": never let the bundle hold one.
    return js.replace("</script", "<\\/script")


def page_html(bundle: str, *, title: str = "Grand Tour viewer", body_end: str = "") -> str:
    """The viewer page as one document: ``index.html`` with the stylesheet inlined and
    ``web/bundle/<bundle>.js`` (``widget`` or ``embedded``) as its one inline module;
    ``body_end`` (HTML) goes before it.
    """
    bundle_path = BUNDLE_DIR / f"{bundle}.js"
    if not bundle_path.is_file():
        raise GrandTourError(f"the viewer bundle {bundle_path} is missing: build it with `npm ci && npm run build` "
                             "in the source tree (it is shipped with the package)")
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    css = (WEB_DIR / "style.css").read_text(encoding="utf-8")
    js = bundle_path.read_text(encoding="utf-8")
    for pattern, what in ((_STYLESHEET, "stylesheet link"), (_SCRIPT, "js/main.js script tag")):
        if not pattern.search(html):
            raise GrandTourError(f"web/index.html has no {what} to inline (expected {pattern.pattern!r})")
    html = _STYLESHEET.sub(lambda _: f"<style>\n{css}\n</style>", html, count=1)
    html = _TITLE.sub(lambda _: f"<title>{_escape(title)}</title>", html, count=1)
    html = _SCRIPT.sub(lambda _: f"{body_end}<script type=\"module\">\n{_script_text(js)}\n</script>", html, count=1)
    return html


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_html` wrote: ``path``, its ``size`` in bytes, the layers,
    epochs and splits it holds, and the size estimated before encoding."""

    path: Path
    size: int
    layers: list[str]
    epochs: list[int]
    splits: list[str]
    estimate: int

    @property
    def per_slice(self) -> float:
        """Bytes per (layer, epoch): the file's size over the slices it holds."""
        return self.size / max(1, len(self.layers) * len(self.epochs))


def _choose(what: str, given: Sequence | None, available: Sequence, run: str) -> list:
    if not given:
        return list(available)
    unknown = [g for g in given if g not in available]
    if unknown:
        raise GrandTourError(f"run {run!r} has no {what} {', '.join(map(str, unknown))}; "
                             f"{what}s: {', '.join(map(str, available))}")
    return [a for a in available if a in set(given)]  # the run's order


def _entry(r) -> dict:
    """A table entry: status, headers, and the body as text (JSON) or base64 (bytes)."""
    e = {"s": r.status, "h": r.headers}
    if r.headers.get("content-type", "").startswith("application/json"):
        e["t"] = r.body.decode("utf-8")
    else:
        e["b"] = base64.b64encode(r.body).decode("ascii")
    return e


def _json_entry(obj) -> dict:
    from grandtour.server.wire import json_safe

    return {"s": 200, "h": {"content-type": "application/json"}, "t": json.dumps(json_safe(obj), separators=(",", ":"))}


def _error_entry(status: int, message: str) -> dict:
    return {"s": status, "h": {"content-type": "application/json"}, "t": json.dumps({"error": message})}


class _Plan:
    """The export of one run: what is chosen, its estimated size, and every URL to ask."""

    def __init__(self, api: LocalApi, layers, epochs, splits) -> None:
        self.api = api
        self.rid = api.run_ids[0]
        self.meta = api.get_json(page_url(self.rid, "meta"))
        m = self.meta
        if not m["epochs"]:
            raise GrandTourError(f"run {m['name']!r} has no committed epoch yet: nothing to export")
        names = [L["name"] for L in m["layers"]]
        self.layers = _choose("layer", layers, names, m["name"])
        self.epochs = _choose("epoch", [int(e) for e in epochs] if epochs else None, m["epochs"], m["name"])
        self.splits = _choose("split", splits, m["splits"], m["name"])
        self.docs = {L["name"]: L for L in m["layers"]}
        # A transition goes from the run's previous layer: kept only when that layer is too.
        self.transitions = ([L for L in self.layers[1:] if names[names.index(L) - 1] in self.layers]
                            if m.get("aligned") else [])
        self.adversarial = []
        for name in m.get("adversarial", []):
            rec = api.get_json(page_url(self.rid, "adversarial", name))
            kept = [L for L in rec["layers"] if L in self.layers]
            if kept and rec["split"] in self.splits and rec["epoch"] in self.epochs:
                self.adversarial.append({**rec, "layers": kept})

    def _shown_dim(self, layer: str) -> int:
        d = self.docs[layer]
        return int(d.get("reduced_dim") or d["dim"])

    def _dims(self, layer: str) -> tuple[int, int]:
        """The shown widths of the transition into ``layer``: from its previous layer, and its own."""
        names = [L["name"] for L in self.meta["layers"]]
        return self._shown_dim(names[names.index(layer) - 1]), self._shown_dim(layer)

    def estimate(self, page_bytes: int) -> int:
        """Bytes of the file, from the shapes alone (nothing is read or encoded)."""
        m, data = self.meta, 0.0
        for split in self.splits:
            n = int(m["sizes"][split])
            data += 2 * n * (1 + len(self.epochs))  # labels and predictions
            data += sum(2 * n * self._shown_dim(L) for L in self.layers) * len(self.epochs)
            for L in self.transitions:
                d_prev, d = self._dims(L)
                data += 2 * 2 * n * max(d_prev, d) * len(self.epochs)
            shape = (m.get("images") or {}).get(split)
            if shape:
                px = 1
                for s in shape:
                    px *= int(s)
                data += _PNG_PER_PIXEL * n * px
        for L in self.transitions:  # the bases: the same for every split, stored once
            d_prev, d = self._dims(L)
            data += 4 * (d_prev ** 2 + d ** 2) * len(self.epochs)
        for rec in self.adversarial:
            steps1, k = int(rec["steps"]) + 1, len(rec["example_index"])
            data += steps1 * k * (2 + sum(2 * self._shown_dim(L) for L in rec["layers"]))
        return int(page_bytes + data * _B64)

    def table(self) -> dict:
        """URL -> answer, for every request the page will make of this export."""
        api, rid, m = self.api, self.rid, self.meta
        t: dict[str, dict] = {}

        def ask(*parts):
            t[page_url(*parts)] = _entry(api.get(page_url(*parts)))

        keep = set(self.layers)
        meta = {**m, "live": False, "epochs": self.epochs, "splits": self.splits,
                "layers": [L for L in m["layers"] if L["name"] in keep],
                "sizes": {s: m["sizes"][s] for s in self.splits},
                "images": {s: (m.get("images") or {}).get(s) for s in self.splits},
                "adversarial": [r["name"] for r in self.adversarial],
                "nonfinite": {str(e): {s: {k: c for k, c in per.items() if k in keep}
                                       for s, per in m.get("nonfinite", {}).get(str(e), {}).items() if s in self.splits}
                              for e in self.epochs if str(e) in m.get("nonfinite", {})}}
        t["api/runs"] = _json_entry([{"id": rid, "name": m["name"], "dataset": m.get("dataset"),
                                      "epochs": self.epochs, "live": False}])
        t[page_url(rid, "meta")] = _json_entry(meta)
        rows = [m["epochs"].index(e) for e in self.epochs]
        for split in self.splits:
            ask(rid, "labels", split)
            metrics = api.get(page_url(rid, "metrics", split))
            if metrics.ok:
                doc = metrics.json()
                t[page_url(rid, "metrics", split)] = _json_entry(
                    {k: ([v[i] for i in rows] if isinstance(v, list) and len(v) == len(m["epochs"]) else v)
                     for k, v in doc.items()} | {"epochs": self.epochs})
            if meta["images"].get(split):
                ask(rid, "images", split)
            for e in self.epochs:
                ask(rid, "predictions", e, split)
                for L in self.layers:
                    ask(rid, "activations", L, e, split)
        names = [L["name"] for L in m["layers"]]
        for L in self.layers[1:]:
            prev = names[names.index(L) - 1]
            for e in self.epochs:
                for split in self.splits:
                    url = page_url(rid, "transition", L, e, split)
                    if L in self.transitions or not m.get("aligned"):
                        r = api.get(url)  # not aligned: the server's 404 says to run `grandtour align`
                        t[url] = _entry(r)
                        if r.ok:  # the bases, under the URL the server names (X-Basis)
                            basis = r.headers.get("x-basis", "").lstrip("/") or f"{url}/basis"
                            t[basis] = _entry(api.get(basis))
                    else:
                        t[url] = _error_entry(404, f"this export leaves out layer {prev!r}, the one before {L!r}: "
                                                   "no transition into it")
        for rec in self.adversarial:
            name = rec["name"]
            t[page_url(rid, "adversarial", name)] = _json_entry(rec)
            ask(rid, "adversarial", name, "predictions")
            ask(rid, "adversarial", name, "images")
            for L in rec["layers"]:
                ask(rid, "adversarial", name, L)
        return t


def _shared_bodies(table: dict) -> dict:
    """``{"u": URL -> entry, "b": digest -> base64}``: a body that several URLs answer with
    (a transition's bases are the same for every split) is stored once."""
    blobs: dict[str, str] = {}
    urls = {}
    for url, e in table.items():
        if "b" in e:
            digest = hashlib.sha256(e["b"].encode("ascii")).hexdigest()[:24]
            blobs.setdefault(digest, e["b"])
            e = {"s": e["s"], "h": e["h"], "r": digest}
        urls[url] = e
    return {"u": urls, "b": blobs}


def export_html(run, out, *, layers: Sequence[str] | None = None, epochs: Sequence[int] | None = None,
                splits: Sequence[str] | None = None, max_mb: float = defaults.EXPORT_MAX_MB) -> ExportSummary:
    """Write the viewer of ``run`` with its data as one HTML file ``out``.

    Parameters
    ----------
    run : str or Path
        A run directory.
    out : str or Path
        The ``.html`` file to write (replaced atomically).
    layers, epochs, splits : sequences, optional
        What to include (default: everything), in the run's order whatever the order given.
    max_mb : float
        Refuse (before encoding anything) a file whose estimated size exceeds this many MB.

    Returns
    -------
    ExportSummary
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise GrandTourError(f"--html needs a file name ending in .html, not {out.name!r}")
    if not (max_mb > 0):
        raise GrandTourError(f"--max-size must be a positive number of MB, not {max_mb}")
    page = page_html("embedded")
    with LocalApi([run]) as api:
        plan = _Plan(api, layers, epochs, splits)
        estimate = plan.estimate(len(page.encode("utf-8")))
        if estimate > max_mb * 1e6:
            raise GrandTourError(
                f"the export would be about {estimate / 1e6:.1f} MB, over the {max_mb:g} MB budget; choose fewer "
                f"--layers, --epochs or --splits (it holds {len(plan.layers)} layers x {len(plan.epochs)} epochs x "
                f"{len(plan.splits)} splits), or raise --max-size")
        table = plan.table()
        title = f"{plan.meta['name']}: Grand Tour"
    # JSON in a <script>: "<" is escaped so no text in the data can end the element.
    data = json.dumps(_shared_bodies(table), separators=(",", ":")).replace("<", "\\u003c")
    html = page_html("embedded", title=title,
                     body_end=f'<script type="application/json" id="grandtour-data">{data}</script>\n')
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportSummary(out, out.stat().st_size, plan.layers, plan.epochs, plan.splits, estimate)
