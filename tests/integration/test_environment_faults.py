"""Faults of the machine are not charged to the photos (app/services/environment.py): a
thumbnail folder that cannot be written, or a photo folder gone (unmounted, renamed),
stops the run with one line and exit 2, every claimed row back in the queue with the
attempts it had, however many times it is run; once the machine is fixed, a normal run
does them all. One photo missing from a folder that is there is still its own fault.

Run as root too, where permissions do not stop writes: a folder that cannot be written
is made by putting a regular file where a folder must be (ENOTDIR, EEXIST), and a full
disk by a file write that raises ENOSPC."""
import errno
from dataclasses import replace
from pathlib import Path

import pytest

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.errors import EnvironmentFault
from app.services import environment
from app.services.detect import detect_pending
from app.services.ingest import register_files
from app.storage import thumbnails
from tests.integration.helpers import copy_images, faces_by_media, items_by_name

RUNS = 4  # more than MAX_ATTEMPTS (3): before the fix, every photo was given up by then
PHOTOS = environment.STREAK + 1


def _library(faces_dev: Path, folder: Path) -> list[Path]:
    sources = sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:3] + sorted((faces_dev / "Abdullah_Gul").glob("*.jpg"))[:3]
    assert len(sources) == PHOTOS
    return copy_images(sources, folder)


def _error_line(res) -> str:
    """The run's one error line (and no traceback)."""
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr[-3000:]
    return lines[0]


def _nothing_charged(engine, count: int = PHOTOS) -> None:
    items = items_by_name(engine)
    assert len(items) == count
    for name, item in items.items():
        assert (item.Status, item.Attempts, item.LockedBy, item.IsFacesExtracted) == ("pending", 0, None, False), name


def _fails_and_charges_nothing(cli, engine, words: str, command: str = "--db", what: str = "photo", **env) -> None:
    for _ in range(RUNS):
        res = cli(command, MAX_ATTEMPTS="3", RETRY_DELAY_SECONDS="0", **env)
        assert res.returncode == 2, res.stdout + res.stderr[-3000:]
        line = _error_line(res)
        assert words in line and f"fix it and run again; no {what} was charged" in line, line


