"""Faults of the environment told from faults of the items, so a broken machine never uses
up the items' attempts (app/services/work_queue.py gives an item up after MAX_ATTEMPTS).

- A thumbnail folder that cannot be made or written is found before a run starts
  (`check_thumbnail_folder`), and any error writing a thumbnail file is the folder's
  fault, never the photo's (the file name and its bytes are ours): the run stops at once.
- A photo that cannot be read may be its own fault or the machine's. It is a *suspect*
  when its folder is missing (a library unmounted, moved or renamed) or the system said
  "permission denied", "input/output error", "not connected", "stale handle". One
  suspect alone is charged as usual (but for a missing folder, never charged: `uncharged`): a photo deleted from a folder that is still there is
  the photo's fault, and so is one unreadable file. STREAK files in a row failing the
  same way (STREAK_MISSING for missing folders), or every file of a run when it had
  fewer, are the machine's: the run stops.

Stopping is an EnvironmentFault (exit 2) naming the cause and what to do; the stage hands
its claimed rows back with their attempts as they were (work_queue.hand_back).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import EnvironmentFault
from app.pipeline.decode import DecodeError
from app.storage import thumbnails

# Files in a row (distinct files: a photo's faces count once) failing with one suspect
# cause before the run blames the machine. Large enough that a few deleted or unreadable
# photos are still charged to themselves, small enough that an unmounted library costs
# a few seconds, not a batch of 64 decodes.
STREAK = 5
# A file that is not there costs nothing to try, so for missing folders the watch looks
# much further before blaming the machine: a folder deleted on purpose in a library that
# is mounted ends its streak at the next photo read (any success clears it) and is charged
# to its own photos, as before, instead of stopping every run; an unmounted library fails
# this many in a row, or every file of a shorter run.
STREAK_MISSING = 200
MISSING = "missing folder"
# A photo whose folder is gone is never charged, streak or not (an unmounted disk among
# folders that are there, an album deleted on purpose): it waits at least this long, then
# is tried again (a missing file costs nothing to try), with the folder named in its reason.
MISSING_RETRY_MIN_SECONDS = 60
# What the system says when a disk, a share or its permissions fail, not one file.
UNREADABLE = {errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN,
              errno.ENODEV, errno.ENXIO, errno.ETIMEDOUT}
FULL = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class Suspicion:
    """Why a failure may be the environment's: `kind` is what failures have in common
    (MISSING, or the error's errno name), `place` the folder concerned."""

    kind: str
    place: str
    reason: str = ""  # the system's words ("Read-only file system")
    certain: bool = False  # a thumbnail file could not be written: the machine, for sure


def _name(code: int | None) -> str:
    return errno.errorcode.get(code or 0, "OSError")


def thumbnail_suspicion(root: Path, exc: OSError) -> Suspicion:
    """Any error writing into the thumbnail folder: the folder's fault."""
    reason = exc.strerror or str(exc)
    if exc.errno not in FULL | READ_ONLY and exc.filename:
        reason = f"{reason}: {exc.filename}"
    return Suspicion(_name(exc.errno), str(root), reason, certain=True)


def _top_missing(folder: Path) -> Path:
    """The highest missing folder on the way to `folder` (the library's root when it is
    unmounted, the renamed folder when it was renamed)."""
    while folder.parent != folder and not folder.parent.exists():
        folder = folder.parent
    return folder


def photo_suspicion(path: Path, exc: BaseException) -> Suspicion | None:
    """The suspicion a failure to read a photo (or video) raises, or None when it is the
    file's own (bad data, a file missing from a folder that is there, a broken link)."""
    if not isinstance(exc, DecodeError) or exc.permanent:
        return None
    # decode.py raises its DecodeError while handling the OSError that says why
    cause = exc.__context__
    if isinstance(cause, OSError) and cause.errno in UNREADABLE:
        return Suspicion(_name(cause.errno), str(path.parent), cause.strerror or str(cause))
    if not isinstance(cause, FileNotFoundError) or path.is_symlink() or path.parent.is_dir():
        return None
    return Suspicion(MISSING, str(_top_missing(path.parent)))


def uncharged(suspicion: Suspicion | None) -> bool:
    """A failure no attempt is charged for: the photo's folder is missing."""
    return suspicion is not None and suspicion.kind == MISSING and not suspicion.certain


def cause(suspicions: list[Suspicion]) -> str:
    """One line naming what the suspicions have in common."""
    first = suspicions[0]
    if first.certain:
        state = "is full" if _is(first, FULL) else "is not writable" if _is(first, READ_ONLY) else "cannot be written"
        return f"thumbnail folder {first.place} {state} ({first.reason})"
    places = sorted({s.place for s in suspicions})
    where = f"folder {places[0]}" if len(places) == 1 else f"{len(places)} folders under {os.path.commonpath(places)}"
    if first.kind == MISSING:
        return f"photo {where} {'is' if len(places) == 1 else 'are'} missing (unmounted, moved or renamed?)"
    return f"photos in {where} cannot be read ({first.reason})"


def _is(s: Suspicion, codes: set[int]) -> bool:
    return s.kind in {_name(c) for c in codes}


def fault(suspicions: list[Suspicion], what: str) -> EnvironmentFault:
    return EnvironmentFault(f"{cause(suspicions)}: fix it and run again; no {what} was charged")


def check_thumbnail_folder(root: Path) -> None:
    """Before a detection run: EnvironmentFault when the folder cannot be made or written."""
    try:
        thumbnails.probe(root)
    except OSError as exc:
        raise fault([thumbnail_suspicion(root, exc)], "photo") from None


class Watch:
    """Follows a run's outcomes in order and raises EnvironmentFault when they prove the
    machine at fault: a certain suspicion, STREAK (STREAK_MISSING) files in a row with one suspect kind,
    or (`end`) a run whose every file failed that way. While `holding`, the stage keeps
    the rows of the current streak unstored, so none of them is charged if it ends in a
    fault."""

    def __init__(self, what: str):
        self.what = what  # "photo", "face": what was not charged
        self.streak: list[Suspicion] = []
        self._files: set[str] = set()
        self._only_suspects = True  # every outcome of the run so far is in the streak

    @property
    def holding(self) -> bool:
        return bool(self.streak)

    def see(self, file: str, suspicion: Suspicion | None) -> None:
        """One item's outcome: its file, and its suspicion (None: done, or failed for a
        reason of its own)."""
        if suspicion is not None and suspicion.certain:
            raise fault([suspicion], self.what)
        if suspicion is None or (self.streak and self.streak[0].kind != suspicion.kind):
            self.streak, self._files = [], set()
            self._only_suspects = False
        if suspicion is None:
            return
        if file not in self._files:
            self._files.add(file)
            self.streak.append(suspicion)
        if len(self.streak) >= (STREAK_MISSING if self.streak[0].kind == MISSING else STREAK):
            raise fault(self.streak, self.what)

    def end(self) -> None:
        """Nothing more to claim: a run of fewer than STREAK files that all failed the same
        suspect way is the machine's fault too."""
        if self.streak and self._only_suspects:
            raise fault(self.streak, self.what)
