"""Export time on a database the worker filled (target for the whole dev set: under 60 s
on the 2-core machine). Exports into a fresh folder, then again with nothing changed,
then again after one merge of two persons (undone at the end), and prints each time
with what the sync did.

    python bench/export_speed.py --database-url postgresql://postgres@127.0.0.1:5432/exp_dev \\
        [--out /tmp/export-bench] [--copy]

Fill the database first: main.py --ingest ../shared/data/faces-dev, then main.py --all
(with THUMBNAIL_SAVE_PATH set as for that run).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.db.url import normalise  # noqa: E402
from app.services import history, persons  # noqa: E402
from app.services.export import export  # noqa: E402


def line(what: str, r) -> None:
    s = r.sync
    print(f"| {what} | {r.persons} | {r.faces + r.noise} | {s.kept} | {len(s.written)} | {len(s.moved)} | "
          f"{len(s.deleted)} | {len(s.failed)} | {r.seconds:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--copy", action="store_true")
    args = ap.parse_args()
    url = normalise(args.database_url)
    settings = replace(load_settings(database_url=url), database_url=url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    out = args.out or Path(tempfile.mkdtemp(prefix="export-bench-")) / "export"
    if out.exists():
        shutil.rmtree(out)
    print("| export | persons | faces | kept | written | moved | deleted | failed | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    line("first, into an empty folder", export(sessions, settings, out, copy=args.copy))
    line("again, nothing changed", export(sessions, settings, out, copy=args.copy))
    two = [p.id for p in persons.list_persons(sessions, limit=2)]
    op = persons.merge(sessions, two, force=True)
    try:
        line(f"after merging persons {two[0]} and {two[1]}", export(sessions, settings, out, copy=args.copy))
    finally:
        history.undo(sessions, op.operation_id)
    line("after undoing the merge", export(sessions, settings, out, copy=args.copy))
    print(f"folder: {out}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
