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


def install_work_audit(engine):
    """PostgreSQL triggers that record each time an item is marked done and each time a
    face gets an embedding (stored with the face at detection, or later), in a table of
    their own: proof of "processed exactly once"."""
    from sqlalchemy import text

    statements = [
        'CREATE TABLE work_audit (kind text NOT NULL, row_id integer NOT NULL)',
        '''CREATE FUNCTION audit_item_done() RETURNS trigger AS $$ BEGIN
             IF NEW."IsFacesExtracted" AND NOT OLD."IsFacesExtracted" THEN
               INSERT INTO work_audit VALUES ('detected', NEW."Id"); END IF;
             RETURN NEW; END; $$ LANGUAGE plpgsql''',
        '''CREATE TRIGGER audit_item_done AFTER UPDATE ON "MediaItems"
             FOR EACH ROW EXECUTE FUNCTION audit_item_done()''',
        '''CREATE FUNCTION audit_face_embedded() RETURNS trigger AS $$ BEGIN
             IF NEW."Embedding" IS NOT NULL AND (TG_OP = 'INSERT' OR OLD."Embedding" IS NULL) THEN
               INSERT INTO work_audit VALUES ('embedded', NEW."Id"); END IF;
             RETURN NEW; END; $$ LANGUAGE plpgsql''',
        '''CREATE TRIGGER audit_face_embedded AFTER INSERT OR UPDATE ON "Faces"
             FOR EACH ROW EXECUTE FUNCTION audit_face_embedded()''',
    ]
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def work_audit(engine) -> dict[str, dict[int, int]]:
    """kind -> {row id: times done}."""
    from sqlalchemy import text

    out: dict[str, dict[int, int]] = {}
    with engine.connect() as conn:
        for kind, row_id, n in conn.execute(text("SELECT kind, row_id, count(*) FROM work_audit GROUP BY 1, 2")):
            out.setdefault(kind, {})[row_id] = n
    return out


def start_automate_workers(cli, env: dict[str, str], count: int = 2):
    """`count` `main.py --automate` processes on the cli's database, WORKER_ID w0, w1, ..."""
    import subprocess
    import sys

    from tests.integration.conftest import ROOT

    return [subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--automate"], cwd=cli.cwd,
                             env={**cli.env, **env, "WORKER_ID": f"w{i}"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(count)]


def stop_workers(workers) -> list[tuple[int, str]]:
    """SIGTERM each worker and wait: (exit code, stderr) of each."""
    import signal

    for w in workers:
        w.send_signal(signal.SIGTERM)
    errors = [w.communicate(timeout=300)[1] for w in workers]  # reads the pipes while waiting
    return [(w.returncode, err) for w, err in zip(workers, errors)]


def assert_stopped_cleanly(stopped: list[tuple[int, str]]) -> None:
    for code, err in stopped:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err and "deadlock" not in err.lower(), err[-3000:]