def _all_done(cli, engine, **env) -> None:
    res = cli("--db", **env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert f"detection: {PHOTOS} images" in res.stdout and "0 failed" in res.stdout, res.stdout
    items = items_by_name(engine)
    assert all(i.IsFacesExtracted and i.Status == "done" and i.Attempts == 0 for i in items.values())
    assert all(faces_by_media(engine).get(i.MediaFileId) for i in items.values())


def test_thumbnail_folder_that_cannot_be_made_stops_the_run_before_any_photo(cli, db_url, tmp_path, faces_dev):
    _library(faces_dev, tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    (tmp_path / "a-file").write_text("a file where the thumbnail folder's parent should be\n")
    engine = make_engine(db_url)
    blocked = tmp_path / "a-file" / "thumbnails"
    _fails_and_charges_nothing(cli, engine, f"thumbnail folder {blocked} cannot be written (Not a directory",
                               THUMBNAIL_SAVE_PATH=str(blocked))
    _nothing_charged(engine)
    _all_done(cli, engine, THUMBNAIL_SAVE_PATH=str(tmp_path / "thumbnails"))
    engine.dispose()


@pytest.mark.parametrize("processes", ["true", "false"])
def test_thumbnail_files_that_cannot_be_written_stop_the_run(cli, db_url, tmp_path, faces_dev, processes):
    """The folder passes the check at the start, but each photo's thumbnails go into a
    sub-folder (media ids below 1000: 000000) that a regular file stands in for; they are
    written in the lane processes by default, in the lanes' threads with DETECT_PROCESSES
    off."""
    _library(faces_dev, tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    root = tmp_path / "thumbnails"
    root.mkdir()
    (root / "000000").write_text("not a folder\n")
    engine = make_engine(db_url)
    _fails_and_charges_nothing(cli, engine, f"thumbnail folder {root} cannot be written (",
                               THUMBNAIL_SAVE_PATH=str(root), DETECT_PROCESSES=processes)
    _nothing_charged(engine)
    # nothing of a handed-back photo left behind (dot files: the worker's own cursors)
    assert [p for p in root.iterdir() if not p.name.startswith(".")] == [root / "000000"]
    (root / "000000").unlink()
    _all_done(cli, engine, THUMBNAIL_SAVE_PATH=str(root), DETECT_PROCESSES=processes)
    engine.dispose()


def test_full_thumbnail_folder_stops_the_run(db_url, tmp_path, faces_dev, models, monkeypatch):
    """A disk that fills up during the run (each thumbnail write raises ENOSPC, the check
    at the start still passes), then one full from the start; in the worker's own threads,
    where the write can be replaced."""
    detector, _ = models
    files = _library(faces_dev, tmp_path / "photos")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, files)
    settings = replace(load_settings({}, env_file=None), database_url=db_url, detect_processes=False,
                       thumbnail_path=tmp_path / "thumbnails", max_attempts=3, retry_delay_seconds=0)
    write = thumbnails._write_new

    def full_disk(path: Path, data: bytes, probe_too: bool) -> None:
        if probe_too or not path.name.startswith(".probe"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data)

    for probe_too in (False, True, False, True):
        monkeypatch.setattr(thumbnails, "_write_new", lambda p, d: full_disk(p, d, probe_too))
        with pytest.raises(EnvironmentFault) as fault:
            detect_pending(sessions, detector, settings)
        assert str(fault.value) == (f"thumbnail folder {settings.thumbnail_path} is full (No space left on device): "
                                    "fix it and run again; no photo was charged")
    _nothing_charged(engine)
    monkeypatch.setattr(thumbnails, "_write_new", write)
    report = detect_pending(sessions, detector, settings)
    assert report.images == PHOTOS and report.failed == 0 and report.faces >= PHOTOS
    engine.dispose()


@pytest.mark.parametrize("processes", ["true", "false"])
def test_photo_folder_gone_stops_detection_and_embedding(cli, db_url, tmp_path, faces_dev, processes):
    library = tmp_path / "photos" / "library"
    _library(faces_dev, library)
    assert cli("--ingest", str(library)).returncode == 0
    engine = make_engine(db_url)
    env = {"THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbnails"), "DETECT_PROCESSES": processes}
    library.rename(library.with_name("library-renamed"))
    _fails_and_charges_nothing(cli, engine, f"photo folder {library} is missing (unmounted, moved or renamed?)",
                               **env)
    _nothing_charged(engine)
    library.with_name("library-renamed").rename(library)
    _all_done(cli, engine, **env)

    # the embedding stage reads the photos again: gone, its faces are not charged either
    library.rename(library.with_name("library-renamed"))
    _fails_and_charges_nothing(cli, engine, f"photo folder {library} is missing", command="--recognize",
                               what="face", **env)
    faces = [f for fs in faces_by_media(engine).values() for f in fs if f.IsUsable]
    assert faces and all(f.EmbedAttempts == 0 and f.EmbedError is None and f.EmbedLockedBy is None
                         and f.Embedding is None for f in faces)
    library.with_name("library-renamed").rename(library)
    res = cli("--recognize", **env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    faces = [f for fs in faces_by_media(engine).values() for f in fs if f.IsUsable]
    assert all(f.Embedding is not None for f in faces)
    engine.dispose()


def test_one_photo_missing_from_a_folder_that_is_there_is_charged(cli, db_url, tmp_path, faces_dev):
    files = _library(faces_dev, tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    files[0].unlink()
    res = cli("--db", MAX_ATTEMPTS="3", RETRY_DELAY_SECONDS="3600", THUMBNAIL_SAVE_PATH=str(tmp_path / "thumbs"))
    assert res.returncode == 1 and "error:" not in res.stderr, res.stdout + res.stderr[-3000:]
    engine = make_engine(db_url)
    items = items_by_name(engine)
    gone = items.pop(files[0].name)
    assert (gone.Status, gone.Attempts) == ("failed", 1) and "not found" in gone.LastError
    assert all(i.Status == "done" for i in items.values())
    engine.dispose()


def test_a_folder_gone_among_folders_that_are_there_is_charged_nothing_and_blocks_nothing(
        cli, db_url, tmp_path, faces_dev):
    """A disk unmounted (or an album deleted) while the rest of the library is there, its
    photos first in the queue and mixed with readable ones: the readable photos are
    detected, the missing ones wait uncharged, however many runs, and are detected once
    the folder is back."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.db.models import MediaItems
    from app.db.types import utcnow

    usb = _library(faces_dev, tmp_path / "photos" / "usb")
    kept = copy_images(sorted((faces_dev / "Abdullah_Gul").glob("*.jpg"))[3:5], tmp_path / "photos" / "kept")
    assert cli("--ingest", str(tmp_path / "photos" / "usb")).returncode == 0
    assert cli("--ingest", str(tmp_path / "photos" / "kept")).returncode == 0
    more = copy_images(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[3:5], tmp_path / "photos" / "usb2")
    assert cli("--ingest", str(tmp_path / "photos" / "usb2")).returncode == 0
    usb[0].parent.rename(tmp_path / "unmounted")
    more[0].parent.rename(tmp_path / "unmounted2")
    engine = make_engine(db_url)
    env = {"MAX_ATTEMPTS": "3", "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")}
    for run in range(RUNS):
        res = cli("--db", **env)
        if run == 0:  # the readable photos are detected, the missing ones wait
            assert res.returncode == 1 and "error:" not in res.stderr, res.stdout + res.stderr[-3000:]
        else:  # only photos of missing folders are due: the run says so in one line
            assert res.returncode == 2 and "are missing" in _error_line(res), res.stdout + res.stderr[-3000:]
        items = items_by_name(engine)
        for f in usb + more:
            item = items[f.name]
            assert item.Attempts == 0 and item.Status in ("failed", "pending"), (f.name, item.Status)
            assert run > 0 or "is missing: not charged" in item.LastError, item.LastError
        assert all(items[f.name].Status == "done" for f in kept)
        with session_factory(engine).begin() as s:  # their retry time has come
            s.execute(update(MediaItems).where(MediaItems.Status == "failed")
                      .values(LockedUntil=utcnow() - timedelta(seconds=1)))
    (tmp_path / "unmounted").rename(usb[0].parent)
    (tmp_path / "unmounted2").rename(more[0].parent)
    res = cli("--db", **env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert all(i.Status == "done" for i in items_by_name(engine).values())
    engine.dispose()


def test_watch_waits_out_a_missing_photo_folder_and_goes_on_when_it_is_back(cli, db_url, tmp_path, faces_dev):
    """--watch is a service: a photo folder gone is logged in one line, nothing is charged,
    and once the folder is back the waiting photos are detected; it never exits for it."""
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.conftest import ROOT

    library = tmp_path / "photos" / "library"
    _library(faces_dev, library)
    assert cli("--ingest", str(library)).returncode == 0
    library.rename(library.with_name("library-renamed"))
    watcher = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--watch"], cwd=cli.cwd, text=True,
                               env={**cli.env, "WATCH_INTERVAL_SECONDS": "0.5", "MAX_ATTEMPTS": "3",
                                    "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = make_engine(db_url)
    log = cli.cwd / "logs" / "face_detection.log"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("fault of the machine") < 2):
            time.sleep(0.3)
        assert watcher.poll() is None, watcher.communicate()[1][-3000:]  # still running
        _nothing_charged(engine)
        library.with_name("library-renamed").rename(library)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all(i.IsFacesExtracted for i in items_by_name(engine).values()):
            time.sleep(0.5)
        assert all(i.IsFacesExtracted and i.Attempts == 0 for i in items_by_name(engine).values())
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=120)
        engine.dispose()
    assert watcher.returncode == 0 and "Traceback" not in err, err[-3000:]
    faults = [line for line in log.read_text().splitlines() if "fault of the machine" in line]
    assert faults and all(f"photo folder {library} is missing" in line for line in faults)


def test_automate_reports_a_machine_fault_in_one_line_and_charges_nothing(cli, db_url, tmp_path, faces_dev):
    """--automate keeps running through a fault of the machine: each run logs one line (no
    traceback) and charges nothing; the fault is the same at every run."""
    import time

    from tests.integration.helpers import assert_stopped_cleanly, start_automate_workers, stop_workers

    _library(faces_dev, tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    (tmp_path / "a-file").write_text("a file where the thumbnail folder's parent should be\n")
    engine = make_engine(db_url)
    workers = start_automate_workers(cli, {"THUMBNAIL_SAVE_PATH": str(tmp_path / "a-file" / "thumbnails"),
                                           "AUTOMATE_INTERVAL_MINUTES": "0.02", "MAX_ATTEMPTS": "3",
                                           "RETRY_DELAY_SECONDS": "0"}, count=1)
    log = cli.cwd / "logs" / "worker.log"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count("run stopped") < RUNS):
        time.sleep(0.5)
    stopped = stop_workers(workers)
    assert_stopped_cleanly(stopped)
    lines = [line for line in log.read_text().splitlines() if "run stopped" in line]
    assert len(lines) >= RUNS and all("cannot be written" in line for line in lines), log.read_text()[-3000:]
    _nothing_charged(engine)
    engine.dispose()
