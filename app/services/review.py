"""What the review page reads beside the person-management services: files by id, the
unassigned faces with the persons nearest them, names for type-ahead.

Files are found by id only: a thumbnail is served only when its stored path lies under
THUMBNAIL_SAVE_PATH, a photo only when it is a MediaFile row's path (a video's face: the
frame it was found in, decoded from that file). No path that comes
with a request is ever opened.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.names import FACENETS, model_name
from app.pipeline.decode import DecodeError
from app.pipeline.linkage import group_sums
from app.pipeline.video import frame_at
from app.repositories import review as rrepo

SUGGESTIONS = 3


def thumbnail_file(sessions: sessionmaker[Session], settings: Settings, face_id: int) -> Path | None:
    """The face's thumbnail, when it exists and lies under THUMBNAIL_SAVE_PATH."""
    with sessions() as session:
        stored = rrepo.thumbnail_path(session, face_id)
    if not stored:
        return None
    path = Path(stored).resolve()
    root = settings.thumbnail_path.resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def photo_file(sessions: sessionmaker[Session], media_id: int) -> Path | None:
    """The photo a MediaFile row registers, when it is a file."""
    with sessions() as session:
        stored = rrepo.media_path(session, media_id)
    path = Path(stored) if stored else None
    return path if path is not None and path.is_file() else None


def face_picture(sessions: sessionmaker[Session], settings: Settings, face_id: int) -> Path | bytes | None:
    """What the viewer shows for a face: its photo's file, or for a face found in a video
    the frame it was found in, as a JPEG (the browser cannot show a video frame by itself)."""
    with sessions() as session:
        source = rrepo.face_source(session, face_id)
    if source is None:
        return None
    stored, frame_ms = source
    path = Path(stored)
    if not path.is_file():
        return None
    if frame_ms is None:
        return path
    try:
        rgb = frame_at(path, frame_ms, settings.max_image_pixels)
    except DecodeError:
        return None
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


def search_names(sessions: sessionmaker[Session], text: str, limit: int = 10) -> list[tuple[int, str]]:
    """Named persons whose name contains `text` (case-insensitive), names starting with
    it first; hidden persons left out."""
    text = " ".join((text or "").split())
    if not text:
        return []
    with sessions() as session:
        return rrepo.names_like(session, text, limit)


@dataclass(frozen=True)
class Suggestion:
    person_id: int
    name: str | None
    similarity: float  # average cosine similarity to the person's faces (deciding vectors)


@dataclass(frozen=True)
class UnassignedFace:
    face_id: int
    media_file_id: int
    file_path: str
    thumbnail: str | None
    usable: bool
    suggestions: list[Suggestion]


def unassigned(sessions: sessionmaker[Session], settings: Settings, limit: int, offset: int = 0
               ) -> tuple[int, list[UnassignedFace]]:
    """Faces without a person (usable ones first), a page of them, each with the persons
    whose faces it resembles most on average (the deciding vectors, as the worker
    compares them); also the total."""
    second = settings.embedder not in FACENETS
    model = model_name(settings.embedder)
    with sessions() as session:
        total = rrepo.count_unassigned(session)
        page = rrepo.unassigned_page(session, limit, offset, model, second)
        person_ids, vectors, names = rrepo.person_vectors(session, model, second)
    persons, _, sums, counts = group_sums(vectors, person_ids)
    means = sums / counts[:, None] if counts.size else sums
    out = []
    for row in page:
        suggestions: list[Suggestion] = []
        if row.vector is not None and counts.size:
            sims = means @ row.vector
            for i in np.argsort(-sims)[:SUGGESTIONS].tolist():
                suggestions.append(Suggestion(int(persons[i]), names.get(int(persons[i])), float(sims[i])))
        out.append(UnassignedFace(row.face_id, row.media_file_id, row.file_path, row.thumbnail, row.usable,
                                  suggestions))
    return total, out
