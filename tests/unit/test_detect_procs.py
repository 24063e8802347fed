"""Which detection stages get lane processes, and when the pool is made again
(app/services/detect_procs.py). No process is started here: a pool starts its processes
on its first photo."""
from dataclasses import replace
from pathlib import Path

import pytest

from app.config import load_settings
from app.inference.registry import make_detector
from app.services import detect_procs


@pytest.fixture
def settings():
    yield replace(load_settings({}, env_file=None), database_url="sqlite:///a.db", worker_id="w1",
                  thumbnail_path=Path("/a"))
    detect_procs.close_pool()


class Wrapped:
    name = "retinaface-mobilenet"  # a wrapper of the real one: not made again in a process

    def detect(self, images, min_score):
        return [[] for _ in images]


def test_one_pool_serves_runs_that_differ_only_in_database_worker_and_thumbnail_folder(settings):
    detector = make_detector("retinaface-mobilenet")
    pool = detect_procs.pool_for(detector, settings, 2)
    assert pool is not None and pool.count == 2 and pool.settings.database_url == ""
    other_run = replace(settings, database_url="postgresql://u:secret@h/db", worker_id="w2",
                        thumbnail_path=Path("/b"))
    assert detect_procs.pool_for(detector, other_run, 2) is pool
    assert "secret" not in repr(pool.settings)  # the password never travels to the processes
    # what the processes work with changed: a new pool
    for changed, lanes in ((replace(settings, detect_max_side=640), 2), (settings, 3)):
        new = detect_procs.pool_for(detector, changed, lanes)
        assert new is not pool
        pool = new


def test_threads_when_turned_off_or_the_detector_cannot_be_made_again_from_the_settings(settings):
    assert detect_procs.pool_for(make_detector("retinaface-mobilenet"), replace(settings, detect_processes=False),
                                 2) is None
    assert detect_procs.pool_for(Wrapped(), settings, 2) is None
    # a detector other than the one DETECTOR names
    assert detect_procs.pool_for(make_detector("retinaface-mobilenet"),
                                 replace(settings, detector="retinaface-resnet50"), 2) is None
