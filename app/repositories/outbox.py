"""SQL of the publishing outbox (PublishEvents). Callers own the transaction.

Events are written by the transactions that change faces or persons (detection, the
assignment step, users' operations), so an event exists exactly when its change was
committed. A media file has at most one *queued* event: later changes join it (INSERT ...
ON CONFLICT against a partial unique index; on PostgreSQL it locks the queued event, see
_PG_JOIN). A publisher claims events with
`FOR UPDATE SKIP LOCKED` and a lease, which turns a queued event into a *pending* one with
a fixed idempotency key; from then on a new change of its media file makes a new event.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import and_, bindparam, func, literal, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from app.db.models import (
    EVENT_FAILED,
    EVENT_PENDING,
    EVENT_QUEUED,
    EVENT_SENT,
    Faces,
    MediaFile,
    MediaMeta,
    Persons,
    PublishEvents,
)
from app.repositories.ids import ARRAY_CHUNK, chunks, id_batches

EVENTS = PublishEvents.__table__


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# PostgreSQL: one statement per ARRAY_CHUNK ids, the media files found and inserted by the
# server (a first run over a million faces: about 20 statements, not a million rows sent).
# A queued event already there is *updated* (to itself), not skipped: that locks it until
# this transaction commits, so a publisher's claim (SKIP LOCKED) cannot take it and build
# its body before this change is visible; once the claim has committed, this inserts a new
# queued event instead.
_PG_JOIN = ' ON CONFLICT ("MediaFileId") WHERE "Status" = \'queued\' DO UPDATE SET "Status" = EXCLUDED."Status"'
_PG_MEDIA = text(
    'INSERT INTO "PublishEvents" ("MediaFileId") SELECT DISTINCT m FROM unnest(CAST(:ids AS integer[])) AS m '
    'ORDER BY m' + _PG_JOIN)
_PG_FACES = text(
    'INSERT INTO "PublishEvents" ("MediaFileId") SELECT DISTINCT f."MediaFileId" FROM "Faces" f '
    'WHERE f."Id" = ANY(CAST(:ids AS integer[])) ORDER BY 1' + _PG_JOIN)
_PG_PERSONS = text(
    'INSERT INTO "PublishEvents" ("MediaFileId") SELECT DISTINCT f."MediaFileId" FROM "Faces" f '
    'WHERE f."PersonId" = ANY(CAST(:ids AS integer[])) ORDER BY 1' + _PG_JOIN)


def _pg_insert(session: Session, statement, ids: Iterable[int]) -> None:
    ordered = sorted(set(int(i) for i in ids))  # one order everywhere: no deadlock between writers
    for start in range(0, len(ordered), ARRAY_CHUNK):
        session.execute(statement, {"ids": ordered[start:start + ARRAY_CHUNK]})


def enqueue_media(session: Session, media_ids: Iterable[int]) -> None:
    """A queued event for each of these media files that has none yet."""
    if _postgres(session):
        _pg_insert(session, _PG_MEDIA, media_ids)
        return
    for chunk in chunks(media_ids):
        session.execute(sqlite.insert(EVENTS).on_conflict_do_nothing(), [{"MediaFileId": m} for m in chunk])


def _enqueue_media_of(session: Session, statement, column, ids: Iterable[int]) -> None:
    """Events for the media files of the faces whose `column` is one of `ids`."""
    if _postgres(session):
        _pg_insert(session, statement, ids)
        return
    media: set[int] = set()
    for where in id_batches(session, column, ids):
        media.update(session.scalars(select(Faces.MediaFileId).where(where).distinct()))
    enqueue_media(session, media)


def enqueue_faces(session: Session, face_ids: Iterable[int]) -> None:
    """Events for the media files of these faces (faces gone already are skipped)."""
    _enqueue_media_of(session, _PG_FACES, Faces.Id, face_ids)


def enqueue_persons(session: Session, person_ids: Iterable[int]) -> None:
    """Events for every media file with a face of these persons (a rename changes them all)."""
    _enqueue_media_of(session, _PG_PERSONS, Faces.PersonId, person_ids)


@dataclass(frozen=True)
class Claimed:
    event_id: int
    media_file_id: int
    key: str
    payload: str | None
    attempts: int  # this claim included


def _first_open(max_attempts: int):
    """Open, with attempts left, and no older open event of the same media file."""
    older = EVENTS.alias("older")
    return and_(
        EVENTS.c.Status.in_((EVENT_QUEUED, EVENT_PENDING)),
        EVENTS.c.Attempts < max_attempts,
        ~select(older.c.Id).where(older.c.MediaFileId == EVENTS.c.MediaFileId, older.c.Id < EVENTS.c.Id,
                                  older.c.Status.in_((EVENT_QUEUED, EVENT_PENDING))).exists(),
    )


def claim(session: Session, worker: str, now: datetime, lease_until: datetime, limit: int,
          max_attempts: int) -> list[Claimed]:
    """Up to `limit` events due now (queued, or pending and past their retry time), not
    held by a live worker, and each the oldest open event of its media file (a file's
    events arrive in order: a newer state never before an older one still retrying). Each
    claim counts as an attempt, so an event whose sending kills its worker every time
    still ends (failed) after `max_attempts`."""
    due = and_(
        _first_open(max_attempts),
        or_(EVENTS.c.NextAttemptAt.is_(None), EVENTS.c.NextAttemptAt <= now),
        or_(EVENTS.c.LockedUntil.is_(None), EVENTS.c.LockedUntil < now),
    )
    rows = session.execute(
        select(EVENTS.c.Id, EVENTS.c.MediaFileId, EVENTS.c.IdempotencyKey, EVENTS.c.Payload, EVENTS.c.Attempts)
        .where(due).order_by(EVENTS.c.Id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    out = [Claimed(r[0], r[1], r[2] or uuid.uuid4().hex, r[3], r[4] + 1) for r in rows]
    if out:
        session.execute(
            update(EVENTS).where(EVENTS.c.Id == bindparam("eid")).values(
                Status=EVENT_PENDING, IdempotencyKey=bindparam("key"), Attempts=EVENTS.c.Attempts + 1,
                LockedBy=worker, LockedUntil=lease_until),
            [{"eid": c.event_id, "key": c.key} for c in out],
        )
    return out


def exhausted(session: Session, now: datetime, max_attempts: int) -> list[int]:
    """Open events with no attempt left and no live worker: the last allowed attempt ended
    with its worker gone (lease run out, never recorded), or PUBLISH_MAX_ATTEMPTS was
    lowered below what they used. Failed for good."""
    ids = list(session.scalars(
        select(EVENTS.c.Id).where(EVENTS.c.Status.in_((EVENT_QUEUED, EVENT_PENDING)),
                                  EVENTS.c.Attempts >= max_attempts,
                                  or_(EVENTS.c.LockedUntil.is_(None), EVENTS.c.LockedUntil < now))
        .with_for_update(skip_locked=True)
    ))
    if ids:
        session.execute(update(EVENTS).where(EVENTS.c.Id.in_(ids)).values(
            Status=EVENT_FAILED, LockedBy=None, LockedUntil=None,
            LastError=literal("no attempt left (PUBLISH_MAX_ATTEMPTS); last: ")
            + func.coalesce(EVENTS.c.LastError, literal("the publisher stopped while sending (crash or kill)"))))
    return ids


def set_payload(session: Session, event_id: int, payload: str, worker: str) -> bool:
    """Fix the event's body, once; False when another worker holds it now."""
    result = session.execute(
        update(EVENTS).where(EVENTS.c.Id == event_id, EVENTS.c.LockedBy == worker, EVENTS.c.Payload.is_(None))
        .values(Payload=payload)
    )
    return (result.rowcount or 0) == 1


