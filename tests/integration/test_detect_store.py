"""Storing a batch: one item that cannot be stored fails alone."""
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.types import utcnow
from app.inference.detector import make_detector
from app.pipeline.decode import load
from app.repositories import faces as faces_repo
from app.repositories import media as media_repo
from app.services import detect
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_name


def test_a_row_that_cannot_be_stored_fails_alone(db_url, tmp_path, faces_dev, monkeypatch):
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    files = [faces_dev / "Al_Gore" / f"0{i}.jpg" for i in (1, 2, 3)]
    register_files(sessions, files)
    settings = replace(load_settings({}, env_file=None), database_url=db_url,
                       thumbnail_path=tmp_path / "thumbs", worker_id="w1")
    now = utcnow()
    with sessions.begin() as s:
        claimed = media_repo.claim_batch(s, "w1", 10, now, now + timedelta(minutes=5), 3)
    detector = make_detector("retinaface-mobilenet")
    opts = detect.analyze_options(settings)
    outcomes = [detect._analyze_item(c, lambda c=c: load(Path(c.file_path), opts.max_pixels), detector, opts)
                for c in claimed]
    bad = claimed[1].media_file_id
    real_insert = faces_repo.insert_faces

    def insert(session, faces):
        if any(f.media_file_id == bad for f in faces):
            raise RuntimeError("disk full")
        return real_insert(session, faces)

    monkeypatch.setattr(faces_repo, "insert_faces", insert)
    report = detect.DetectReport()
    detect._store(sessions, outcomes, settings, report)

    items = items_by_name(engine)
    assert report.failed == 1 and report.images == 3
    assert items["02.jpg"].Status == "failed" and "disk full" in items["02.jpg"].LastError
    assert items["01.jpg"].IsFacesExtracted and items["03.jpg"].IsFacesExtracted
    faces = faces_by_media(engine)
    assert bad not in faces and len(faces) == 2
    engine.dispose()
