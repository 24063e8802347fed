"""Publishing (issue 14): the outbox written with the changes, and --publish against a local
receiver (tests/integration/receiver.py) that fails, times out and succeeds on cue. Every
event is delivered exactly once per idempotency key, nothing is lost across a SIGKILL of
the publisher, and failures end as failed events that --status shows."""
from __future__ import annotations

import hashlib
import logging
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.engine import make_engine, session_factory
from app.db.models import EVENT_FAILED, EVENT_QUEUED, EVENT_SENT, Faces, MediaFile, PublishEvents
from app.repositories import outbox
from app.services import persons
from app.services.ingest import register_files
from app.services.publish import publish
from app.services.run import automated_run, detect_and_recognize
from tests.integration.conftest import ROOT
from tests.integration.helpers import copy_images, status_counts
from tests.integration.persons_world import settings_for
from tests.integration.receiver import Receiver

TOKEN = "s3cret-publish-token"


def _events(sessions) -> list[tuple[int, int, str]]:
    with sessions() as s:
        return [tuple(r) for r in s.execute(select(PublishEvents.Id, PublishEvents.MediaFileId, PublishEvents.Status)
                                            .order_by(PublishEvents.Id))]


@pytest.fixture
def library(db_url, models, faces_dev, tmp_path):
    """Five dev photos (two people, one of them three times) detected and grouped by the
    real models; the run leaves one queued event per photo with faces."""
    photos = copy_images([faces_dev / "Andre_Agassi" / f"{n:02d}.jpg" for n in (1, 2, 3)]
                         + [faces_dev / "Angelina_Jolie" / f"{n:02d}.jpg" for n in (1, 2)], tmp_path / "photos")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    settings = replace(settings_for(db_url, tmp_path / "thumbs"), publish_backoff_seconds=0.05,
                       publish_timeout_seconds=0.5, publish_max_attempts=4, publish_token=TOKEN)
    register_files(sessions, photos)
    assert detect_and_recognize(sessions, models[0], models[1], settings).failed == 0
    yield sessions, settings, photos
    engine.dispose()


def test_events_are_written_with_the_changes_and_delivered_once_through_failures(library, caplog):
    caplog.set_level(logging.DEBUG)
    sessions, settings, photos = library
    events = _events(sessions)
    with sessions() as s:
        media_with_faces = set(s.scalars(select(Faces.MediaFileId).distinct()))
    # detection and the assignment step both changed each photo: one queued event each
    assert sorted(m for _, m, _ in events) == sorted(media_with_faces) and len(media_with_faces) == 5
    assert all(status == EVENT_QUEUED for _, _, status in events)

    # each event: a 500, then no answer (a timeout), then a dropped connection, then 200
    with Receiver(per_key=[500, "hang", "close", 200], hang_seconds=2.0) as rx:
        report = publish(sessions, replace(settings, publish_url=rx.url))
    assert (report.sent, report.failed) == (5, 0) and report.retried == 15
    accepted = rx.accepted()
    assert len(accepted) == 5 and all(len(bodies) == 1 for bodies in accepted.values())
    for key in accepted:  # every try of one event carried the same body
        assert len({str(r.body) for r in rx.received if r.key == key}) == 1
    assert all(r.auth == f"Bearer {TOKEN}" for r in rx.received)
    assert {status for _, _, status in _events(sessions)} == {EVENT_SENT}

    # the body: the derived asset of seed 000, parented to the file's SHA-256
    body = next(iter(accepted.values()))[0]
    source = body["source"]
    assert body["parentId"] == "sha256:" + hashlib.sha256(Path(source["file"]).read_bytes()).hexdigest()
    assert source["type"] == "image" and source["width"] > 0 and not source["deleted"]
    with sessions() as s:
        stored = {fid: pid for fid, pid in s.execute(select(Faces.Id, Faces.PersonId)
                                                     .where(Faces.MediaFileId == source["mediaFileId"]))}
    assert {f["faceId"]: f["personId"] for f in body["faces"]} == stored
    assert {p["personId"] for p in body["persons"]} == {p for p in stored.values() if p is not None}

    # nothing new: nothing sent again
    with Receiver() as rx:
        assert publish(sessions, replace(settings, publish_url=rx.url)).sent == 0
        assert rx.received == []

    # a rename changes every photo of that person: a new event each, with the new name
    agassi = next(p for f in body["faces"] for p in [f["personId"]] if p is not None)
    with sessions() as s:
        agassi_media = set(s.scalars(select(Faces.MediaFileId).where(Faces.PersonId == agassi)))
    persons.rename(sessions, agassi, "Andre")
    with Receiver() as rx:
        assert publish(sessions, replace(settings, publish_url=rx.url)).sent == len(agassi_media)
    assert {b[0]["source"]["mediaFileId"] for b in rx.accepted().values()} == agassi_media
    assert all(any(p["personName"] == "Andre" for p in b[0]["persons"]) for b in rx.accepted().values())
    assert not set(rx.accepted()) & set(accepted)  # new events, new keys
    assert "published" in caplog.text and TOKEN not in caplog.text  # the token is never logged


