"""Names and file names from outside never drive the terminal or forge a log line
(issue 27): control characters are printed as escapes, on the real database."""
from __future__ import annotations

from sqlalchemy import insert

from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile, MediaItems, Persons

HOSTILE_NAME = "\x1b[2J\x07Eve\u202egnp.exe"
FORGED = "2026-12-04 12:00:00,000 INFO [app.detection] all photos verified"


def _person_with_a_face(db_url: str, name: str) -> int:
    engine = make_engine(db_url)
    with session_factory(engine).begin() as s:
        media = s.execute(insert(MediaFile).values(FilePath="/nowhere/a.jpg", FileName="a.jpg", Extensions=".jpg")
                          .returning(MediaFile.Id)).scalar_one()
        s.execute(insert(MediaItems).values(MediaFileId=media, IsFacesExtracted=True, Status="done"))
        person = s.execute(insert(Persons).values(Name=name).returning(Persons.Id)).scalar_one()
        s.execute(insert(Faces).values(MediaFileId=media, PersonId=person, BoundingBox="[1, 2, 50, 50]",
                                       AssignedBy="user"))
    engine.dispose()
    return person


def test_a_hostile_person_name_is_printed_escaped(cli, db_url):
    person = _person_with_a_face(db_url, HOSTILE_NAME)
    for args in (("--persons",), ("--person", str(person)), ("--persons", str(person))):
        res = cli(*args)
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\u202e" not in res.stdout, args
        assert "\\x1b[2J\\x07Eve\\u202egnp.exe" in res.stdout, args


def test_a_file_name_with_a_newline_forges_no_log_line_and_status_prints_no_escape(cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / f"a\n{FORGED}.jpg").write_bytes(b"not an image at all")
    (photos / "b\x1b[2J.jpg").write_bytes(b"not an image either")
    assert cli("--ingest", str(photos)).returncode == 0

    run = cli("--db", MAX_ATTEMPTS="1")
    assert run.returncode == 1  # both failed, as bad photos
    assert "\x1b" not in run.stdout + run.stderr
    assert not any(line.startswith(FORGED) for line in (run.stdout + run.stderr).splitlines())
    log = (cli.cwd / "logs" / "face_detection.log").read_text()
    assert not any(line.startswith(FORGED) for line in log.splitlines())
    assert f"a\\n{FORGED}.jpg" in log and "\x1b" not in log

    status = cli("--status")
    assert status.returncode == 0, status.stderr
    assert "\x1b" not in status.stdout and "b\\x1b[2J.jpg" in status.stdout
    assert not any(line.startswith(FORGED) for line in status.stdout.splitlines())
    assert f"a\\n{FORGED}.jpg" in status.stdout
