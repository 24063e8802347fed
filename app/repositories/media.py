"""SQL for MediaFile / MediaItems registration. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import STATUS_DONE, STATUS_PENDING, MediaFile, MediaItems, MediaMeta
from app.pipeline.file_stamp import FileStamp
from app.pipeline.photo_meta import PhotoMeta
from app.repositories.ids import chunks


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


# --- the detection stage (its queue columns are handled by app/repositories/queue.py) ---

ITEMS = MediaItems.__table__  # Core table: executemany UPDATEs keyed by bind parameters


@dataclass(frozen=True)
class ClaimedItem:
    item_id: int
    media_file_id: int
    file_path: str
    recorded: FileStamp | None = None  # the file as the last detection read it


def _stamp(size: int | None, mtime_ns: int | None, content_hash: str | None) -> FileStamp | None:
    return FileStamp(size, mtime_ns, content_hash) if size is not None and mtime_ns is not None else None


def claimed_items(session: Session, item_ids: Sequence[int]) -> list[ClaimedItem]:
    """The media file of each of these items, in item id order."""
    if not item_ids:
        return []
    rows = session.execute(
        select(MediaItems.Id, MediaItems.MediaFileId, MediaFile.FilePath,
               MediaItems.FileSize, MediaItems.FileMtimeNs, MediaItems.ContentHash)
        .join(MediaFile, MediaFile.Id == MediaItems.MediaFileId)
        .where(MediaItems.Id.in_(item_ids))
        .order_by(MediaItems.Id)
    ).all()
    return [ClaimedItem(r[0], r[1], r[2], _stamp(r[3], r[4], r[5])) for r in rows]


def mark_done(session: Session, done: Sequence[tuple[int, int, FileStamp | None]], now: datetime) -> None:
    """(item id, face count, the file as detection read it): extraction finished."""
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
                FileSize=bindparam("size"),
                FileMtimeNs=bindparam("mtime"),
                ContentHash=bindparam("hash"),
                MissingSince=None,
            ),
            [{"item_id": i, "faces": n, "size": st.size if st else None, "mtime": st.mtime_ns if st else None,
              "hash": st.content_hash if st else None} for i, n, st in done],
        )


# --- the change check (app/services/file_changes.py) ---

@dataclass(frozen=True)
class Recorded:
    """A detected item's file and what detection recorded of it."""

    item_id: int
    file_path: str
    stamp: FileStamp | None
    missing: bool  # the last check found it gone


def _recorded_query():
    return (
        select(MediaItems.Id, MediaFile.FilePath, MediaItems.FileSize, MediaItems.FileMtimeNs,
               MediaItems.ContentHash, MediaItems.MissingSince)
        .join(MediaFile, MediaFile.Id == MediaItems.MediaFileId)
        .where(MediaItems.IsFacesExtracted.is_(True))
    )


def _recorded(rows) -> list[Recorded]:
    return [Recorded(r[0], r[1], _stamp(r[2], r[3], r[4]), r[5] is not None) for r in rows]


def recorded_after(session: Session, after_item_id: int, limit: int) -> list[Recorded]:
    """Detected items after this id, in id order (the worker's check, a slice per run)."""
    return _recorded(session.execute(
        _recorded_query().where(MediaItems.Id > after_item_id).order_by(MediaItems.Id).limit(limit)
    ).all())


def recorded_of_paths(session: Session, paths: Sequence[str]) -> list[Recorded]:
    """Detected items of these files (--ingest over files registered already)."""
    return _recorded(session.execute(_recorded_query().where(MediaFile.FilePath.in_(paths))).all()) if paths else []


def requeue(session: Session, item_ids: Sequence[int]) -> int:
    """Detected items whose file changed: pending again with every attempt back (their
    recorded stamp stays, for the re-detection to compare with). Rows done no longer (a
    worker or another check got there first) are left alone."""
    count = 0
    for chunk in chunks(item_ids):
        count += session.execute(
            update(MediaItems).where(MediaItems.Id.in_(chunk), MediaItems.IsFacesExtracted.is_(True))
            .values(IsFacesExtracted=False, Status=STATUS_PENDING, Attempts=0, LastError=None,
                    LockedBy=None, LockedUntil=None, MissingSince=None)
        ).rowcount or 0
    return count


def set_missing(session: Session, item_ids: Sequence[int], since: datetime | None) -> None:
    """Files found gone (`since` now) or there again (None)."""
    for chunk in chunks(item_ids):
        session.execute(update(MediaItems).where(MediaItems.Id.in_(chunk)).values(MissingSince=since))


def record_stats(session: Session, stamps: Sequence[tuple[int, FileStamp]], replace: bool = False) -> None:
    """Size and modification time of items detected before they were recorded (by an older
    worker, or another application's rows): what later checks compare with. `replace`:
    also over what is recorded (a file touched, its content the same)."""
    if stamps:
        unrecorded = [] if replace else [ITEMS.c.FileSize.is_(None)]
        session.execute(
            update(ITEMS).where(ITEMS.c.Id == bindparam("item_id"), *unrecorded)
            .values(FileSize=bindparam("size"), FileMtimeNs=bindparam("mtime")),
            [{"item_id": i, "size": st.size, "mtime": st.mtime_ns} for i, st in stamps],
        )


def store_meta(session: Session, metas: dict[int, PhotoMeta]) -> None:
    """media file id -> what its EXIF says; replaces the row a previous detection wrote."""
    ids = list(metas)
    for chunk in chunks(ids):
        session.execute(delete(MediaMeta).where(MediaMeta.MediaFileId.in_(chunk)))
    if not metas:
        return
    session.execute(insert(MediaMeta), [
        {"MediaFileId": i, "Width": m.width, "Height": m.height,
         "TakenAt": m.taken_at.isoformat() if m.taken_at else None,
         "CameraMake": m.camera_make, "CameraModel": m.camera_model,
         "Latitude": m.latitude, "Longitude": m.longitude, "Altitude": m.altitude,
         "Orientation": m.orientation, "DeviceId": m.device_id,
         "Problems": "; ".join(m.problems)[:2000] or None, "MediaType": m.media_type,
         "DurationMs": m.duration_ms, "Codec": m.codec, "FrameRate": m.frame_rate}
        for i, m in metas.items()
    ])
