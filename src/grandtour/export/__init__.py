"""Exports of the viewer: one self-contained HTML file (:func:`export_html`), a video of the
page (:mod:`grandtour.export.video`), and the in-process API both the HTML export and the
notebook widget read the run through (:class:`~grandtour.export.local.LocalApi`)."""

from __future__ import annotations

__all__ = ["export_html", "write_video"]


def __getattr__(name: str):
    # Lazy: `import grandtour.export` loads neither the web stack nor a browser.
    if name == "export_html":
        from grandtour.export.html import export_html

        return export_html
    if name == "write_video":
        from grandtour.export.video import write_video

        return write_video
    raise AttributeError(name)
