"""Detection lanes as processes (app/services/detect_procs.py, the default): the faces,
thumbnails and embedding crops are exactly those of the lanes as threads; log lines of the
lane processes reach the worker's log; a lane process that dies or hangs fails its photo
alone (or hands it back when told to stop) and the next photo gets a new process. Real detector,
real photos, the real database."""
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from app.config import load_settings
from app.db import schema
from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile
from app.pipeline import photo_meta as pm
from app.repositories.media import ClaimedItem
from app.services import detect_procs
from app.services.detect import Timings, detect_pending
from app.services.ingest import register_files
from app.services.work_queue import Problem
from app.stopping import StopFlag
from tests.integration.helpers import copy_images, items_by_name



def odd_exif() -> Image.Exif:
    """A latitude without a longitude: the position is left out, with a warning."""
    exif = Image.Exif()
    gps = exif.get_ifd(pm.GPS_IFD)
    gps[pm.GPS_LAT_REF], gps[pm.GPS_LAT] = "N", (52.0, 31.0, 12.0)
    return exif


def _photos(faces_dev: Path, folder: Path) -> list[Path]:
    files = copy_images(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:3]
                        + sorted((faces_dev / "group").glob("*.jpg"))[:2], folder)
    Image.open(files[0]).save(folder / "odd_exif.jpg", exif=odd_exif())
    data = files[1].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return sorted(folder.iterdir())


def _stored(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(MediaFile.FilePath, Faces.BoundingBox, Faces.Landmarks, Faces.Confidence,
                                Faces.Blur, Faces.Quality, Faces.IsUsable, Faces.Embedding, Faces.Embedding2,
                                Faces.ThumbnailPath)
                         .join(Faces, Faces.MediaFileId == MediaFile.Id)).all()
    engine.dispose()
    out: dict[str, list[tuple]] = {}
    for path, *face, thumbnail in rows:
        assert Image.open(thumbnail).size == (112, 112)  # a whole JPEG
        out.setdefault(Path(path).name, []).append(tuple(face))
    return {k: sorted(v, key=repr) for k, v in out.items()}


def test_lane_processes_store_exactly_what_lane_threads_store(db_url, tmp_path, faces_dev, models, caplog):
    detector, encoder = models
    files = _photos(faces_dev, tmp_path / "photos")
    threads_url = f"sqlite:///{tmp_path / 'threads.db'}"
    schema.upgrade(threads_url)
    base = replace(load_settings({}, env_file=None), model_threads=0, retry_delay_seconds=3600)
    for url, processes in ((db_url, True), (threads_url, False)):
        engine = make_engine(url)
        sessions = session_factory(engine)
        register_files(sessions, files)
        settings = replace(base, database_url=url, thumbnail_path=tmp_path / f"thumbs-{processes}",
                           detect_processes=processes)
        caplog.clear()
        report = detect_pending(sessions, detector, settings, encoder=encoder)
        assert report.images == len(files) and report.failed == 1
        assert report.embedded >= 5 and report.timings["detect"] > 0
        items = items_by_name(engine)
        assert "corrupt or truncated image" in items["truncated.jpg"].LastError
        assert all(i.IsFacesExtracted for name, i in items.items() if name != "truncated.jpg")
        engine.dispose()
        exif_lines = [r for r in caplog.records if "EXIF fields left out" in r.getMessage()]
        assert len(exif_lines) == 1  # logged once, in the worker's log
        # ... by the process that decoded the photo: a lane process, or the worker itself
        assert (exif_lines[0].process != os.getpid()) == processes
    with_processes, with_threads = _stored(db_url), _stored(threads_url)
    assert sum(len(v) for v in with_processes.values()) >= 8  # the group photos' faces too
    assert with_processes == with_threads  # boxes, scores, blur, quality, embeddings: the same


def _lane_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.name == "detect-lane"}


def test_a_lane_process_that_dies_or_hangs_fails_its_photo_alone_and_the_next_photo_gets_a_new_one(
        tmp_path, faces_dev):
    settings = replace(load_settings({}, env_file=None), model_threads=0, detect_timeout_seconds=3)
    pool = detect_procs.LanePool(replace(settings, database_url=""), 1)
    photo = str(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[0])
    timings = Timings()
    before = _lane_pids()
    try:
        first = pool.run(ClaimedItem(1, 1, photo), tmp_path / "t", None, timings, None)
        assert len(first.faces) == 1 and Path(first.faces[0].thumbnail).is_file()
        assert timings.seconds["decode"] > 0 and timings.seconds["detect"] > 0
        (pid,) = _lane_pids() - before

        def die_on_the_next_photo(sig: int | None, stop: StopFlag | None):
            os.kill(pid, signal.SIGSTOP)  # it cannot answer before it is killed
            outcome: list = []
            worker = threading.Thread(target=lambda: outcome.append(
                pool.run(ClaimedItem(2, 2, photo), tmp_path / "t", None, timings, stop)))
            worker.start()
            time.sleep(0.5)
            if sig is not None:  # else it hangs (stopped) until the time limit
                os.kill(pid, sig)
                os.kill(pid, signal.SIGCONT)
            worker.join(30)
            assert not worker.is_alive()
            return outcome[0]

        killed = die_on_the_next_photo(signal.SIGKILL, None)
        assert isinstance(killed, Problem) and killed.id == 2 and not killed.permanent
        assert killed.error == "the detection process ended while working on this image (killed by SIGKILL)"
        again = pool.run(ClaimedItem(3, 3, photo), tmp_path / "t", None, timings, None)
        assert len(again.faces) == 1  # a new process
        (pid,) = _lane_pids() - before
        # SIGTERM (a service manager stopping everything) or a stop request: handed back
        assert die_on_the_next_photo(signal.SIGTERM, None) is None
        assert pool.run(ClaimedItem(4, 4, photo), tmp_path / "t", None, timings, None).faces
        (pid,) = _lane_pids() - before
        stop = StopFlag()
        stop.set()
        assert die_on_the_next_photo(signal.SIGKILL, stop) is None
        assert pool.run(ClaimedItem(5, 5, photo), tmp_path / "t", None, timings, None).faces
        (pid,) = _lane_pids() - before
        started = time.monotonic()
        hung = die_on_the_next_photo(None, None)  # never answers: stopped after 3 s
        assert 2.5 < time.monotonic() - started < 20 and not _lane_pids() - before
        assert isinstance(hung, Problem) and hung.error == (
            "the detection process took more than 3 s on this image and was stopped (DETECT_TIMEOUT_SECONDS)")
        assert pool.run(ClaimedItem(6, 6, photo), tmp_path / "t", None, timings, None).faces
    finally:
        pool.close()
    assert not _lane_pids() - before  # closed: no process left behind


def test_a_lane_process_that_cannot_start_ends_the_run_instead_of_failing_photos(tmp_path, faces_dev):
    settings = replace(load_settings({}, env_file=None), detector="no-such-detector")
    pool = detect_procs.LanePool(settings, 1)
    photo = str(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[0])
    before = _lane_pids()
    try:
        with pytest.raises(detect_procs.LaneStartError, match="could not start: ValueError: unknown detector"):
            pool.run(ClaimedItem(1, 1, photo), tmp_path / "t", None, Timings(), None)
        assert not _lane_pids() - before
    finally:
        pool.close()
