"""SQL for MediaFile / MediaItems registration. Callers own the transaction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.db.models import MediaFile, MediaItems


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