def mark_sent(session: Session, event_id: int, now: datetime) -> None:
    """Whoever sent it: a 2xx is final, even from a worker whose lease had run out."""
    session.execute(update(EVENTS).where(EVENTS.c.Id == event_id).values(
        Status=EVENT_SENT, SentAt=now, LastError=None, LockedBy=None, LockedUntil=None, NextAttemptAt=None))


def mark_retry(session: Session, event_id: int, worker: str, error: str, next_at: datetime) -> None:
    session.execute(update(EVENTS).where(EVENTS.c.Id == event_id, EVENTS.c.LockedBy == worker,
                                         EVENTS.c.Status == EVENT_PENDING).values(
        LastError=error, NextAttemptAt=next_at, LockedBy=None, LockedUntil=None))


def mark_failed(session: Session, event_id: int, worker: str, error: str) -> None:
    session.execute(update(EVENTS).where(EVENTS.c.Id == event_id, EVENTS.c.LockedBy == worker,
                                         EVENTS.c.Status == EVENT_PENDING).values(
        Status=EVENT_FAILED, LastError=error, LockedBy=None, LockedUntil=None))


def release(session: Session, event_ids: Sequence[int], worker: str) -> None:
    """Hand back events claimed but not tried (a stop request): no attempt is charged."""
    if event_ids:
        session.execute(update(EVENTS).where(EVENTS.c.Id.in_(event_ids), EVENTS.c.LockedBy == worker).values(
            Attempts=EVENTS.c.Attempts - 1, LockedBy=None, LockedUntil=None))


