"""Counting queries for `--status`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from app.db.models import (
    STATUS_FAILED,
    Faces,
    MediaFile,
    MediaItems,
    Persons,
)


@dataclass(frozen=True)
class Counts:
    media_total: int
    media_done: int
    media_pending: int
    media_in_progress: int
    media_failed_retrying: int
    media_failed_final: int
    media_missing: int  # detected, and the change check last found the file gone
    faces_total: int
    faces_embedded: int
    faces_unusable: int
    faces_embed_failed: int  # given up after MAX_ATTEMPTS
    faces_embed_retrying: int  # failed, will be tried again
    faces_assigned: int
    persons_total: int
    persons_named: int

    @property
    def faces_without_embedding(self) -> int:
        return self.faces_total - self.faces_embedded

    @property
    def faces_unassigned(self) -> int:
        return self.faces_total - self.faces_assigned


def _count(expr):
    return func.coalesce(func.sum(case((expr, 1), else_=0)), 0)


def counts(session: Session, now: datetime, max_attempts: int) -> Counts:
    open_ = MediaItems.IsFacesExtracted.is_(False)
    failed = and_(open_, MediaItems.Status == STATUS_FAILED)
    held = and_(open_, MediaItems.Status != STATUS_FAILED, MediaItems.LockedUntil > now)
    m = session.execute(
        select(
            func.count(),
            _count(MediaItems.IsFacesExtracted.is_(True)),
            _count(and_(open_, MediaItems.Status != STATUS_FAILED)),
            _count(held),
            _count(and_(failed, MediaItems.Attempts < max_attempts)),
            _count(and_(failed, MediaItems.Attempts >= max_attempts)),
            _count(MediaItems.MissingSince.is_not(None)),
        ).select_from(MediaItems)
    ).one()
    not_embedded = and_(Faces.Embedding.is_(None), Faces.IsUsable.is_(True))
    f = session.execute(
        select(
            func.count(),
            _count(Faces.Embedding.is_not(None)),
            _count(Faces.IsUsable.is_(False)),
            _count(and_(not_embedded, Faces.EmbedAttempts >= max_attempts)),
            _count(and_(not_embedded, Faces.EmbedAttempts < max_attempts, Faces.EmbedError.is_not(None))),
            _count(Faces.PersonId.is_not(None)),
        ).select_from(Faces)
    ).one()
    p = session.execute(
        select(func.count(), _count(Persons.Name.is_not(None))).select_from(Persons)
    ).one()
    return Counts(
        media_total=m[0],
        media_done=m[1],
        media_pending=m[2] - m[3],
        media_in_progress=m[3],
        media_failed_retrying=m[4],
        media_failed_final=m[5],
        media_missing=m[6],
        faces_total=f[0],
        faces_embedded=f[1],
        faces_unusable=f[2],
        faces_embed_failed=f[3],
        faces_embed_retrying=f[4],
        faces_assigned=f[5],
        persons_total=p[0],
        persons_named=p[1],
    )


@dataclass(frozen=True)
class Failure:
    kind: str  # "media" or "face"
    row_id: int
    file_path: str
    attempts: int
    reason: str
    final: bool  # attempts used up


def recent_failures(session: Session, max_attempts: int, limit: int = 10) -> list[Failure]:
    """The latest failed media items and faces, newest first, with their reasons."""
    media = session.execute(
        select(MediaItems.Id, MediaFile.FilePath, MediaItems.Attempts, MediaItems.LastError)
        .join(MediaFile, MediaFile.Id == MediaItems.MediaFileId)
        .where(MediaItems.IsFacesExtracted.is_(False), MediaItems.Status == STATUS_FAILED)
        .order_by(MediaItems.ModifiedAt.desc(), MediaItems.Id.desc()).limit(limit)
    ).all()
    faces = session.execute(
        select(Faces.Id, MediaFile.FilePath, Faces.EmbedAttempts, Faces.EmbedError)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .where(Faces.Embedding.is_(None), Faces.IsUsable.is_(True), Faces.EmbedError.is_not(None))
        .order_by(Faces.ModifiedAt.desc(), Faces.Id.desc()).limit(limit)
    ).all()
    return [Failure("media", r[0], r[1], r[2], r[3] or "", r[2] >= max_attempts) for r in media] + [
        Failure("face", r[0], r[1], r[2], r[3] or "", r[2] >= max_attempts) for r in faces]