def test_automate_runs_end_with_a_publishing_pass(library, models, faces_dev, tmp_path):
    """--automate's run: detect and recognize a new photo, then send what is due (without
    waiting for retries: an event the receiver refuses once waits for the next run)."""
    sessions, settings, _ = library
    register_files(sessions, copy_images([faces_dev / "Andre_Agassi" / "04.jpg"], tmp_path / "new"))
    with Receiver(cues=[503]) as rx:
        report = automated_run(sessions, models[0], models[1], replace(settings, publish_url=rx.url,
                                                                       publish_backoff_seconds=30))
        assert report.failed == 0 and report.published is not None
        assert (report.published.sent, report.published.retried) == (5, 1)  # one refused once, kept
    statuses = [status for _, _, status in _events(sessions)]
    assert statuses.count(EVENT_SENT) == 5 and statuses.count("pending") == 1
    # without PUBLISH_URL, a run publishes nothing
    assert automated_run(sessions, models[0], models[1], settings).published is None


def test_failures_give_up_and_show_in_status(library, cli_factory, db_url):
    sessions, settings, _ = library
    with Receiver(cues=[400] + [503] * 100) as rx:
        report = publish(sessions, replace(settings, publish_url=rx.url))
    # the 400 is refused at once; the others are tried PUBLISH_MAX_ATTEMPTS (4) times
    assert (report.sent, report.failed) == (0, 5)
    assert len(rx.received) == 1 + 4 * 4
    with sessions() as s:
        rows = s.execute(select(PublishEvents.Attempts, PublishEvents.LastError, PublishEvents.Status)).all()
    assert all(status == EVENT_FAILED for _, _, status in rows)
    assert sorted(a for a, _, _ in rows) == [1, 4, 4, 4, 4]
    assert sum("HTTP 400" in e and "not retried" in e for _, e, _ in rows) == 1
    assert sum("HTTP 503" in e and "gave up after 4 attempts" in e for _, e, _ in rows) == 4

    out = cli_factory(db_url)("--status")
    assert out.returncode == 0, out.stderr
    assert "latest failed events (publishing)" in out.stdout and "HTTP 503" in out.stdout
    counts = status_counts(cli_factory(db_url))
    assert counts["events failed, gave up"] == 5 and counts["events to publish"] == 0
    assert counts["failed, gave up"] == 0  # the media items are fine
    # failed events stay failed: a later --publish sends nothing
    with Receiver() as rx:
        assert publish(sessions, replace(settings, publish_url=rx.url)).sent == 0 and rx.received == []


def test_a_redirect_is_refused_and_a_files_events_go_in_order(library):
    """A 302 is not followed (urllib would resend as a GET with the token elsewhere): the
    event fails. A newer event of a file waits while an older one is retrying."""
    sessions, settings, _ = library
    with Receiver(cues=[302, 503]) as rx:
        report = publish(sessions, replace(settings, publish_url=rx.url, publish_backoff_seconds=0.3))
    assert not [r for r in rx.received if "GET" in r.body]  # never followed
    assert report.failed == 1 and report.sent == 4 and report.retried == 1
    with sessions() as s:
        errors = [e for e in s.scalars(select(PublishEvents.LastError)) if e]
    assert any("HTTP 302" in e and "/elsewhere" in e and "not retried" in e for e in errors)

    # file M: event E1 is refused once (a retry 0.3 s later); a change meanwhile makes E2;
    # E2 is sent only after E1, whatever their due times
    with sessions() as s:
        media = s.scalar(select(Faces.MediaFileId).limit(1))
    with sessions.begin() as s:
        outbox.enqueue_media(s, [media])
    with Receiver(cues=[503]) as rx:
        first = publish(sessions, replace(settings, publish_url=rx.url, publish_backoff_seconds=1.0), wait=False)
        assert (first.sent, first.retried) == (0, 1)
        with sessions.begin() as s:
            outbox.enqueue_media(s, [media])  # E2
        assert publish(sessions, replace(settings, publish_url=rx.url), wait=False).sent == 0  # E1 not due yet
        assert publish(sessions, replace(settings, publish_url=rx.url, publish_backoff_seconds=0.3)).sent == 2
    ids = [r.body["eventId"] for r in rx.received]
    assert ids[0] == ids[1] and ids[2] > ids[1], ids  # E1, E1 again, then E2


