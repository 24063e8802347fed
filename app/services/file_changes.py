"""Noticing a photo replaced or removed under the same name.

Detection records each file's size and modification time (app/pipeline/file_stamp.py).
`--ingest` over files registered already, and every detection run for a slice of the
detected items (CHANGE_CHECK_FILES, resuming where the last run stopped), stat the files
and compare:
- size or modification time differ, and the content hash too (read only when the size is
  the same; a `touch` keeps the item as it is, with its new time recorded): the item is
  queued for detection again; the
  re-detection compares the content hash and, when the content changed, replaces the
  photo's faces by the new ones (a user's decisions kept where a new face overlaps them:
  app/pipeline/reconcile.py) and publishes an event;
- the file is gone: MissingSince is set (counted by --status, which never stats the
  library itself); nothing is queued or charged (an unmounted disk must not cost the
  photos their attempts), and the mark goes when the file is back;
- nothing recorded (detected by an older worker or another application): the stat is
  recorded, for the next check to compare with.
A stat is ~65 us on a local disk, one round trip on a network share: the slice keeps it
bounded. Only files are read here, with no transaction open; the results are stored in
one short transaction.
"""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.types import utcnow
from app.errors import first_line
from app.pipeline.file_stamp import FileStamp, read_stamp, stat_stamp
from app.repositories import media as media_repo
from app.services import work_queue

log = logging.getLogger("app.detection")
CURSOR_FILE = ".change-check-cursor"  # under THUMBNAIL_SAVE_PATH, beside the sweep's


@dataclass
class Changes:
    checked: int = 0
    changed: list[int] = field(default_factory=list)  # item ids: queued again
    missing: list[int] = field(default_factory=list)  # gone since the last check
    back: list[int] = field(default_factory=list)  # found again
    first_stats: list[tuple[int, FileStamp]] = field(default_factory=list)  # nothing recorded yet
    touched: list[tuple[int, FileStamp]] = field(default_factory=list)  # new time, same content


def compare(rows: Iterable[media_repo.Recorded]) -> Changes:
    """Stat each file (following links: a changed link target is a changed photo)."""
    out = Changes()
    for r in rows:
        out.checked += 1
        try:
            st = os.stat(r.file_path)
            present = stat.S_ISREG(st.st_mode)
        except (FileNotFoundError, NotADirectoryError):
            present = False
        except OSError as exc:  # unreadable folder, a share gone stale: unknown, left as it is
            log.debug("change check: cannot stat item %d (%s): %s", r.item_id, r.file_path, exc)
            continue
        if not present:
            if not r.missing:
                out.missing.append(r.item_id)
            continue
        if r.missing:
            out.back.append(r.item_id)
        now = stat_stamp(st)
        if r.stamp is None:
            out.first_stats.append((r.item_id, now))
        elif not r.stamp.same_stat(now):
            if _same_content(r, now):
                out.touched.append((r.item_id, now))
            else:
                out.changed.append(r.item_id)
    return out


def _same_content(r: media_repo.Recorded, now: FileStamp) -> bool:
    """A file of the same size whose hash is the one recorded was only touched (a `touch`,
    a copy keeping the bytes): detecting it again would only churn its automatic faces.
    The hash reads ~128 KiB, and only for a file whose size did not change."""
    if r.stamp is None or r.stamp.content_hash is None or r.stamp.size != now.size:
        return False
    try:
        return read_stamp(r.file_path).content_hash == r.stamp.content_hash
    except OSError:
        return False


def store(session: Session, changes: Changes) -> int:
    """Record what the check found; returns how many items were queued again."""
    media_repo.set_missing(session, changes.missing, utcnow())
    media_repo.set_missing(session, changes.back, None)
    media_repo.record_stats(session, changes.first_stats)
    media_repo.record_stats(session, changes.touched, replace=True)
    return media_repo.requeue(session, changes.changed)


def check_some(sessions: sessionmaker[Session], settings: Settings) -> Changes:
    """The detection run's check: CHANGE_CHECK_FILES detected items after the last run's
    cursor (a file under THUMBNAIL_SAVE_PATH; from the first item again after the last).
    Housekeeping: a failure is one warning, never the reason a run fails."""
    limit = settings.change_check_files
    if limit <= 0:
        return Changes()
    cursor_file = Path(settings.thumbnail_path) / CURSOR_FILE
    try:
        after = int(cursor_file.read_text().strip() or 0)
    except (OSError, ValueError):
        after = 0
    try:
        with sessions() as session:
            rows = media_repo.recorded_after(session, after, limit)
        changes = compare(rows)
        work_queue.in_transaction(sessions, lambda s: store(s, changes), "recording changed files", log)
    except Exception as exc:  # noqa: BLE001 - the next run checks again
        log.warning("change check skipped: %s", first_line(exc))
        return Changes()
    try:
        cursor_file.parent.mkdir(parents=True, exist_ok=True)
        cursor_file.write_text(str(rows[-1].item_id) if len(rows) == limit else "0")
    except OSError as exc:
        log.warning("could not save the change check position: %s", exc)
    if changes.changed or changes.missing or changes.back:
        log.info("change check: %d files checked, %d changed (re-detection queued), %d missing, %d back",
                 changes.checked, len(changes.changed), len(changes.missing), len(changes.back))
    return changes
