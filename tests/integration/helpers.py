"""Small helpers shared by integration tests."""
from __future__ import annotations

import re


def status_counts(cli, **env: str) -> dict[str, int]:
    """`main.py --status` as {label: count}."""
    res = cli("--status", **env)
    assert res.returncode == 0, res.stderr
    counts = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^\s*(.+?)\s+(\d+)$", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def copy_images(sources, folder):
    """Copy real image files into a test's own folder (so tests can add or break files)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(sources):
        dst = folder / f"{src.parent.name}_{src.name}"
        dst.write_bytes(src.read_bytes())
        out.append(dst)
    return out


def items_by_path(engine):
    """{FilePath: MediaItems row} for every registered file."""
    from sqlalchemy import select

    from app.db.engine import session_factory
    from app.db.models import MediaFile, MediaItems

    with session_factory(engine)() as s:
        rows = s.execute(select(MediaFile.FilePath, MediaItems).join(MediaItems, MediaItems.MediaFileId == MediaFile.Id)).all()
    return {path: item for path, item in rows}


def items_by_name(engine):
    """{FileName: MediaItems row}; for tests whose file names are unique."""
    from pathlib import Path

    return {Path(path).name: item for path, item in items_by_path(engine).items()}


def faces_by_media(engine):
    """{MediaFileId: [Faces rows]}."""
    from sqlalchemy import select

    from app.db.engine import session_factory
    from app.db.models import Faces

    out = {}
    with session_factory(engine)() as s:
        for face in s.execute(select(Faces).order_by(Faces.Id)).scalars():
            out.setdefault(face.MediaFileId, []).append(face)
    return out
