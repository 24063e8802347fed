"""SQL of the work queues: one discipline for every stage (detection on MediaItems,
embedding on Faces). Callers own the transaction.

A row is *open* while its stage still has to do it. A worker claims open rows with one
`UPDATE ... WHERE Id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, writing its id and a lease
(`LockedBy`, `LockedUntil`), so any number of workers share the queue. Attempts:
- a batch claim charges nothing: if the worker dies, nobody knows which row killed it;
- a row whose lease ran out while held (its worker died) is a *suspect*: it is claimed
  alone, and that claim is charged, so a photo that kills the worker uses up its own
  attempts while the rest of its batch goes through;
- a failure the worker catches is charged when it is recorded (a permanent one, such as
  "not an image", uses up every attempt at once);
- a row is claimable while Attempts < MAX_ATTEMPTS; a failed row waits until
  `LockedUntil` (the retry time) with `LockedBy` empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import ColumnElement, and_, bindparam, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import Column, Table

from app.db.models import (
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_PROCESSING,
    Faces,
    MediaItems,
)


@dataclass(frozen=True)
class Queue:
    name: str  # for logs: "detection", "embedding"
    table: Table
    attempts: Column
    locked_by: Column
    locked_until: Column
    error: Column
    status: Column | None  # MediaItems.Status; Faces have none
    open: ColumnElement[bool]  # the stage still has to do this row
    order: tuple[Column, ...]  # claim order (embedding: a photo's faces together)

    @property
    def id(self) -> Column:
        return self.table.c.Id


_items, _faces = MediaItems.__table__, Faces.__table__

DETECTION = Queue(
    "detection", _items, _items.c.Attempts, _items.c.LockedBy, _items.c.LockedUntil, _items.c.LastError,
    _items.c.Status, _items.c.IsFacesExtracted.is_(False), (_items.c.Id,),
)
EMBEDDING = Queue(
    "embedding", _faces, _faces.c.EmbedAttempts, _faces.c.EmbedLockedBy, _faces.c.EmbedLockedUntil,
    _faces.c.EmbedError, None, and_(_faces.c.Embedding.is_(None), _faces.c.IsUsable.is_(True)),
    (_faces.c.MediaFileId, _faces.c.Id),
)
# With a second (decision) model, a face is open until it has both vectors; faces of a
# database embedded before the second model was chosen are filled in the same way.
EMBEDDING_BOTH = Queue(
    "embedding", _faces, _faces.c.EmbedAttempts, _faces.c.EmbedLockedBy, _faces.c.EmbedLockedUntil,
    _faces.c.EmbedError, None,
    and_(or_(_faces.c.Embedding.is_(None), _faces.c.Embedding2.is_(None)), _faces.c.IsUsable.is_(True)),
    (_faces.c.MediaFileId, _faces.c.Id),
)


def embedding_queue(second: bool) -> Queue:
    return EMBEDDING_BOTH if second else EMBEDDING


@dataclass(frozen=True)
class Claim:
    id: int
    attempts: int  # attempts used, this claim included when it was charged
    charged: bool  # claimed alone as a suspect: this claim counted as an attempt


def _abandoned(q: Queue, now: datetime):
    return and_(q.locked_by.is_not(None), q.locked_until < now)


def _set(q: Queue, status: str, values: dict) -> dict:
    """Column values by name, plus the status when the queue has one."""
    return {**values, q.status.name: status} if q.status is not None else values


def give_up_abandoned(session: Session, q: Queue, now: datetime, max_attempts: int) -> list[tuple[int, str]]:
    """Rows whose worker died while holding them on their last allowed attempt become
    failed for good. Returns (id, reason) for each."""
    rows = session.execute(
        select(q.id, q.attempts).where(q.open, _abandoned(q, now), q.attempts >= max_attempts)
        .with_for_update(skip_locked=True)
    ).all()
    out = []
    for row_id, attempts in rows:
        reason = (
            f"the worker stopped (crash, kill or out of memory) on each of the {attempts} times it "
            "processed this alone: this file is the likely cause; given up"
        )
        session.execute(
            update(q.table).where(q.id == row_id).values(
                _set(q, STATUS_FAILED, {q.error.name: reason, q.locked_by.name: None, q.locked_until.name: None})
            )
        )
        out.append((row_id, reason))
    return out


def _suspect(q: Queue, now: datetime, max_attempts: int):
    """A row still open, with attempts left, whose worker died while holding it."""
    return and_(q.open, q.attempts < max_attempts, _abandoned(q, now))


def _claim(session: Session, q: Queue, condition, limit: int, values: dict) -> list:
    ids = (
        select(q.id).where(condition).order_by(*q.order).limit(limit)
        .with_for_update(skip_locked=True).scalar_subquery()
    )
    return session.execute(
        update(q.table).where(q.id.in_(ids)).values(values).returning(q.id, q.attempts)
    ).all()


def claim(session: Session, q: Queue, worker: str, limit: int, now: datetime, lease_until: datetime,
          max_attempts: int, suspects: bool = True) -> list[Claim]:
    """One suspect alone (charged), or else up to `limit` fresh rows (not charged). With
    `suspects` False, only fresh rows: a worker that still has other rows in flight must
    not take a suspect, which is to be tried with nothing else beside it."""
    eligible = and_(q.open, q.attempts < max_attempts)
    held = {q.locked_by.name: worker, q.locked_until.name: lease_until}
    suspect = _claim(session, q, _suspect(q, now, max_attempts), 1,
                     _set(q, STATUS_PROCESSING, {**held, q.attempts.name: q.attempts + 1})) if suspects else []
    if suspect:
        return [Claim(suspect[0][0], suspect[0][1], True)]
    free = and_(eligible, q.locked_by.is_(None), or_(q.locked_until.is_(None), q.locked_until < now))
    rows = _claim(session, q, free, limit, _set(q, STATUS_PROCESSING, held))
    return sorted((Claim(r[0], r[1], False) for r in rows), key=lambda c: c.id)


def suspect_waiting(session: Session, q: Queue, now: datetime, max_attempts: int) -> bool:
    """Whether a row whose worker died while holding it can be claimed (as a suspect)."""
    return session.scalar(select(q.id).where(_suspect(q, now, max_attempts)).limit(1)) is not None


def held_by(session: Session, q: Queue, ids: Sequence[int], worker: str) -> set[int]:
    """Which of these rows this worker still holds, locked until the caller commits (a row
    whose lease ran out may have been taken by another worker meanwhile)."""
    if not ids:
        return set()
    rows = session.execute(select(q.id).where(q.id.in_(ids), q.locked_by == worker).with_for_update())
    return {r[0] for r in rows}


def extend(session: Session, q: Queue, ids: Sequence[int], worker: str, lease_until: datetime) -> int:
    """Renew the lease of rows this worker still holds (a long item must not be taken
    by another worker while this one is alive)."""
    if not ids:
        return 0
    result = session.execute(
        update(q.table).where(q.id.in_(ids), q.locked_by == worker).values({q.locked_until.name: lease_until})
    )
    return result.rowcount or 0


@dataclass(frozen=True)
class Failed:
    id: int
    error: str
    attempts: int  # attempts used after this failure
    retry_at: datetime | None  # None: failed for good


def mark_failed(session: Session, q: Queue, failures: Sequence[Failed], worker: str) -> None:
    """Record each failure's reason and attempt count; the row is claimable again at
    `retry_at` while attempts remain."""
    if not failures:
        return
    values = _set(q, STATUS_FAILED, {q.error.name: bindparam("b_error"), q.attempts.name: bindparam("b_attempts"),
                                     q.locked_by.name: None, q.locked_until.name: bindparam("b_retry")})
    session.execute(
        update(q.table).where(q.id == bindparam("b_id"), q.locked_by == literal(worker)).values(values),
        [{"b_id": f.id, "b_error": f.error[:2000], "b_attempts": f.attempts, "b_retry": f.retry_at}
         for f in failures],
    )


def release(session: Session, q: Queue, claims: Sequence[Claim], worker: str) -> None:
    """Hand back claimed rows this worker did not start (clean stop): no attempt used."""
    if not claims:
        return
    values = _set(q, STATUS_PENDING, {q.locked_by.name: None, q.locked_until.name: None,
                                      q.attempts.name: bindparam("b_attempts")})
    session.execute(
        update(q.table).where(q.id == bindparam("b_id"), q.locked_by == literal(worker)).values(values),
        [{"b_id": c.id, "b_attempts": c.attempts - (1 if c.charged else 0)} for c in claims],
    )


def release_own(session: Session, q: Queue, worker: str) -> int:
    """Rows this very process still holds from a batch it could not finish (the database
    connection was lost while storing): back to the queue at once, no attempt used."""
    values = _set(q, STATUS_PENDING, {q.locked_by.name: None, q.locked_until.name: None})
    result = session.execute(update(q.table).where(q.open, q.locked_by == worker).values(values))
    return result.rowcount or 0


def expire_leases(session: Session, q: Queue, now: datetime) -> int:
    """Every lease ends now. Only for a database one worker can use at a time (SQLite,
    under its lock file): any row held is held by a worker that died."""
    result = session.execute(
        update(q.table).where(q.open, q.locked_by.is_not(None), q.locked_until >= now)
        .values({q.locked_until.name: now})
    )
    return result.rowcount or 0


def count_open(session: Session, q: Queue, max_attempts: int) -> int:
    """Rows the stage still has to do and may still try."""
    return session.scalar(
        select(func.count()).select_from(q.table).where(q.open, q.attempts < max_attempts)
    ) or 0


def retry_given_up(session: Session, q: Queue, max_attempts: int, since: datetime | None = None) -> int:
    """Rows given up (attempts used up, not held) back to the queue with no attempt used;
    with `since`, only those last changed (their last attempt) at or after it. The last
    reason is kept until the next try replaces it (or success clears it)."""
    where = [q.open, q.attempts >= max_attempts, q.locked_by.is_(None)]
    if since is not None:
        where.append(q.table.c.ModifiedAt >= since)
    values = _set(q, STATUS_PENDING, {q.attempts.name: 0, q.locked_until.name: None})
    return session.execute(update(q.table).where(*where).values(values)).rowcount or 0
