"""SQL for MediaFile / MediaItems registration. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import STATUS_DONE, MediaFile, MediaItems, MediaMeta
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


def claimed_items(session: Session, item_ids: Sequence[int]) -> list[ClaimedItem]:
    """The media file of each of these items, in item id order."""
    if not item_ids:
        return []
    rows = session.execute(
        select(MediaItems.Id, MediaItems.MediaFileId, MediaFile.FilePath)
        .join(MediaFile, MediaFile.Id == MediaItems.MediaFileId)
        .where(MediaItems.Id.in_(item_ids))
        .order_by(MediaItems.Id)
    ).all()
    return [ClaimedItem(r[0], r[1], r[2]) for r in rows]


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
