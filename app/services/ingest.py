"""--ingest DIR: register every image and video file under a folder that is not registered yet."""
from __future__ import annotations

import logging
import os
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker

from app.pipeline.video import VIDEO_EXTENSIONS
from app.repositories import media as media_repo
from app.services import file_changes

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
class Walk:
    """What the walk met besides plain files and folders (symbolic links)."""

    follow_links: bool = False
    dir_links: int = 0  # links to folders, not followed (follow_links off)
    file_links: int = 0  # links to regular files: walked like files
    broken_links: int = 0  # dangling, or to something neither a file nor a folder: skipped
    loops: int = 0  # folder links to a folder walked already (a loop, or a second way in): skipped
    unreadable: int = 0  # folders that could not be listed


@dataclass
class IngestResult:
    added: int = 0
    skipped: int = 0  # registered before
    ignored: int = 0  # not an image or video file by its extension
    too_long: int = 0  # path does not fit MediaFile.FilePath
    changed: int = 0  # registered, detected, and its file changed since: queued again
    walk: Walk = field(default_factory=Walk)


def iter_image_files(root: Path, walk: Walk | None = None) -> Iterator[Path]:
    """Files under `root`, recursively, in a stable order (a folder's files, then its
    sub-folders by name). A link to a regular file is walked as a file under the link's
    own path (the review page checks what it serves separately). A link to a folder is
    followed only with `walk.follow_links`, and after every real folder, so files are
    found under their real path first; a folder is entered once, by its (st_dev, st_ino),
    which ends any loop. Counts of links met go to `walk`."""
    walk = walk if walk is not None else Walk()
    seen: set[tuple[int, int]] = set()
    real: list[Path] = [root]  # a stack: popped in name order
    linked: deque[Path] = deque()  # folder links, entered once no real folder is left
    while real or linked:
        folder = real.pop() if real else linked.popleft()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                walk.loops += 1
                log.warning("ingest: not followed, that folder is walked already: %s", folder)
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            walk.unreadable += 1
            log.warning("ingest: cannot read folder %s: %s", folder, exc.strerror or exc)
            continue
        subfolders = []
        for entry in entries:
            kind = _kind(entry, walk)
            if kind == "file":
                yield Path(entry.path)
            elif kind == "folder":
                subfolders.append(Path(entry.path))
            elif kind == "folder link":
                linked.append(Path(entry.path))
        real.extend(reversed(subfolders))


def _kind(entry: os.DirEntry, walk: Walk) -> str | None:
    if not entry.is_symlink():
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        return "file" if entry.is_file(follow_symlinks=False) else None  # sockets, fifos: ignored
    try:
        target = os.stat(entry.path)  # follows the link
    except OSError:
        walk.broken_links += 1
        return None
    if stat.S_ISREG(target.st_mode):
        walk.file_links += 1
        return "file"
    if not stat.S_ISDIR(target.st_mode):
        walk.broken_links += 1  # a device, a fifo: never a photo
        return None
    if not walk.follow_links:
        walk.dir_links += 1
        return None
    return "folder link"


def ingest_folder(factory: sessionmaker[Session], root: Path, follow_links: bool = False) -> IngestResult:
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    result = IngestResult(walk=Walk(follow_links=follow_links))
    chunk: list[Path] = []
    for path in iter_image_files(root, result.walk):
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
    """New files registered; files registered and detected already compared with what
    detection recorded (app/services/file_changes.py): a changed one is detected again."""
    as_text = [str(p) for p in paths]
    with factory() as session:
        detected = media_repo.recorded_of_paths(session, as_text)
    changes = file_changes.compare(detected)  # no transaction open while the files are read
    with factory.begin() as session:
        known = media_repo.existing_paths(session, as_text)
        new = [
            media_repo.NewMedia(str(p), p.name, p.suffix.lower()[:10])
            for p in paths
            if str(p) not in known
        ]
        result.added += media_repo.add_media(session, new)
        result.changed += file_changes.store(session, changes)
    result.skipped += len(known)
    log.info("ingest: %d added, %d already registered so far (%d changed, re-detection queued)",
             result.added, result.skipped, result.changed)
