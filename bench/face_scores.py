"""Does the face quality score rank faces sensibly? On a database the worker filled
(e.g. the dev set: --ingest ../shared/data/faces-dev, then --all), print the mean score
and its parts for groups of faces that should rank low (faces the quality gates refused,
tiny, blurred, turned, dark faces) and the rest, and write a contact sheet of the 10
best and 10 worst faces with their scores.

    python bench/face_scores.py --database-url postgresql://postgres@127.0.0.1:5432/exp_dev \\
        [--thumbnail-margin 0.2] [--sheet docs/quality-best-worst.jpg]

The parts are computed again from each stored face (box, landmarks, confidence, blur)
and the middle of its thumbnail, as app/services/scores.py does for unscored faces; the
"stored" column is Faces.Quality as detection wrote it from the photo's own pixels.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.db.engine import make_engine, session_factory  # noqa: E402
from app.db.models import Faces  # noqa: E402
from app.db.url import normalise  # noqa: E402
from app.pipeline import face_score  # noqa: E402
from app.repositories.faces import Unscored  # noqa: E402
from app.services.scores import parts_of_row  # noqa: E402

PARTS = list(face_score.WEIGHTS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--thumbnail-margin", type=float, default=0.2)
    ap.add_argument("--sheet", type=Path, default=ROOT / "docs" / "quality-best-worst.jpg")
    args = ap.parse_args()
    engine = make_engine(normalise(args.database_url))
    with session_factory(engine)() as s:
        rows = s.execute(select(Faces.Id, Faces.BoundingBox, Faces.Landmarks, Faces.Confidence, Faces.Blur,
                                Faces.ThumbnailPath, Faces.Quality, Faces.IsUsable)).all()
    faces = []
    for r in rows:
        parts = parts_of_row(Unscored(*r[:6]), args.thumbnail_margin)
        faces.append({"id": r[0], "thumb": r[5], "stored": r[6], "usable": r[7], "parts": parts,
                      "short": _short(r[1])})
    groups = {
        "all faces": faces,
        "refused by a quality gate (IsUsable false)": [f for f in faces if not f["usable"]],
        "usable": [f for f in faces if f["usable"]],
        "tiny: shorter side < 48 px": [f for f in faces if f["short"] < 48],
        "large: shorter side >= 100 px": [f for f in faces if f["short"] >= 100],
        "blurred: sharpness part < 0.3": [f for f in faces if f["parts"].sharpness < 0.3],
        "turned: pose part < 0.5": [f for f in faces if f["parts"].pose < 0.5],
        "frontal: pose part >= 0.9": [f for f in faces if f["parts"].pose >= 0.9],
        "dark or blown out: exposure part < 0.5": [f for f in faces if f["parts"].exposure < 0.5],
    }
    print(f"| faces | n | stored score (mean) | {' | '.join(PARTS)} |")
    print("|" + " --- |" * (3 + len(PARTS)))
    for name, group in groups.items():
        if not group:
            print(f"| {name} | 0 |" + " - |" * (1 + len(PARTS)))
            continue
        means = [statistics.fmean(getattr(f["parts"], p) for f in group) for p in PARTS]
        stored = statistics.fmean(f["stored"] if f["stored"] is not None else f["parts"].total for f in group)
        print(f"| {name} | {len(group)} | {stored:.3f} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    ranked = sorted(faces, key=lambda f: (f["stored"] if f["stored"] is not None else f["parts"].total))
    usable_share = [sum(f["usable"] for f in part) / len(part) for part in (ranked[:len(ranked) // 10],
                                                                        ranked[-(len(ranked) // 10):])]
    print(f"\nusable faces among the lowest-scored 10 %: {usable_share[0]:.0%}; among the highest 10 %: "
          f"{usable_share[1]:.0%}")
    _sheet(ranked[-10:][::-1], ranked[:10], args.sheet)
    print(f"contact sheet of the 10 best (top row) and 10 worst (bottom row): {args.sheet}")
    return 0


def _short(box: str | None) -> float:
    import json
    try:
        b = json.loads(box)
        return min(float(b["w"]), float(b["h"]))
    except (TypeError, ValueError, KeyError):
        return 0.0


def _sheet(best: list[dict], worst: list[dict], path: Path, tile: int = 112) -> None:
    sheet = Image.new("RGB", (10 * tile, 2 * (tile + 16)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, group in enumerate((best, worst)):
        for col, f in enumerate(group):
            x, y = col * tile, row * (tile + 16)
            try:
                with Image.open(f["thumb"]) as im:
                    sheet.paste(im.convert("RGB").resize((tile, tile)), (x, y))
            except (OSError, TypeError, ValueError):
                pass
            score = f["stored"] if f["stored"] is not None else f["parts"].total
            draw.text((x + 4, y + tile + 2), f"{score:.2f}", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)


if __name__ == "__main__":
    raise SystemExit(main())
