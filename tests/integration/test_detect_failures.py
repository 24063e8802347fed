"""Bad input never stops the batch, never loops, and leaves a reason on the row."""
import os
import time
from datetime import timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import update

from app.db.engine import make_engine, session_factory
from app.db.models import MediaItems
from app.db.types import utcnow
from tests.integration.helpers import copy_images, faces_by_media, items_by_name, status_counts


def _bad_files(folder: Path, good: Path) -> dict[str, str]:
    """name -> expected words in the recorded reason."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n" * 20)
    # A real PNG whose header says 20000x20000: tiny on disk, 400 MP decoded.
    Image.new("1", (20000, 20000)).save(folder / "huge.png", optimize=True)
    (folder / "gone.jpg").write_bytes(data)  # deleted after ingest
    return {
        "truncated.jpg": "truncated",
        "empty.jpg": "empty file",
        "text.jpg": "not an image",
        "huge.png": "too large",
        "gone.jpg": "not found",
    }


def test_bad_files_fail_with_reasons_and_good_ones_finish(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    good = copy_images([faces_dev / "Abdullah_Gul" / "03.jpg", faces_dev / "Al_Gore" / "01.jpg"], photos)
    expected = _bad_files(photos, good[0])
    assert cli("--ingest", str(photos)).returncode == 0
    (photos / "gone.jpg").unlink()

    env = {"MAX_ATTEMPTS": "2", "RETRY_DELAY_SECONDS": "0", "DETECT_BATCH_SIZE": "3",
           "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")}
    res = cli("--db", **env)
    assert res.returncode == 1, res.stderr  # some items failed
    assert "Traceback" not in res.stderr
    # each item counted once, though the retryable ones were tried twice in this run
    assert f"detection: {len(expected) + len(good)} images" in res.stdout and f"{len(expected)} failed" in res.stdout
    engine = make_engine(db_url)
    items = items_by_name(engine)
    for name, words in expected.items():
        item = items[name]
        assert not item.IsFacesExtracted and item.Status == "failed", name
        assert words in item.LastError, (name, item.LastError)
        assert item.Attempts == 2, name  # retried once, then given up
    for g in good:
        assert items[g.name].IsFacesExtracted and items[g.name].Status == "done"
    assert sum(len(v) for v in faces_by_media(engine).values()) >= 2

    counts = status_counts(cli, MAX_ATTEMPTS="2")
    assert counts["failed, gave up"] == len(expected) and counts["done"] == len(good)
    again = cli("--db", **env)  # nothing left to try: no loop
    assert again.returncode == 0 and "0 images" in again.stdout
    engine.dispose()


def test_failed_item_waits_for_retry_delay(cli, db_url, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    cli("--ingest", str(photos))
    res = cli("--db", MAX_ATTEMPTS="3", RETRY_DELAY_SECONDS="3600")
    assert res.returncode == 1
    engine = make_engine(db_url)
    item = items_by_name(engine)["broken.jpg"]
    assert item.Attempts == 1 and item.Status == "failed"
    assert status_counts(cli)["failed, will retry"] == 1
    # Not due yet: a second run leaves it alone.
    assert "0 images" in cli("--db", MAX_ATTEMPTS="3", RETRY_DELAY_SECONDS="3600").stdout
    assert items_by_name(engine)["broken.jpg"].Attempts == 1
    engine.dispose()


def test_expired_lease_is_taken_again_and_live_lease_is_not(cli, db_url, tmp_path, faces_dev):
    photos = copy_images([faces_dev / "Al_Gore" / "02.jpg", faces_dev / "Al_Gore" / "03.jpg"], tmp_path / "p")
    cli("--ingest", str(tmp_path / "p"))
    engine = make_engine(db_url)
    items = items_by_name(engine)
    dead, alive = items[photos[0].name].Id, items[photos[1].name].Id
    now = utcnow()
    with session_factory(engine).begin() as s:
        held = dict(Status="processing", Attempts=1)
        s.execute(update(MediaItems).where(MediaItems.Id == dead)
                  .values(LockedBy="dead-worker", LockedUntil=now - timedelta(minutes=1), **held))
        s.execute(update(MediaItems).where(MediaItems.Id == alive)
                  .values(LockedBy="busy-worker", LockedUntil=now + timedelta(hours=1), **held))
    res = cli("--db")
    items = items_by_name(engine)
    # the dead worker's item is retried alone, and that retry counts as an attempt
    assert items[photos[0].name].IsFacesExtracted and items[photos[0].name].Attempts == 2
    if db_url.startswith("postgresql"):
        assert res.returncode == 0 and "1 images" in res.stdout
        assert not items[photos[1].name].IsFacesExtracted and items[photos[1].name].LockedBy == "busy-worker"
    else:  # SQLite: the lock file proves no other worker is alive, so no lease is waited for
        assert res.returncode == 0 and "2 images" in res.stdout
        assert items[photos[1].name].IsFacesExtracted and items[photos[1].name].Attempts == 2
    engine.dispose()


def test_item_abandoned_on_its_last_attempt_becomes_failed(cli, db_url, tmp_path, faces_dev):
    copy_images([faces_dev / "Al_Gore" / "04.jpg"], tmp_path / "p")
    cli("--ingest", str(tmp_path / "p"))
    engine = make_engine(db_url)
    with session_factory(engine).begin() as s:
        s.execute(update(MediaItems).values(
            Status="processing", Attempts=3, LockedBy="dead", LockedUntil=utcnow() - timedelta(seconds=1)))
    res = cli("--db", MAX_ATTEMPTS="3")
    # the run that gives it up says so: counted as failed, exit 1, the file named
    assert res.returncode == 1 and "1 failed" in res.stdout, res.stdout
    assert "04.jpg" in res.stderr and "likely cause" in res.stderr
    item = next(iter(items_by_name(engine).values()))
    assert item.Status == "failed" and "worker stopped" in item.LastError and item.LockedBy is None
    engine.dispose()


def test_errors_that_cannot_change_fail_at_once_and_status_shows_why(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.jpg").write_text("not an image at all\n")
    (photos / "later.jpg").write_bytes((faces_dev / "Al_Gore" / "01.jpg").read_bytes())
    cli("--ingest", str(photos))
    (photos / "later.jpg").unlink()  # may come back (a share being mounted): worth retrying
    res = cli("--db", MAX_ATTEMPTS="3", RETRY_DELAY_SECONDS="3600")
    assert res.returncode == 1 and "3 failed" in res.stdout
    engine = make_engine(db_url)
    items = items_by_name(engine)
    engine.dispose()
    assert items["empty.jpg"].Attempts == 3 and items["text.jpg"].Attempts == 3  # given up at once
    assert items["later.jpg"].Attempts == 1
    status = cli("--status", MAX_ATTEMPTS="3")
    counts = status_counts(cli, MAX_ATTEMPTS="3")
    assert counts["failed, gave up"] == 2 and counts["failed, will retry"] == 1
    assert "empty file (0 bytes)" in status.stdout and "gave up" in status.stdout
    assert "later.jpg" in status.stdout and "will retry" in status.stdout


def test_thumbnails_of_photos_deleted_by_another_application_are_swept(cli, db_url, tmp_path, faces_dev):
    from sqlalchemy import delete

    from app.db.models import MediaFile

    photos = copy_images([faces_dev / "Al_Gore" / "01.jpg", faces_dev / "Al_Gore" / "02.jpg"], tmp_path / "p")
    thumbs = tmp_path / "thumbs"
    cli("--ingest", str(tmp_path / "p"))
    assert cli("--db", THUMBNAIL_SAVE_PATH=str(thumbs)).returncode == 0
    engine = make_engine(db_url)
    gone = items_by_name(engine)[photos[0].name].MediaFileId
    faces = faces_by_media(engine)
    gone_files = [Path(f.ThumbnailPath) for f in faces[gone]]
    kept_files = [Path(f.ThumbnailPath) for m, fs in faces.items() if m != gone for f in fs]
    assert gone_files and kept_files and all(p.exists() for p in gone_files + kept_files)
    with session_factory(engine).begin() as s:  # the faces go with it (foreign key cascade)
        s.execute(delete(MediaFile).where(MediaFile.Id == gone))
    engine.dispose()
    # a run soon after leaves them (they could belong to a store in progress) ...
    assert cli("--db", THUMBNAIL_SAVE_PATH=str(thumbs), LEASE_SECONDS="600").returncode == 0
    assert all(p.exists() for p in gone_files)
    # ... and once older than a lease, the next run's sweep removes them, and only them
    for p in gone_files + kept_files:
        os.utime(p, (time.time() - 700, time.time() - 700))
    assert cli("--db", THUMBNAIL_SAVE_PATH=str(thumbs), LEASE_SECONDS="600").returncode == 0
    assert not any(p.exists() for p in gone_files) and all(p.exists() for p in kept_files)