def test_sigkill_while_publishing_loses_nothing(pg_url, faces_dev, cli_factory, tmp_path):
    """40 events (media rows of real photos, enqueued directly: the payload is built from
    whatever the database holds), a slow receiver, and the publisher killed three times in
    the middle; restarted each time, every event is accepted, each key exactly once."""
    photos = copy_images(sorted(faces_dev.glob("*/01.jpg"))[:40], tmp_path / "photos")
    engine = make_engine(pg_url)
    sessions = session_factory(engine)
    register_files(sessions, photos)
    with sessions.begin() as s:
        outbox.enqueue_media(s, s.scalars(select(MediaFile.Id)))
    assert len(_events(sessions)) == 40
    cli = cli_factory(pg_url)
    with Receiver(delay=0.15) as rx:
        env = {**cli.env, "PUBLISH_URL": rx.url, "LEASE_SECONDS": "1", "PUBLISH_BATCH_SIZE": "5",
               "PUBLISH_BACKOFF_SECONDS": "0.05", "PUBLISH_MAX_ATTEMPTS": "10"}
        for kill_after in (6, 14, 25):
            worker = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--publish"], cwd=cli.cwd, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while len(rx.received) < kill_after and worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            # most kills land while a POST is in flight: answered or not, not yet recorded
            time.sleep(0.07)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        time.sleep(1.1)  # the killed worker's leases run out
        final = subprocess.run([sys.executable, str(ROOT / "main.py"), "--publish"], cwd=cli.cwd, env=env,
                               capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr[-3000:]
    assert {status for _, _, status in _events(sessions)} == {EVENT_SENT}
    accepted = rx.accepted()
    with sessions() as s:
        keys = dict(s.execute(select(PublishEvents.IdempotencyKey, PublishEvents.MediaFileId)).all())
    assert set(accepted) == set(keys) and len(keys) == 40
    # a key sent again (killed after the 2xx, before the commit) carries the same body
    for key, bodies in accepted.items():
        assert all(b == bodies[0] for b in bodies) and bodies[0]["source"]["mediaFileId"] == keys[key]
    resent = sum(len(b) - 1 for b in accepted.values())
    assert resent <= 3, resent  # at most one per kill
    engine.dispose()


def test_events_join_until_claimed(db_url, faces_dev, tmp_path):
    """Changes of one media file join its queued event; once a publisher has claimed it,
    a new change makes a new event (the claimed one's body may not hold it). On PostgreSQL
    a claim cannot take an event whose change is still being written."""
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, copy_images([faces_dev / "Andre_Agassi" / "01.jpg"], tmp_path))
    with sessions.begin() as s:
        media = s.scalar(select(MediaFile.Id))
        for _ in range(3):
            outbox.enqueue_media(s, [media])
    assert len(_events(sessions)) == 1
    from app.db.types import utcnow
    from datetime import timedelta
    with sessions.begin() as s:
        assert len(outbox.claim(s, "w1", utcnow(), utcnow() + timedelta(seconds=60), 10, 5)) == 1
        outbox.enqueue_media(s, [media])
        outbox.enqueue_media(s, [media])
    assert [status for _, _, status in _events(sessions)] == ["pending", "queued"]
    with sessions.begin() as s:
        outbox.mark_sent(s, _events(sessions)[0][0], utcnow())  # the first is done: the second may go
    if engine.dialect.name == "postgresql":
        # a change still being written holds its file's queued event: a claim skips it
        # until that change has committed, so the body built after the claim holds it
        with sessions.begin() as writer:
            outbox.enqueue_media(writer, [media])
            with sessions.begin() as s:
                assert outbox.claim(s, "w2", utcnow(), utcnow() + timedelta(seconds=60), 10, 5) == []
    with sessions.begin() as s:
        assert len(outbox.claim(s, "w2", utcnow(), utcnow() + timedelta(seconds=60), 10, 5)) == 1
    engine.dispose()
