"""The detection stage works on several photos side by side (app/services/detect_flow.py,
lanes), each lane on a one-thread session of the detector; a photo the model fails on
fails alone. Real detector, real photos, the real database."""
import shutil
import threading
import time
from dataclasses import replace
from datetime import timedelta

import numpy as np
from PIL import Image
from sqlalchemy import update

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.types import utcnow
from app.inference.registry import make_detector
from app.repositories import queue as q_repo
from app.services.detect import detect_pending
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_name


class PickyDetector:
    """The real detector, except that it fails on an all-black image; it counts the calls
    in progress at once and hands the lanes a session of the real one with fewer threads."""

    def __init__(self, real=None):
        self.real = real or make_detector("retinaface-mobilenet")
        self.name = self.real.name
        self.lock = threading.Lock()
        self.busy = self.most_busy = 0
        self.lane = None

    def load(self):
        self.real.load()

    def with_threads(self, threads):
        self.lane = PickyDetector(self.real.with_threads(threads))
        self.lane.threads = threads
        return self.lane

    def detect(self, images, min_score):
        with self.lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        try:
            time.sleep(0.02)  # long enough for the other lane to be in a call too
            if any(not img.any() for img in images):
                raise RuntimeError("the model cannot take this image")
            return self.real.detect(images, min_score)
        finally:
            with self.lock:
                self.busy -= 1


def test_photos_go_through_the_detector_side_by_side_and_a_failing_photo_fails_alone(
        db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    good = sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:3] + sorted((faces_dev / "Michael_Powell").glob("*.jpg"))[:3]
    for i, p in enumerate(good):
        shutil.copy(p, photos / f"{i:02d}.jpg")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(photos / "03b-black.jpg")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, sorted(photos.iterdir()))
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t",
                       model_threads=0)
    detector = PickyDetector()
    report = detect_pending(sessions, detector, settings)
    lane = detector.lane
    assert lane is not None and lane.threads == 1 and lane.most_busy >= 2  # lanes side by side, one thread each
    assert detector.most_busy == 0  # photos only go through the lanes' session
    items = items_by_name(engine)
    black = items.pop("03b-black.jpg")
    assert not black.IsFacesExtracted and "the model cannot take this image" in black.LastError
    faces = faces_by_media(engine)
    assert all(item.IsFacesExtracted and item.LastError is None for item in items.values())
    assert all(len(faces.get(item.MediaFileId, [])) >= 1 for item in items.values())  # each dev photo has its face
    assert report.images == len(good) + 1 and report.failed == 1
    engine.dispose()


class WatchingDetector(PickyDetector):
    """Records, per call, whether it was the marked photo (the only one 320 px wide) and
    how many calls were in progress; on its third call it lets `on_third` run."""

    def __init__(self, on_third, real=None):
        super().__init__(real)
        self.on_third = on_third
        self.seen: list[tuple[bool, int]] = []

    def with_threads(self, threads):
        self.lane = WatchingDetector(self.on_third, self.real.with_threads(threads))
        return self.lane

    def detect(self, images, min_score):
        with self.lock:
            self.seen.append((images[0].shape[1] == 320, self.busy + 1))
            if len(self.seen) == 3:
                self.on_third()
        return super().detect(images, min_score)


def test_a_row_left_by_a_dead_worker_is_tried_alone_and_soon(db_url, tmp_path, faces_dev):
    """Another worker dies while holding a row, while this one is in the middle of a
    backlog: the row is taken as a suspect after the batch in progress (not after the
    whole backlog), with nothing beside it in the lanes, and charged one attempt."""
    photos = tmp_path / "photos"
    photos.mkdir()
    small = [p for p in sorted(faces_dev.glob("*/*.jpg")) if Image.open(p).size == (250, 250)][:30]
    for i, p in enumerate(small):
        shutil.copy(p, photos / f"{i:02d}.jpg")
    Image.open(small[0]).resize((320, 320)).save(photos / "zz-suspect.jpg")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, sorted(photos.iterdir()))
    q = q_repo.DETECTION
    suspect_id = items_by_name(engine)["zz-suspect.jpg"].Id
    with sessions.begin() as s:  # held by a worker that is still alive, for now
        s.execute(update(q.table).where(q.id == suspect_id).values(
            {q.locked_by.name: "other", q.locked_until.name: utcnow() + timedelta(hours=1)}))

    def other_worker_dies():
        with sessions.begin() as s:
            s.execute(update(q.table).where(q.id == suspect_id).values(
                {q.locked_until.name: utcnow() - timedelta(seconds=1)}))

    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t",
                       model_threads=0, detect_batch_size=2)
    detector = WatchingDetector(other_worker_dies)
    report = detect_pending(sessions, detector, settings)
    seen = detector.lane.seen
    assert report.images == 31 and report.failed == 0 and len(seen) == 31
    turn = next(k for k, (marked, _) in enumerate(seen) if marked)
    assert turn < 20  # after the batches already claimed, not after the whole backlog
    # nothing in the model when it went in, and the next call came after it was out
    assert seen[turn][1] == 1 and seen[turn + 1][1] == 1
    item = items_by_name(engine)["zz-suspect.jpg"]
    assert item.IsFacesExtracted and item.Attempts == 1 and item.LockedBy is None
    engine.dispose()
