"""SQL for MediaFile / MediaItems registration. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import (
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_PROCESSING,
    MediaFile,
    MediaItems,
)


@dataclass(frozen=True)
class NewMedia:
    file_path: str
    file_name: str
    extension: str


def existing_paths(session: Session, paths: Sequence[str]) -> set[str]:
    """Which of these paths are registered already (one query per call)."""
    if not paths:
        return set()
    rows = session.execute(select(MediaFile.FilePath).where(MediaFile.FilePath.in_(paths)))
    return {r[0] for r in rows}


def add_media(session: Session, files: Iterable[NewMedia]) -> int:
    """Insert one MediaFile and one pending MediaItems row per file."""
    count = 0
    for f in files:
        media_id = session.execute(
            insert(MediaFile)
            .values(FilePath=f.file_path, FileName=f.file_name, Extensions=f.extension)
            .returning(MediaFile.Id)
        ).scalar_one()
        session.execute(insert(MediaItems).values(MediaFileId=media_id, IsFacesExtracted=False))
        count += 1
    return count


# --- the detection queue -------------------------------------------------------------

ITEMS = MediaItems.__table__  # Core table: executemany UPDATEs keyed by bind parameters

@dataclass(frozen=True)
class ClaimedItem:
    item_id: int
    media_file_id: int
    file_path: str
    attempt: int


def _claimable(now: datetime, max_attempts: int):
    return and_(
        MediaItems.IsFacesExtracted.is_(False),
        MediaItems.Attempts < max_attempts,
        or_(MediaItems.LockedUntil.is_(None), MediaItems.LockedUntil < now),
    )


def give_up_abandoned(session: Session, now: datetime, max_attempts: int) -> int:
    """Items whose worker died on their last allowed attempt become failed, not stuck."""
    result = session.execute(
        update(MediaItems)
        .where(
            MediaItems.IsFacesExtracted.is_(False),
            MediaItems.Status == STATUS_PROCESSING,
            MediaItems.LockedUntil < now,
            MediaItems.Attempts >= max_attempts,
        )
        .values(
            Status=STATUS_FAILED,
            LastError="worker stopped while processing it (crash or kill); attempts used up",
            LockedBy=None,
            LockedUntil=None,
        )
    )
    return result.rowcount or 0


def claim_batch(
    session: Session, worker: str, limit: int, now: datetime, lease_until: datetime, max_attempts: int
) -> list[ClaimedItem]:
    """Claim up to `limit` pending items in one statement.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` makes concurrent workers take disjoint
    rows; an item whose lease ran out (its worker died) is claimable again. Each claim
    counts as an attempt, so an image that kills the worker is not retried forever.
    """
    ids = (
        select(MediaItems.Id)
        .where(_claimable(now, max_attempts))
        .order_by(MediaItems.Id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = session.execute(
        update(MediaItems)
        .where(MediaItems.Id.in_(ids))
        .values(
            Status=STATUS_PROCESSING,
            LockedBy=worker,
            LockedUntil=lease_until,
            Attempts=MediaItems.Attempts + 1,
        )
        .returning(MediaItems.Id, MediaItems.MediaFileId, MediaItems.Attempts)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    paths = dict(
        session.execute(
            select(MediaFile.Id, MediaFile.FilePath).where(
                MediaFile.Id.in_({row.MediaFileId for row in claimed})
            )
        ).all()
    )
    return sorted(
        (ClaimedItem(r.Id, r.MediaFileId, paths[r.MediaFileId], r.Attempts) for r in claimed),
        key=lambda c: c.item_id,
    )


def held_by(session: Session, item_ids: Sequence[int], worker: str) -> set[int]:
    """Which of these items this worker still holds, locked until the caller commits (an
    item whose lease ran out may have been taken by another worker)."""
    if not item_ids:
        return set()
    rows = session.execute(
        select(MediaItems.Id)
        .where(MediaItems.Id.in_(item_ids), MediaItems.LockedBy == worker)
        .with_for_update()
    )
    return {r[0] for r in rows}


def mark_done(session: Session, done: Sequence[tuple[int, int]], now: datetime) -> None:
    """(item id, face count) pairs: extraction finished."""
    if done:
        session.execute(
            update(ITEMS)
            .where(ITEMS.c.Id == bindparam("item_id"))
            .values(
                IsFacesExtracted=True,
                FacesExtractedOn=now,
                Status=STATUS_DONE,
                LastError=None,
                LockedBy=None,
                LockedUntil=None,
                FaceCount=bindparam("faces"),
            ),
            [{"item_id": i, "faces": n} for i, n in done],
        )


def mark_failed(session: Session, item_id: int, worker: str, error: str, retry_at: datetime) -> bool:
    """Record the reason; the item is retried after `retry_at` while attempts remain."""
    result = session.execute(
        update(MediaItems)
        .where(MediaItems.Id == item_id, MediaItems.LockedBy == worker)
        .values(Status=STATUS_FAILED, LastError=error[:2000], LockedBy=None, LockedUntil=retry_at)
    )
    return bool(result.rowcount)


def release(session: Session, item_ids: Sequence[int], worker: str) -> None:
    """Hand back claimed items this worker did not start (clean stop): no attempt used."""
    if item_ids:
        session.execute(
            update(MediaItems)
            .where(MediaItems.Id.in_(item_ids), MediaItems.LockedBy == worker)
            .values(
                Status=STATUS_PENDING,
                LockedBy=None,
                LockedUntil=None,
                Attempts=MediaItems.Attempts - 1,
            )
        )
