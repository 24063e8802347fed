"""--ingest DIR: register every image and video file under a folder that is not registered yet."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker

from app.pipeline.video import VIDEO_EXTENSIONS
from app.repositories import media as media_repo

log = logging.getLogger(__name__)

# What the decoder (Pillow) reads. Anything else under the folder is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
)
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS  # videos: app/pipeline/video.py
MAX_PATH = 500  # MediaFile.FilePath
MAX_NAME = 255  # MediaFile.FileName
CHUNK = 500  # files checked and inserted per transaction


@dataclass
class IngestResult:
    added: int = 0
    skipped: int = 0  # registered before
    ignored: int = 0  # not an image or video file by its extension
    too_long: int = 0  # path does not fit MediaFile.FilePath


def iter_image_files(root: Path) -> Iterator[Path]:
    """Image files under `root`, recursively, in a stable order; symlinked dirs not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def ingest_folder(factory: sessionmaker[Session], root: Path) -> IngestResult:
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    result = IngestResult()
    chunk: list[Path] = []
    for path in iter_image_files(root):
        if path.suffix.lower() not in MEDIA_EXTENSIONS:
            result.ignored += 1
            continue
        if len(str(path)) > MAX_PATH or len(path.name) > MAX_NAME:
            log.warning("skipped, path longer than %d characters: %s", MAX_PATH, path)
            result.too_long += 1
            continue
        chunk.append(path)
        if len(chunk) >= CHUNK:
            _register(factory, chunk, result)
            chunk = []
    if chunk:
        _register(factory, chunk, result)
    return result


def register_files(factory: sessionmaker[Session], paths: list[Path]) -> IngestResult:
    """Register these files (absolute paths), skipping those already registered."""
    result = IngestResult()
    for start in range(0, len(paths), CHUNK):
        _register(factory, [p.resolve() for p in paths[start:start + CHUNK]], result)
    return result


def _register(factory: sessionmaker[Session], paths: list[Path], result: IngestResult) -> None:
    as_text = [str(p) for p in paths]
    with factory.begin() as session:
        known = media_repo.existing_paths(session, as_text)
        new = [
            media_repo.NewMedia(str(p), p.name, p.suffix.lower()[:10])
            for p in paths
            if str(p) not in known
        ]
        result.added += media_repo.add_media(session, new)
    result.skipped += len(known)
    log.info("ingest: %d added, %d already registered so far", result.added, result.skipped)
