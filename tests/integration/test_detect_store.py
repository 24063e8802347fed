"""Storing a batch: one item that cannot be stored fails alone."""
from dataclasses import replace

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.inference.registry import make_detector
from app.repositories import faces as faces_repo
from app.services import detect
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_name


def test_a_row_that_cannot_be_stored_fails_alone(db_url, tmp_path, faces_dev, monkeypatch):
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    files = [faces_dev / "Al_Gore" / f"0{i}.jpg" for i in (1, 2, 3)]
    register_files(sessions, files)
    settings = replace(load_settings({}, env_file=None), database_url=db_url,
                       thumbnail_path=tmp_path / "thumbs", worker_id="w1", retry_delay_seconds=3600)
    bad = items_by_name(engine)["02.jpg"].MediaFileId
    real_insert = faces_repo.insert_faces

    def insert(session, faces):
        if any(f.media_file_id == bad for f in faces):
            raise RuntimeError("disk full")
        return real_insert(session, faces)

    monkeypatch.setattr(faces_repo, "insert_faces", insert)
    report = detect.detect_pending(sessions, make_detector("retinaface-mobilenet"), settings)

    items = items_by_name(engine)
    assert report.failed == 1 and report.images == 3
    assert items["02.jpg"].Status == "failed" and "disk full" in items["02.jpg"].LastError
    assert items["02.jpg"].Attempts == 1 and items["02.jpg"].LockedBy is None
    assert items["01.jpg"].IsFacesExtracted and items["03.jpg"].IsFacesExtracted
    faces = faces_by_media(engine)
    assert bad not in faces and len(faces) == 2
    # the failed item's thumbnails were not kept; the stored faces' files exist
    on_disk = {p.name for p in (tmp_path / "thumbs").rglob("*.jpg")}
    assert on_disk == {f.ThumbnailPath.rsplit("/", 1)[1] for fs in faces.values() for f in fs}
    engine.dispose()
