"""The viewer in a Jupyter notebook: ``Viewer(run)`` (an anywidget).

The cell shows the viewer page in an ``<iframe srcdoc>`` (its own document, sized to the
cell: width 100 %, ``height`` pixels), built from the same modules as the served page
(``web/bundle/widget.js``). The page asks for its data over the widget's comm, and the
kernel answers with the bytes ``grandtour serve`` would send
(:class:`grandtour.export.local.LocalApi` runs the server's app in process): no HTTP
server, so nothing to proxy on a remote notebook.

State is shared both ways as traitlets:

``layer`` : str
    The layer shown (by name).
``epoch`` : int
    The epoch shown (its number, as recorded).
``matrix`` : list of lists
    The tour matrix ``GT`` (dim x dim). Set it to show a view (the tour pauses); the page
    sends it when the tour pauses, after a drag, and at most once a second while it plays.
``playing`` : bool
    Whether the tour runs.
``selection`` : dict
    ``{split: [probe rows]}`` of what the user brushed, updated the moment a brush ends;
    set it to select.
``splits`` : list of str
    The splits shown side by side.

A trait left None (``layer``, ``epoch``) is the page's choice (the article's teaser: the
last epoch, softmax) and is filled in once the page has opened.

Example
-------
>>> from grandtour.widget import Viewer
>>> v = Viewer("runs/mnist", layer="softmax")   # doctest: +SKIP
>>> v                                            # doctest: +SKIP
>>> v.selection["test"]                          # rows brushed in the test panel  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from grandtour import defaults

try:
    import anywidget
    import traitlets
except ModuleNotFoundError as err:  # pragma: no cover - depends on the install
    raise ModuleNotFoundError(f"grandtour.widget needs {err.name}: pip install 'grandtour[widget]'",
                              name=err.name) from err

from grandtour.export.html import page_html
from grandtour.export.local import LocalApi, page_url

__all__ = ["Viewer"]

_HOST_JS = Path(__file__).resolve().parent / "web" / "js" / "sources" / "widget-host.js"


class Viewer(anywidget.AnyWidget):
    """The Grand Tour viewer of ``run`` in a notebook cell (see the module docstring).

    Parameters
    ----------
    run : str or Path
        A run directory (``grandtour train``, ``demo``, ``import``, ``Run.from_arrays``).
    layer : str, optional
        The layer to show first (default: softmax, else the last).
    epoch : int, optional
        The epoch to show first (default: the last).
    split : str or sequence of str, optional
        The split(s) shown side by side (default: train and test when the run has both).
    height : int
        The cell's height in CSS pixels.
    """

    _esm = _HOST_JS
    _page = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(defaults.WIDGET_HEIGHT).tag(sync=True)
    layer = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    epoch = traitlets.Int(None, allow_none=True).tag(sync=True)
    matrix = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    playing = traitlets.Bool(True).tag(sync=True)
    selection = traitlets.Dict().tag(sync=True)
    splits = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: Milliseconds from the view's start to the page's first frame (set by the page).
    _first_frame_ms = traitlets.Int(0).tag(sync=True)

    def __init__(self, run, layer: str | None = None, epoch: int | None = None,
                 split: str | Sequence[str] | None = None, *, height: int = defaults.WIDGET_HEIGHT,
                 **kwargs) -> None:
        self._api = LocalApi([run])
        self._rid = self._api.run_ids[0]
        meta = self._api.get_json(page_url(self._rid, "meta"))
        self._layers = {L["name"]: int(L.get("reduced_dim") or L["dim"]) for L in meta["layers"]}
        self._epochs = list(meta["epochs"])
        self._split_names = list(meta["splits"])
        splits = [split] if isinstance(split, str) else list(split or [])
        #: Bytes of response bodies sent to the page so far.
        self.bytes_sent = 0
        super().__init__(_page=page_html("widget", title=f"{meta['name']}: Grand Tour"), height=height,
                         layer=layer, epoch=epoch, splits=splits, **kwargs)
        self.on_msg(self._on_page_message)
        weakref.finalize(self, self._api.close)

    # ----------------------------------------------------------------- validation

    @traitlets.validate("layer")
    def _check_layer(self, proposal):
        v = proposal["value"]
        if v is not None and v not in self._layers:
            raise traitlets.TraitError(f"no layer {v!r} in this run; layers: {', '.join(self._layers)}")
        return v

    @traitlets.validate("epoch")
    def _check_epoch(self, proposal):
        v = proposal["value"]
        if v is not None and v not in self._epochs:
            raise traitlets.TraitError(f"no epoch {v} in this run; epochs: {', '.join(map(str, self._epochs))}")
        return v

    @traitlets.validate("splits")
    def _check_splits(self, proposal):
        v = list(proposal["value"])
        unknown = [s for s in v if s not in self._split_names]
        if unknown:
            raise traitlets.TraitError(f"no split {', '.join(unknown)} in this run; splits: "
                                       f"{', '.join(self._split_names)}")
        return v

    @traitlets.validate("selection")
    def _check_selection(self, proposal):
        v = proposal["value"]
        if not isinstance(v, Mapping):
            raise traitlets.TraitError("selection is {split: [row, ...]}")
        out = {}
        for split, rows in v.items():
            if split not in self._split_names:
                raise traitlets.TraitError(f"no split {split!r} in this run; splits: {', '.join(self._split_names)}")
            out[split] = sorted({int(r) for r in rows})
        return out

    @traitlets.validate("matrix")
    def _check_matrix(self, proposal):
        m = [list(map(float, row)) for row in proposal["value"]]
        if not m:
            return m
        n = len(m)
        if any(len(row) != n for row in m) or not all(math.isfinite(x) for row in m for x in row):
            raise traitlets.TraitError("matrix must be a square list of lists of finite numbers (the tour matrix GT)")
        dim = self._layers.get(self.layer) if self.layer is not None else None
        if dim is not None and n != dim and not self._from_page():
            raise traitlets.TraitError(f"layer {self.layer!r} is shown in {dim} dims: the matrix must be "
                                       f"{dim} x {dim}, not {n} x {n}")
        return m

    def _from_page(self) -> bool:
        # While the page's own update is applied (a transition's matrix may be wider).
        return "matrix" in getattr(self, "_property_lock", {})

    # ----------------------------------------------------------------- the page's data

    def _on_page_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or content.get("type") != "request":
            return
        rid, url = content.get("id"), str(content.get("url", ""))
        try:
            r = self._api.get(url)
        except Exception as err:  # noqa: BLE001 - the page shows it; the kernel keeps going
            self.send({"type": "response", "id": rid, "error": f"{type(err).__name__}: {err}"})
            return
        self.bytes_sent += len(r.body)
        self.send({"type": "response", "id": rid, "status": r.status, "headers": r.headers}, buffers=[r.body])

    def close(self) -> None:
        super().close()
        self._api.close()

    # ----------------------------------------------------------------- in memory

    @classmethod
    def from_arrays(cls, activations: Mapping, labels, *, class_names=None, split: str = "train",
                    epochs=None, layer_kinds=None, images=None, layer: str | None = None,
                    epoch: int | None = None, height: int = defaults.WIDGET_HEIGHT, **kwargs) -> Viewer:
        """A viewer of activations in memory, no run on disk to make first.

        ``activations`` is ``{layer: array (E, N, dim) or (N, dim)}`` in network order and
        ``labels`` ``(N,)``, as :meth:`grandtour.store.Run.from_arrays` takes them (``kwargs``
        go to it). They are written to a temporary run, removed with the viewer.
        """
        from grandtour.store import Run

        tmp = tempfile.mkdtemp(prefix="grandtour-widget-")
        path = os.path.join(tmp, "arrays")
        try:
            Run.from_arrays(path, activations, labels, class_names=class_names, split=split, epochs=epochs,
                            layer_kinds=layer_kinds, images=images, **kwargs)
            viewer = cls(path, layer=layer, epoch=epoch, height=height)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        weakref.finalize(viewer, shutil.rmtree, tmp, True)
        return viewer

