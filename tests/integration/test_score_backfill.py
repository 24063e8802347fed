"""Faces stored before quality scores existed get one at the next --recognize or --export
(app/services/scores.py fill_missing): every face, in batches, through the real detector's
faces and the real database (PostgreSQL sets them with one statement per batch)."""
import shutil
from dataclasses import replace

from sqlalchemy import select, update

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.models import Faces
from app.inference.registry import make_detector
from app.services import scores
from app.services.detect import detect_pending
from app.services.ingest import register_files


def test_faces_without_a_score_are_scored_once(db_url, tmp_path, faces_dev, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(sorted((faces_dev / "group").glob("*.jpg"))[:3]
                          + sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:3]):
        shutil.copy(p, photos / f"{i:02d}.jpg")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, sorted(photos.iterdir()))
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t")
    detect_pending(sessions, make_detector("retinaface-mobilenet"), settings)
    with sessions() as s:
        at_detection = dict(s.execute(select(Faces.Id, Faces.Quality)).all())
    assert len(at_detection) >= 8 and all(q is not None for q in at_detection.values())
    with sessions.begin() as s:  # as stored by a version before scores
        s.execute(update(Faces).values(Quality=None))
    monkeypatch.setattr(scores, "BATCH", 3)  # several batches
    assert scores.fill_missing(sessions, settings) == len(at_detection)
    with sessions() as s:
        backfilled = dict(s.execute(select(Faces.Id, Faces.Quality)).all())
    assert backfilled.keys() == at_detection.keys()
    assert all(q is not None and 0.0 <= q <= 1.0 for q in backfilled.values())
    # the score from the stored thumbnail ranks faces as the score at detection did
    by_detection = sorted(at_detection, key=at_detection.get)
    by_backfill = sorted(backfilled, key=backfilled.get)
    assert by_detection[-1] in by_backfill[-3:] and by_detection[0] in by_backfill[:3]
    assert scores.fill_missing(sessions, settings) == 0  # nothing left: nothing done
    engine.dispose()
