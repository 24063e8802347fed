"""The detector takes several small photos per call (app/services/detect.py, MODEL_BATCH);
a call that fails is retried one photo at a time, so one photo's failure stays its own.
Real detector, real photos, the real database."""
import shutil
from dataclasses import replace

import numpy as np
from PIL import Image

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.inference.registry import make_detector
from app.services.detect import detect_pending
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_name


class PickyDetector:
    """The real detector, except that it fails on any call holding an all-black image."""

    def __init__(self):
        self.real = make_detector("retinaface-mobilenet")
        self.name = self.real.name
        self.calls: list[int] = []

    def load(self):
        self.real.load()

    def detect(self, images, min_score):
        self.calls.append(len(images))
        if any(not img.any() for img in images):
            raise RuntimeError("the model cannot take this image")
        return self.real.detect(images, min_score)


def test_photos_go_through_the_detector_together_and_a_failing_call_fails_only_its_bad_photo(
        db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    good = sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:3] + sorted((faces_dev / "Colin_Powell").glob("*.jpg"))[:3]
    for i, p in enumerate(good):
        shutil.copy(p, photos / f"{i:02d}.jpg")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(photos / "03b-black.jpg")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, sorted(photos.iterdir()))
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t")
    detector = PickyDetector()
    report = detect_pending(sessions, detector, settings)
    assert max(detector.calls) > 1  # several photos per call
    items = items_by_name(engine)
    black = items.pop("03b-black.jpg")
    assert not black.IsFacesExtracted and "the model cannot take this image" in black.LastError
    faces = faces_by_media(engine)
    assert all(item.IsFacesExtracted and item.LastError is None for item in items.values())
    assert all(len(faces.get(item.MediaFileId, [])) >= 1 for item in items.values())  # each dev photo has its face
    assert report.images == len(good) + 1 and report.failed == 1
    engine.dispose()
