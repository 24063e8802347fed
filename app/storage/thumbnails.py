"""Face thumbnail files: written before the database transaction that records them,
deleted after the one that forgets them, and swept when a crash left some behind.

A thumbnail is `<root>/<MediaFileId // 1000>/<MediaFileId>_<token>.jpg`: named from the
media id and a random token, never from the user's file names, and known before the face
row exists, so no file is written while a transaction is open. A crash between writing
and committing leaves a file no face points to; `sweep` removes those once they are
older than a grace period (a file that young may belong to a store still in progress).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger("app.detection")
_NAME = re.compile(r"^(\d+)_[0-9A-Za-z]+\.jpg$")
_FOLDER = re.compile(r"^\d{6,}$")
CURSOR_FILE = ".sweep-cursor"


def folder_of(root: Path, media_file_id: int) -> Path:
    # A thousand media files per folder keeps directories small on any filesystem.
    return root / f"{media_file_id // 1000:06d}"


def new_path(root: Path, media_file_id: int) -> Path:
    return folder_of(root, media_file_id) / f"{media_file_id}_{secrets.token_hex(8)}.jpg"


_made: set[Path] = set()  # folders this process has made or found (one mkdir each, not one per file)


def write(root: Path, media_file_id: int, jpeg: bytes) -> Path:
    """Write a new thumbnail file. Straight under its final name: the name is new (a random
    token) and no face row points to it before the transaction that stores the face
    commits, after this returns, so a crash halfway leaves only a file that the sweep
    removes, never half a JPEG that a face points to (a temporary file and a rename
    would cost one more metadata write per face for nothing)."""
    path = new_path(root, media_file_id)
    if path.parent not in _made:
        path.parent.mkdir(parents=True, exist_ok=True)
        _made.add(path.parent)
    try:
        _write_new(path, jpeg)
    except FileNotFoundError:  # the folder was removed since: made again
        _made.discard(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(path, jpeg)
    return path


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:  # "x": never over another file
        try:
            f.write(data)
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)  # a full disk: no partial file left behind
            raise


def probe(root: Path) -> None:
    """Make the thumbnail folder if need be, then write and delete a small file in it, so
    a folder that cannot be written (read-only, full, not a folder) is found once before
    a run rather than on every photo. Raises the OSError that says why."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".probe-{secrets.token_hex(8)}"  # a new name: never over another file
    _write_new(path, b"face-grouping worker: checking this folder can be written\n")
    path.unlink()


def delete(paths: Iterable[str | Path | None]) -> int:
    gone = 0
    for p in paths:
        if p:
            try:
                Path(p).unlink()
                gone += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not delete thumbnail %s: %s", p, exc)
    return gone


@dataclass
class SweepReport:
    folders: int = 0
    files: int = 0
    removed: int = 0


def sweep(root: Path, referenced: Callable[[int, int], set[str]], grace_seconds: float,
          max_files: int) -> SweepReport:
    """Remove thumbnails (and temporary files) no face row points to, older than the grace
    period, looking at about `max_files` files per call: folders are visited in order from
    where the last call stopped (a cursor file under `root`), so the cost of one run stays
    bounded and every folder is visited in turn.

    `referenced(first_media_id, last_media_id)` returns the ThumbnailPath of every face of
    those media files.
    """
    report = SweepReport()
    if not root.is_dir():
        return report
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and _FOLDER.match(p.name))
    if not folders:
        return report
    cursor_file = root / CURSOR_FILE
    try:
        cursor = cursor_file.read_text().strip()
    except OSError:
        cursor = ""
    start = next((i for i, name in enumerate(folders) if name > cursor), 0)
    old_before = time.time() - grace_seconds
    last = cursor
    for name in folders[start:] + folders[:start]:
        if report.folders and report.files >= max_files:
            break
        folder = root / name
        first_id = int(name) * 1000
        # By file name: names are unique, and a THUMBNAIL_SAVE_PATH written relative once and
        # absolute later must not make referenced files look orphaned.
        keep = {Path(p).name for p in referenced(first_id, first_id + 999)}
        for entry in os.scandir(folder):
            report.files += 1
            if not entry.is_file() or entry.name in keep:
                continue
            if not (_NAME.match(entry.name) or entry.name.endswith(".tmp")):
                continue  # not ours
            try:
                if entry.stat().st_mtime >= old_before:
                    continue
                os.unlink(entry.path)
                report.removed += 1
            except FileNotFoundError:
                pass
        report.folders += 1
        last = name
    try:
        cursor_file.write_text(last if report.folders < len(folders) else "")
    except OSError as exc:
        log.warning("could not save the thumbnail sweep position: %s", exc)
    return report
