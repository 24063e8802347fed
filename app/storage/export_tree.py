"""An export folder kept in step with what it should hold, touching only what changed.

The folder's manifest (MANIFEST) records every file this tool wrote there with a key
that names its content. A sync is given the files wanted now, each with its key:
- same path, same key, file present: left alone (a sync tool sees nothing);
- a wanted file whose key an old file has (a face chip whose face moved person): the old
  file is moved (rename), not written again;
- anything else is written to a temporary file beside it and renamed over it (atomic);
- files of the manifest not wanted now are deleted, then folders left empty.
Only files the manifest names are ever deleted, so a folder a user points us at by
mistake loses nothing: a non-empty folder without a manifest is refused. Before any
change the manifest is rewritten to name every path about to be written (with an empty
key), so after a crash the next sync knows them all.

A file counts as present only while it is what the sync left there: the manifest records
each file's size and modification time (its stamp), and a file whose stamp differs (it
was deleted, edited, or written by something else) is written again. One export at a
time per folder (`locked`: a lock file held with flock); a folder that cannot be written
(full, read-only) stops the sync with one line instead of failing every file.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

from app.errors import UsageError

log = logging.getLogger("app.export")
MANIFEST = ".facegroup-export.json"
LOCK = ".facegroup-export.lock"  # held by the export running into the folder; never deleted
TMP_SUFFIX = ".facegroup-tmp"
VERSION = 2  # 2: stamps and scope (a version 1 manifest is read as a full export without stamps)
# The folder's fault, not one file's: every later file would fail the same way.
FOLDER_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class Skip(Exception):
    """This file cannot be made now (its photo is missing, say); the reason is reported."""


@dataclass
class Entry:
    key: str
    write: Callable[[Path], None] | None = None  # fills the given (temporary) path
    link_to: str | None = None  # a symbolic link to this absolute path instead
    movable: bool = False  # an old file with the same key may be moved here


@dataclass
class SyncReport:
    kept: int = 0
    written: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.written) + len(self.moved) + len(self.deleted)


def _relative(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\\" not in path


def atomic_write(target: Path, fill: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TMP_SUFFIX}")
    try:
        fill(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def copy_of(source: str) -> Callable[[Path], None]:
    def fill(path: Path) -> None:
        try:
            shutil.copy2(source, path)
        except FileNotFoundError:
            raise Skip(f"source file missing: {source}") from None
        except OSError as exc:
            if exc.filename == source:  # the photo's fault, not the export folder's
                raise Skip(f"cannot read {source}: {exc.strerror or exc}") from None
            raise
    return fill


def check_folder(root: Path) -> None:
    """What a folder must be to take an export: new, empty, or an earlier export."""
    if root.is_symlink() and not root.exists():
        raise UsageError(f"--export: {root} is a symbolic link to {os.readlink(root)}, which does not exist; "
                         "create that folder or choose another")
    if root.exists() and not root.is_dir():
        raise UsageError(f"--export: not a folder: {root}")
    if root.is_dir() and not (root / MANIFEST).exists() and any(n != LOCK for n in os.listdir(root)):
        raise UsageError(f"--export: {root} is not empty and holds no earlier export ({MANIFEST}); "
                         "choose a new or empty folder")


def _cannot_write(root: Path, exc: OSError, what: str = "write into") -> UsageError:
    return UsageError(f"--export: cannot {what} {root}: {exc.strerror or exc}")


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """The folder (made if new) for one export at a time: a second export into it, from
    this machine or another sharing the folder where flock works, stops at once."""
    check_folder(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _cannot_write(root, exc, "create" if not root.is_dir() else "write into") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"--export {root}: another export into this folder is running") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"


class ExportTree:
    """`persons`: the person ids of a --persons export (None: every person). A --persons
    export into a folder holding an export of every person is refused: it would delete
    the other persons' files and leave a summary of a few persons."""

    def __init__(self, root: Path, persons: Sequence[int] | None = None):
        self.root = root
        self.manifest_path = root / MANIFEST
        self.scope = sorted(set(persons)) if persons is not None else None
        check_folder(root)
        self.old: dict[str, str] = {}
        self.stamps: dict[str, str] = {}
        if self.manifest_path.exists():
            try:
                data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
                self.old = {p: k for p, k in data["files"].items() if _relative(p) and isinstance(k, str)}
                self.stamps = {p: t for p, t in data.get("stamps", {}).items() if p in self.old and isinstance(t, str)}
                old_scope = data.get("scope")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"--export: cannot read {self.manifest_path}: {exc}") from None
            if self.scope is not None and old_scope is None and self.old:
                raise UsageError(f"--export: {root} holds an export of every person; --persons would delete "
                                 "the others' files from it. Export every person there (without --persons), "
                                 "or choose another folder for these persons")

    def _save(self, files: dict[str, str], stamps: dict[str, str]) -> None:
        data = json.dumps({"version": VERSION, "scope": self.scope, "files": dict(sorted(files.items())),
                           "stamps": {p: stamps[p] for p in sorted(files) if p in stamps}}, indent=0).encode("utf-8")
        try:
            if self.manifest_path.read_bytes() == data:
                return  # unchanged: a sync tool sees nothing
        except OSError:
            pass
        atomic_write(self.manifest_path, write_bytes(data))

    def _intact(self, path: str, st: os.stat_result | None, entry: Entry | None = None) -> bool:
        """The file is still the one the manifest names (a version 1 manifest has no
        stamps: a link must point where it should, any other file be there)."""
        if st is None:
            return False
        if path in self.stamps:
            return self.stamps[path] == _stamp(st)
        if entry is not None and entry.link_to is not None:
            return os.path.islink(self.root / path) and os.readlink(self.root / path) == entry.link_to
        return True

    def _remove_temporaries(self) -> None:
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                if name.endswith(TMP_SUFFIX):
                    os.unlink(os.path.join(folder, name))

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.root / path)
        except OSError:
            return None

    def sync(self, wanted: dict[str, Entry], progress: Callable[[int, int], None] | None = None) -> SyncReport:
        for path in wanted:
            if not _relative(path) or path in (MANIFEST, LOCK):
                raise ValueError(f"not a path inside the export: {path!r}")
        report = SyncReport()
        done: dict[str, str] = {}
        stamps: dict[str, str] = {}
        todo: list[str] = []
        try:
            self._sync(wanted, progress, report, done, stamps, todo)
        except OSError as exc:
            if exc.errno not in FOLDER_ERRORS:
                raise
            try:  # what was written is known next time; the rest the manifest named already
                self._save({**self.old, **{p: "" for p in todo}, **done}, stamps)
            except OSError:
                pass
            error = _cannot_write(self.root, exc)
            raise UsageError(f"{error}; stopped after {len(report.written) + len(report.moved)} of {len(todo)} "
                             "files (the next export goes on from there)") from None
        self.old, self.stamps = done, stamps
        return report

    def _sync(self, wanted: dict[str, Entry], progress: Callable[[int, int], None] | None, report: SyncReport,
              done: dict[str, str], stamps: dict[str, str], todo: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        old = self.old
        st = {p: self._lstat(p) for p in set(old) | set(wanted)}
        intact = {p: self._intact(p, st[p], wanted.get(p)) for p in old}
        todo += [p for p, e in wanted.items() if not (old.get(p) == e.key and intact[p])]
        self._save({**old, **{p: "" for p in todo}}, self.stamps)
        for p in wanted:
            if p not in todo:
                done[p], stamps[p] = old[p], _stamp(st[p])
        report.kept = len(done)
        # old files whose content is wanted at another path: moved there instead of rewritten
        spare: dict[str, str] = {}
        for p, k in old.items():
            if intact[p] and k and (p not in wanted or wanted[p].key != k):
                spare.setdefault(k, p)
        for n, path in enumerate(todo, 1):
            entry, target = wanted[path], self.root / path
            source = spare.pop(entry.key, None) if entry.movable else None
            try:
                if source is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(self.root / source, target)
                    report.moved.append((source, path))
                elif entry.link_to is not None:
                    atomic_write(target, lambda tmp, to=entry.link_to: os.symlink(to, tmp))
                    report.written.append(path)
                else:
                    atomic_write(target, entry.write)
                    report.written.append(path)
                done[path], stamps[path] = entry.key, _stamp(os.lstat(target))
            except OSError as exc:
                if exc.errno in FOLDER_ERRORS:
                    raise
                self._failed(report, path, exc, done)
            except Skip as exc:
                self._failed(report, path, exc, done)
            if progress is not None:
                progress(n, len(todo))
        moved_from = {s for s, _ in report.moved}
        for path in sorted(set(old) - set(done) - moved_from):
            target = self.root / path
            if os.path.lexists(target) and not target.is_dir():
                os.unlink(target)
                report.deleted.append(path)
        self._prune([*report.deleted, *moved_from])
        self._save(done, stamps)

    def _failed(self, report: SyncReport, path: str, exc: Exception, done: dict[str, str]) -> None:
        report.failed.append((path, str(exc)))
        if path in self.old and os.path.lexists(self.root / path):
            done[path] = ""  # the old file stays; tried again next time

    def _prune(self, removed: list[str]) -> None:
        """Folders left empty by deletions and moves, deepest first, up to the root."""
        folders = {PurePosixPath(p).parents[i] for p in removed for i in range(len(PurePosixPath(p).parts) - 1)}
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            path = self.root / folder
            try:
                path.rmdir()  # only when empty
            except OSError:
                pass
