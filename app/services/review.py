"""What the review page reads beside the person-management services: files by id, the
unassigned faces with the persons nearest them, names for type-ahead.

Files are found by id only: a thumbnail is served only when its stored path lies under
THUMBNAIL_SAVE_PATH, a photo only when it is a MediaFile row's path (a video's face: the
frame it was found in, decoded from that file). No path that comes
with a request is ever opened. A media file is served only when the worker has decoded it
(its detection is done) and, at serving time, what its path leads to (links followed) is a
regular file whose first bytes are an image's or a video's, the media type taken from those
bytes: a link in the library to /etc/passwd, a device or a fifo is never served.
"""
from __future__ import annotations

import io
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.names import FACENETS, model_name
from app.pipeline.decode import DecodeError
from app.pipeline.file_stamp import content_hash
from app.pipeline.linkage import group_sums
from app.pipeline.video import container_of, frame_at
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


# What a served file's first bytes must be: (offset, magic, media type), first match wins.
# The kinds the worker decodes (app/services/ingest.py IMAGE_EXTENSIONS, app/pipeline/video.py).
SNIFF_BYTES = 64
IMAGE_MAGIC = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)
PNM_TYPES = {b"1": "image/x-portable-bitmap", b"4": "image/x-portable-bitmap", b"2": "image/x-portable-graymap",
             b"5": "image/x-portable-graymap", b"3": "image/x-portable-pixmap", b"6": "image/x-portable-pixmap"}


def media_type_of(head: bytes) -> str | None:
    """The media type a file's first bytes say it is, for the images and videos the worker
    reads; None for anything else (text, an archive, an empty file)."""
    for offset, magic, kind in IMAGE_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:1] == b"P" and head[1:2] in PNM_TYPES and head[2:3].isspace():
        return PNM_TYPES[head[1:2]]
    container = container_of(head[:12])  # the worker's own test of a video's bytes
    if container == "MP4/QuickTime":
        return "video/mp4" if head[4:8] == b"ftyp" and head[8:12] != b"qt  " else "video/quicktime"
    if container == "Matroska/WebM":
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if container == "AVI":
        return "video/x-msvideo"
    return None


@dataclass(frozen=True)
class MediaBody:
    """A media file opened and checked at serving time; whoever sends it closes `file`."""
    file: BinaryIO
    size: int
    media_type: str

    @property
    def is_video(self) -> bool:
        return self.media_type.startswith("video/")


def open_media(stored: str, recorded_hash: str | None = None) -> MediaBody | None:
    """The file `stored` leads to, open, when it is a regular file whose first bytes are
    an image's or a video's and, when detection recorded its content hash, whose content
    is still what the worker decoded; None otherwise (missing, a directory, a device, a
    fifo, text, a file changed since: shown again once detected again). The checks run on
    the opened file, so a link changed after them cannot swap it."""
    try:
        # O_NONBLOCK: opening a fifo must not hang the page (no effect on a regular file)
        fd = os.open(stored, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError):  # ValueError: a NUL in the stored path
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    file = os.fdopen(fd, "rb")
    try:
        kind = media_type_of(file.read(SNIFF_BYTES))
        if kind is not None and (recorded_hash is None or content_hash(file, info.st_size) == recorded_hash):
            file.seek(0)
            return MediaBody(file, info.st_size, kind)
    except OSError:
        pass
    file.close()
    return None


def photo_file(sessions: sessionmaker[Session], media_id: int) -> MediaBody | None:
    """The photo or video a MediaFile row registers, when the worker has decoded it and it
    is still an image or a video (open_media)."""
    with sessions() as session:
        found = rrepo.decoded_media_path(session, media_id)
    return open_media(*found) if found else None


def face_picture(sessions: sessionmaker[Session], settings: Settings, face_id: int) -> MediaBody | bytes | None:
    """What the viewer shows for a face: its photo's file, or for a face found in a video
    the frame it was found in, as a JPEG (the browser cannot show a video frame by itself)."""
    with sessions() as session:
        source = rrepo.face_source(session, face_id)
    if source is None:
        return None
    stored, recorded_hash, frame_ms = source
    body = open_media(stored, recorded_hash)
    if body is None or frame_ms is None:
        return body
    body.file.close()
    if not body.is_video:
        return None
    try:
        rgb = frame_at(Path(stored), frame_ms, settings.max_image_pixels)
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


def unassigned(sessions: sessionmaker[Session], settings: Settings, limit: int, page: int = 1
               ) -> tuple[int, int, list[UnassignedFace]]:
    """Faces without a person (usable ones first), page `page` of them (the last one when
    fewer pages are left), each with the persons whose faces it resembles most on average
    (the deciding vectors, as the worker compares them): (total, page number, faces)."""
    second = settings.embedder not in FACENETS
    model = model_name(settings.embedder)
    with sessions() as session:
        total = rrepo.count_unassigned(session)
        page = min(max(page, 1), max(1, math.ceil(total / limit)))
        rows = rrepo.unassigned_page(session, limit, (page - 1) * limit, model, second)
        person_ids, vectors, names = rrepo.person_vectors(session, model, second)
    persons, _, sums, counts = group_sums(vectors, person_ids)
    means = sums / counts[:, None] if counts.size else sums
    out = []
    for row in rows:
        suggestions: list[Suggestion] = []
        if row.vector is not None and counts.size:
            sims = means @ row.vector
            for i in np.argsort(-sims)[:SUGGESTIONS].tolist():
                suggestions.append(Suggestion(int(persons[i]), names.get(int(persons[i])), float(sims[i])))
        out.append(UnassignedFace(row.face_id, row.media_file_id, row.file_path, row.thumbnail, row.usable,
                                  suggestions))
    return total, page, out
