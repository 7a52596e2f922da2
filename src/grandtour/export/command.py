"""``grandtour export RUN --html OUT.html | --video OUT.mp4``: the command's work (its flags
are declared in :mod:`grandtour.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grandtour.errors import GrandTourError


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def export_command(args: argparse.Namespace) -> int:
    if not args.html and not args.video:
        raise GrandTourError("say what to export: --html OUT.html (the viewer with its data, one file) "
                             "or --video OUT.mp4|OUT.gif")
    if args.html:
        from grandtour.export.html import export_html

        s = export_html(args.run, args.html, layers=args.layers, epochs=args.epochs, splits=args.splits,
                        max_mb=args.max_size)
        print(f"wrote {s.path}: {_mb(s.size)} ({len(s.layers)} layers x {len(s.epochs)} epochs x "
              f"{len(s.splits)} splits, {_mb(int(s.per_slice))} per (layer, epoch)); open it in a browser, "
              "no server needed")
    if args.video:
        from grandtour.export.video import write_video  # loads a browser only when asked

        write_video(args.run, args.video, preset=args.preset, animate=args.animate, seconds=args.seconds,
                    fps=args.fps, size=args.size)
        print(f"wrote {args.video}: {_mb(Path(args.video).stat().st_size)}")
    return 0
