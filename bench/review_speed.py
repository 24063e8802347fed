"""Server time of the review page on a synthetic library: the persons grid with 10,000
persons and a person page with 2,000 faces (target: under 300 ms each).

    python bench/review_speed.py --database-url postgresql://postgres@127.0.0.1:5432/review_bench
        [--persons 10000] [--faces-per-person 10] [--big 2000] [--repeat 7]

The database must be empty (it is migrated and filled here with SQL: persons, one photo
per face, faces with thumbnails paths and no vectors; a fifth of the persons named). Each
page is requested in-process through the ASGI app (Starlette's TestClient), so the time
is the server's: routing, queries, template rendering; no network, no browser. Prints
the median and the slowest of `--repeat` requests after one warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.config import load_settings  # noqa: E402
from app.db import schema  # noqa: E402
from app.db.engine import make_engine, session_factory  # noqa: E402
from app.db.url import normalise  # noqa: E402


def fill(engine, persons: int, per_person: int, big: int) -> int:
    """Returns the id of the person with `big` faces."""
    with engine.begin() as c:
        c.execute(text('INSERT INTO "Persons" ("Name", "IsAutomatic") SELECT CASE WHEN g % 5 = 0 '
                       "THEN 'Person ' || g END, g % 5 <> 0 FROM generate_series(1, :n) g"), {"n": persons})
        total = persons * per_person + big
        c.execute(text('INSERT INTO "MediaFile" ("FilePath", "FileName", "Extensions") '
                       "SELECT '/photos/' || g || '.jpg', g || '.jpg', '.jpg' FROM generate_series(1, :n) g"),
                  {"n": total})
        first_person = c.execute(text('SELECT min("Id") FROM "Persons"')).scalar()
        first_media = c.execute(text('SELECT min("Id") FROM "MediaFile"')).scalar()
        # faces 0 .. persons*per_person-1 spread over the persons; the rest all to the first
        c.execute(text(
            'INSERT INTO "Faces" ("MediaFileId", "PersonId", "BoundingBox", "Confidence", "ThumbnailPath", '
            '"Blur", "IsUsable", "AssignedBy") '
            "SELECT :m + g, CASE WHEN g < :spread THEN :p + (g % :persons) ELSE :p END, "
            "'{\"x\": 10, \"y\": 10, \"w\": 80, \"h\": 80}', 0.9 + (g % 10) / 100.0, "
            "'/thumbs/' || g || '.jpg', 100 + g % 50, true, 'clustered' FROM generate_series(0, :total - 1) g"),
            {"m": first_media, "p": first_person, "spread": persons * per_person, "persons": persons,
             "total": total})
        c.execute(text('ANALYZE'))
    return first_person


def timed(client, url: str, repeat: int) -> tuple[float, float, int]:
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    return statistics.median(times) * 1000, max(times) * 1000, len(r.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--persons", type=int, default=10000)
    ap.add_argument("--faces-per-person", type=int, default=10)
    ap.add_argument("--big", type=int, default=2000, help="faces of the largest person")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    from starlette.testclient import TestClient

    from app.web.server import create_app

    url = normalise(args.database_url)
    engine = make_engine(url)
    if not schema.is_empty(engine):
        sys.exit("the database must be empty: it is filled with synthetic persons")
    schema.upgrade(url)
    t = time.perf_counter()
    big = fill(engine, args.persons, args.faces_per_person, args.big)
    print(f"filled {args.persons} persons, {args.persons * args.faces_per_person + args.big} faces "
          f"in {time.perf_counter() - t:.1f} s")
    settings = replace(load_settings({}, env_file=None), database_url=url)
    client = TestClient(create_app(settings, session_factory(engine)), base_url="http://127.0.0.1")
    pages = [
        ("persons grid, page 1 (largest first)", "/"),
        ("persons grid, page 100", "/?page=100"),
        ("persons grid, unnamed first", "/?order=unnamed"),
        ("persons grid, named only", "/?show=named"),
        (f"person page, {args.big + args.faces_per_person} faces", f"/persons/{big}"),
        ("person page, 10 faces", f"/persons/{big + 1}"),
        ("history", "/history"),
        ("status", "/status"),
    ]
    print(f"{'page':<42}{'median ms':>10}{'max ms':>10}{'KB':>8}")
    for label, path in pages:
        median, worst, size = timed(client, path, args.repeat)
        print(f"{label:<42}{median:>10.1f}{worst:>10.1f}{size / 1024:>8.0f}")
    engine.dispose()


if __name__ == "__main__":
    main()
