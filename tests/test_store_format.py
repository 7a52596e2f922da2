"""The store owns the on-disk format: nothing else in the package spells its file names.

DONE-CRITERION OF ISSUE 8 ("Foundations"). The first test fails until grandtour.align and
grandtour.server stop opening ``commit.json`` / ``zarr.json`` themselves and use the
store's API instead (``Run.group`` / ``Run.open_group`` / ``Run.create_group``,
``Run.commit_stamp``, ``Run.last_commit_time``, ``Run.epoch_token``,
``Run.adversarial_token``, ``Run.created``, ``Run.probe_info``). Its failure message
lists the offending files and lines.
"""

from __future__ import annotations

from pathlib import Path

import grandtour

PACKAGE = Path(grandtour.__file__).resolve().parent
STORE = PACKAGE / "store"
FORMAT_FILES = ("commit.json", "zarr.json")
SOURCES = ("*.py", "*.js", "*.mjs", "*.html")


def _spellings(root: Path, exclude: Path | None = None) -> list[str]:
    hits = []
    for pattern in SOURCES:
        for path in sorted(root.rglob(pattern)):
            if exclude is not None and exclude in path.parents:
                continue
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if any(name in line for name in FORMAT_FILES):
                    hits.append(f"{path.relative_to(PACKAGE)}:{no}: {line.strip()}")
    return hits


def test_no_module_outside_the_store_names_the_store_files():
    # Expected to fail until align and server are ported onto the store API (see above).
    hits = _spellings(PACKAGE, exclude=STORE)
    assert hits == [], "these spell the store's files; use grandtour.store's API:\n" + "\n".join(hits)


def test_inside_the_store_only_the_schema_names_them():
    hits = [h for h in _spellings(STORE) if not h.startswith(f"store{'/'}schema.py:")]
    assert hits == [], "only store/schema.py may spell the format:\n" + "\n".join(hits)
    assert _spellings(STORE), "the schema must define them (the scan found nothing at all)"
