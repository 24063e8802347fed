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
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from app.errors import UsageError

log = logging.getLogger("app.export")
MANIFEST = ".facegroup-export.json"
TMP_SUFFIX = ".facegroup-tmp"
VERSION = 1


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
    return fill


class ExportTree:
    def __init__(self, root: Path):
        self.root = root
        self.manifest_path = root / MANIFEST
        if root.exists() and not root.is_dir():
            raise UsageError(f"--export: not a folder: {root}")
        if root.is_dir() and not self.manifest_path.exists() and any(root.iterdir()):
            raise UsageError(f"--export: {root} is not empty and holds no earlier export ({MANIFEST}); "
                             "choose a new or empty folder")
        self.old: dict[str, str] = {}
        if self.manifest_path.exists():
            try:
                data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
                self.old = {p: k for p, k in data["files"].items() if _relative(p) and isinstance(k, str)}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"--export: cannot read {self.manifest_path}: {exc}") from None

    def _save(self, files: dict[str, str]) -> None:
        data = json.dumps({"version": VERSION, "files": dict(sorted(files.items()))}, indent=0).encode("utf-8")
        try:
            if self.manifest_path.read_bytes() == data:
                return  # unchanged: a sync tool sees nothing
        except OSError:
            pass
        atomic_write(self.manifest_path, write_bytes(data))

    def _remove_temporaries(self) -> None:
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                if name.endswith(TMP_SUFFIX):
                    os.unlink(os.path.join(folder, name))

    def sync(self, wanted: dict[str, Entry], progress: Callable[[int, int], None] | None = None) -> SyncReport:
        for path in wanted:
            if not _relative(path) or path == MANIFEST:
                raise ValueError(f"not a path inside the export: {path!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        report = SyncReport()
        old = self.old
        present = {p: os.path.lexists(self.root / p) for p in set(old) | set(wanted)}
        todo = [p for p, e in wanted.items() if not (old.get(p) == e.key and present[p])]
        self._save({**old, **{p: "" for p in todo}})
        done = {p: old[p] for p in wanted if p not in todo}
        report.kept = len(done)
        # old files whose content is wanted at another path: moved there instead of rewritten
        spare: dict[str, str] = {}
        for p, k in old.items():
            if present[p] and k and (p not in wanted or wanted[p].key != k):
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
                done[path] = entry.key
            except (Skip, OSError) as exc:
                report.failed.append((path, str(exc)))
                if path in old and os.path.lexists(target):
                    done[path] = ""  # the old file stays; tried again next time
            if progress is not None:
                progress(n, len(todo))
        moved_from = {s for s, _ in report.moved}
        for path in sorted(set(old) - set(done) - moved_from):
            target = self.root / path
            if os.path.lexists(target) and not target.is_dir():
                os.unlink(target)
                report.deleted.append(path)
        self._prune([*report.deleted, *moved_from])
        self._save(done)
        self.old = done
        return report

    def _prune(self, removed: list[str]) -> None:
        """Folders left empty by deletions and moves, deepest first, up to the root."""
        folders = {PurePosixPath(p).parents[i] for p in removed for i in range(len(PurePosixPath(p).parts) - 1)}
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            path = self.root / folder
            try:
                path.rmdir()  # only when empty
            except OSError:
                pass