def next_due(session: Session, max_attempts: int) -> datetime | None | bool:
    """When the next open event can be tried: None when one is due now (or held by a
    worker), a time when all wait for a retry, False when none is open."""
    rows = session.execute(select(EVENTS.c.NextAttemptAt, EVENTS.c.LockedUntil).where(_first_open(max_attempts))).all()
    if not rows:
        return False
    times = [max(t for t in r if t is not None) if any(t is not None for t in r) else None for r in rows]
    if any(t is None for t in times):
        return None
    return min(times)


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(EVENTS.c.Status, func.count()).group_by(EVENTS.c.Status)).all()
    return {status: int(n) for status, n in rows}


@dataclass(frozen=True)
class FailedEvent:
    event_id: int
    media_file_id: int
    attempts: int
    reason: str | None


def recent_failures(session: Session, limit: int = 5) -> list[FailedEvent]:
    rows = session.execute(
        select(EVENTS.c.Id, EVENTS.c.MediaFileId, EVENTS.c.Attempts, EVENTS.c.LastError)
        .where(EVENTS.c.Status == EVENT_FAILED).order_by(EVENTS.c.Id.desc()).limit(limit)
    ).all()
    return [FailedEvent(*r) for r in rows]


# --- what an event says -----------------------------------------------------------------

@dataclass(frozen=True)
class MediaFacts:
    media_file_id: int
    file_path: str
    file_name: str
    media_type: str | None  # "video", or None for a photo
    width: int | None
    height: int | None
    taken_at: str | None
    device_id: str | None
    latitude: float | None
    longitude: float | None
    duration_ms: int | None
    codec: str | None
    frame_rate: float | None


def media_facts(session: Session, media_file_id: int) -> MediaFacts | None:
    row = session.execute(
        select(MediaFile.Id, MediaFile.FilePath, MediaFile.FileName, MediaMeta.MediaType, MediaMeta.Width,
               MediaMeta.Height, MediaMeta.TakenAt, MediaMeta.DeviceId, MediaMeta.Latitude, MediaMeta.Longitude,
               MediaMeta.DurationMs, MediaMeta.Codec, MediaMeta.FrameRate)
        .outerjoin(MediaMeta, MediaMeta.MediaFileId == MediaFile.Id).where(MediaFile.Id == media_file_id)
    ).first()
    return MediaFacts(*row) if row else None


@dataclass(frozen=True)
class EventFace:
    face_id: int
    person_id: int | None
    person_name: str | None
    bounding_box: str | None
    confidence: float | None
    quality: float | None
    is_usable: bool
    assigned_by: str | None
    frame_number: int | None
    frame_time_ms: int | None
    track_number: int | None
    person_hidden: bool | None = None


def faces_of(session: Session, media_file_id: int) -> list[EventFace]:
    rows = session.execute(
        select(Faces.Id, Faces.PersonId, Persons.Name, Faces.BoundingBox, Faces.Confidence, Faces.Quality,
               Faces.IsUsable, Faces.AssignedBy, Faces.FrameNumber, Faces.FrameTimeMs, Faces.TrackNumber,
               Persons.IsHidden)
        .outerjoin(Persons, Persons.Id == Faces.PersonId)
        .where(Faces.MediaFileId == media_file_id).order_by(Faces.FrameNumber, Faces.Id)
    ).all()
    return [EventFace(*r) for r in rows]
