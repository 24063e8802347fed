"""A long item keeps its lease: the heartbeat renews it while the work runs, so another
worker never takes it from a live worker."""
import threading
import time
from dataclasses import replace
from datetime import timedelta

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.types import utcnow
from app.inference.registry import make_detector
from app.repositories import queue as q_repo
from app.services.detect import detect_pending
from app.services.ingest import register_files
from tests.integration.helpers import items_by_name


class SlowDetector:
    """The real detector on a slow day: each image takes 3 s."""

    def __init__(self):
        self.real = make_detector("retinaface-mobilenet")
        self.name = self.real.name
        self.started = threading.Event()

    def load(self):
        self.real.load()

    def detect(self, images, min_score):
        self.started.set()
        time.sleep(3)
        return self.real.detect(images, min_score)


def test_a_long_item_keeps_its_lease(db_url, tmp_path, faces_dev):
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, [faces_dev / "Al_Gore" / "01.jpg"])
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t",
                       worker_id="slow", lease_seconds=1)
    detector = SlowDetector()
    worker = threading.Thread(target=detect_pending, args=(sessions, detector, settings))
    worker.start()
    assert detector.started.wait(60)
    time.sleep(2)  # twice the lease: without renewal it would have run out
    now = utcnow()
    with sessions.begin() as s:
        stolen = q_repo.claim(s, q_repo.DETECTION, "thief", 10, now, now + timedelta(seconds=60), 3)
    item = items_by_name(engine)["01.jpg"]
    worker.join(60)
    assert stolen == [] and item.LockedBy == "slow" and item.LockedUntil > now
    done = items_by_name(engine)["01.jpg"]
    assert done.IsFacesExtracted and done.Attempts == 0 and done.LockedBy is None
    engine.dispose()
