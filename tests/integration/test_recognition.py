"""Recognition through the real database and the real default models."""
import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select, update

from app.db.engine import make_engine, session_factory
from app.db.models import ASSIGNED_USER, Faces, MediaFile, Persons
from app.db.types import utcnow
from tests.integration.conftest import ROOT
from tests.integration.helpers import status_counts

IDENTITIES = ["Abdullah_Gul", "Al_Gore", "Alastair_Campbell", "Angela_Merkel", "BBT_sheldon", "ORL_s03"]


def _copy_identities(faces_dev: Path, dest: Path, names=IDENTITIES, skip_last: int = 0) -> dict[str, list[Path]]:
    """Copies the photos of each identity into dest/<identity>/; returns the held-back ones."""
    held = {}
    for name in names:
        files = sorted((faces_dev / name).iterdir())
        keep, rest = (files[:-skip_last], files[-skip_last:]) if skip_last else (files, [])
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in keep:
            (dest / name / f.name).write_bytes(f.read_bytes())
        held[name] = rest
    return held


def _write_held(held: dict[str, list[Path]], dest: Path) -> Path:
    """The held-back photos copied into dest/<identity>/ (photos added later)."""
    for ident, files in held.items():
        (dest / ident).mkdir(parents=True, exist_ok=True)
        for f in files:
            (dest / ident / f.name).write_bytes(f.read_bytes())
    return dest


def _joined_later(engine, first: dict[str, int | None], later: Path) -> tuple[int, int]:
    """(faces of photos under `later` whose person is their identity's person in `first`,
    all faces of photos under `later`), main faces only."""
    with session_factory(engine)() as s:
        paths = dict(s.execute(select(Faces.Id, MediaFile.FilePath).join(MediaFile)).all())
    joined = total = 0
    for ident, faces in _main_faces(engine).items():
        for fid, pid in faces:
            if paths[fid].startswith(str(later)):
                total += 1
                joined += pid == first[ident]
    return joined, total


def _main_faces(engine) -> dict[str, list[tuple[int, int | None]]]:
    """identity folder -> [(face id, person id)] of the largest face of each photo."""
    with session_factory(engine)() as s:
        rows = s.execute(select(MediaFile.FilePath, Faces.Id, Faces.PersonId, Faces.BoundingBox)
                         .join(MediaFile, MediaFile.Id == Faces.MediaFileId)).all()
    best: dict[str, tuple] = {}
    for path, fid, pid, box in rows:
        b = json.loads(box)
        area = b["w"] * b["h"]
        if path not in best or area > best[path][2]:
            best[path] = (fid, pid, area)
    out = defaultdict(list)
    for path, (fid, pid, _) in best.items():
        out[Path(path).parent.name].append((fid, pid))
    return out


def _persons_by_identity(engine) -> dict[str, Counter]:
    return {ident: Counter(pid for _, pid in faces) for ident, faces in _main_faces(engine).items()}


def test_all_groups_identities_into_persons(cli, db_url, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    res = cli("--all")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "recognition:" in res.stdout

    engine = make_engine(db_url)
    by_identity = _persons_by_identity(engine)
    owners: dict[int, set[str]] = defaultdict(set)
    for ident, persons in by_identity.items():
        top, count = persons.most_common(1)[0]
        assert top is not None, ident
        assert count >= 0.8 * sum(persons.values()), (ident, persons)  # mostly one person
        for pid in persons:
            if pid is not None:
                owners[pid].add(ident)
    assert all(len(idents) == 1 for idents in owners.values()), owners  # no person mixes people

    with session_factory(engine)() as s:
        faces = s.execute(select(Faces).where(Faces.IsUsable.is_(True))).scalars().all()
        assert all(len(f.Embedding) == 512 * 4 and f.EmbeddingModel == "facenet-casia-20180408" for f in faces)
        vectors = np.vstack([np.frombuffer(f.Embedding, np.float32) for f in faces])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assigned = [f for f in faces if f.PersonId is not None]
        assert all(f.AssignedBy in ("matched", "clustered") and f.AssignedAt is not None for f in assigned)
        persons = s.execute(select(Persons)).scalars().all()
        assert all(p.IsAutomatic and p.Name is None and p.CreatedAt.tzinfo for p in persons)
    engine.dispose()
    counts = status_counts(cli)
    assert counts["with embedding"] + counts["below quality gates"] == counts["faces"]

    again = cli("--recognize")  # nothing new to embed; noise faces are simply tried again
    assert again.returncode == 0 and "0 faces embedded" in again.stdout


def test_named_persons_keep_names_and_faces_through_recluster(cli, db_url, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos")
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    Session = session_factory(engine)
    by_identity = _main_faces(engine)
    named = {}
    with Session.begin() as s:
        for ident in IDENTITIES[:3]:
            person = Counter(pid for _, pid in by_identity[ident]).most_common(1)[0][0]
            s.execute(update(Persons).where(Persons.Id == person).values(Name=ident.replace("_", " ")))
            named[person] = ident
        # a user moves one face into a person by hand
        face_id = by_identity[IDENTITIES[3]][0][0]
        user_person = next(iter(named))
        s.execute(update(Faces).where(Faces.Id == face_id).values(PersonId=user_person, AssignedBy=ASSIGNED_USER))
    with Session() as s:
        before = {pid: {f for (f,) in s.execute(select(Faces.Id).where(Faces.PersonId == pid))} for pid in named}
        auto_before = {p for (p,) in s.execute(select(Persons.Id).where(Persons.Name.is_(None)))}

    res = cli("--recluster")
    assert res.returncode == 0, res.stderr[-3000:]
    with Session() as s:
        for pid, ident in named.items():
            person = s.get(Persons, pid)
            assert person is not None and person.Name == ident.replace("_", " ")
            after = {f for (f,) in s.execute(select(Faces.Id).where(Faces.PersonId == pid))}
            assert before[pid] <= after  # every face it had, it still has
        moved = s.get(Faces, face_id)
        assert moved.PersonId == user_person and moved.AssignedBy == ASSIGNED_USER
        auto_after = {p for (p,) in s.execute(select(Persons.Id).where(Persons.Name.is_(None)))}
    assert auto_after == auto_before  # same groups of faces keep the same person ids
    engine.dispose()


def test_new_photos_of_known_people_join_their_person(cli, db_url, tmp_path, faces_dev):
    held = _copy_identities(faces_dev, tmp_path / "photos", skip_last=2)
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    first = {ident: persons.most_common(1)[0][0] for ident, persons in _persons_by_identity(engine).items()}
    with session_factory(engine)() as s:
        persons_before = s.scalar(select(Persons.Id).order_by(Persons.Id.desc()).limit(1))

    later = _write_held(held, tmp_path / "later")
    cli("--ingest", str(later))
    assert cli("--all").returncode == 0
    joined, total = _joined_later(engine, first, later)
    assert total == 2 * len(IDENTITIES)
    assert joined >= 0.9 * total, (joined, total)
    with session_factory(engine)() as s:
        newest = s.scalar(select(Persons.Id).order_by(Persons.Id.desc()).limit(1))
    assert newest == persons_before  # no duplicate person was made for them
    engine.dispose()


def test_faces_of_a_person_deleted_elsewhere_are_assigned_again(cli, db_url, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos", names=IDENTITIES[:3])
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    person = Counter(pid for _, pid in _main_faces(engine)["Al_Gore"]).most_common(1)[0][0]
    with session_factory(engine).begin() as s:
        s.execute(Persons.__table__.delete().where(Persons.__table__.c.Id == person))
    assert status_counts(cli)["assigned to a person"] < status_counts(cli)["with embedding"]
    assert cli("--recognize").returncode == 0
    again = Counter(pid for _, pid in _main_faces(engine)["Al_Gore"])
    engine.dispose()
    top, count = again.most_common(1)[0]
    assert top is not None and top != person and count >= 0.8 * sum(again.values())


def test_two_faces_of_one_photo_never_share_a_person(cli, db_url, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos", names=["Al_Gore"])
    src = Image.open(faces_dev / "Al_Gore" / "01.jpg").convert("RGB")
    twice = Image.new("RGB", (src.width * 2, src.height))
    twice.paste(src, (0, 0))
    twice.paste(src.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (src.width, 0))
    twice.save(tmp_path / "photos" / "twice.jpg", quality=95)
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = s.execute(select(Faces.PersonId, Faces.BoundingBox).join(MediaFile)
                         .where(MediaFile.FileName == "twice.jpg")).all()
    engine.dispose()
    big = [pid for pid, box in rows if json.loads(box)["w"] >= 48]
    assert len(big) == 2
    assert big[0] != big[1] or big[0] is None


def test_unreadable_photo_at_embedding_is_retried_then_recorded(cli, db_url, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos", names=["Al_Gore"])
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--db").returncode == 0
    gone = tmp_path / "photos" / "Al_Gore" / "01.jpg"
    gone.unlink()
    # A missing file may come back (a network share): retried after the delay.
    res = cli("--recognize", RETRY_DELAY_SECONDS="3600")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    engine = make_engine(db_url)

    def errors():
        with session_factory(engine)() as s:
            return s.execute(select(Faces.EmbedError, Faces.EmbedAttempts).join(MediaFile)
                             .where(MediaFile.FileName == "01.jpg")).all()

    assert errors() and all("not found" in e and n == 1 for e, n in errors())
    assert status_counts(cli)["embedding failed, will retry"] == len(errors())
    # Once the retry time has come, and with no delay after that, one run tries it until
    # MAX_ATTEMPTS, then records it as given up.
    with session_factory(engine).begin() as s:
        s.execute(update(Faces).where(Faces.EmbedError.is_not(None)).values(EmbedLockedUntil=utcnow()))
    res = cli("--recognize", RETRY_DELAY_SECONDS="0", MAX_ATTEMPTS="3")
    assert res.returncode == 1 and "giving up" in res.stderr
    assert all(n == 3 for _, n in errors())
    assert status_counts(cli)["could not be embedded"] == len(errors())
    engine.dispose()
    again = cli("--recognize", RETRY_DELAY_SECONDS="0")
    assert again.returncode == 0 and "0 faces embedded (0 failed)" in again.stdout


def test_two_recognition_runs_at_once_make_no_duplicate_persons(pg_url, cli_factory, tmp_path, faces_dev):
    cli = cli_factory(pg_url)
    _copy_identities(faces_dev, tmp_path / "photos")
    cli("--ingest", str(tmp_path / "photos"))
    assert cli("--db").returncode == 0
    procs = [subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--recognize"], cwd=cli.cwd,
                              env={**cli.env, "WORKER_ID": f"r{i}"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    engine = make_engine(pg_url)
    owners = defaultdict(set)
    for ident, persons in _persons_by_identity(engine).items():
        for pid in persons:
            if pid is not None:
                owners[ident].add(pid)
    engine.dispose()
    # each identity in one person: a second run creating its own persons would split them
    assert all(len(p) == 1 for p in owners.values()), owners


def test_automate_runs_on_a_schedule_and_stops_cleanly(cli, tmp_path, faces_dev):
    _copy_identities(faces_dev, tmp_path / "photos", names=["Al_Gore"])
    cli("--ingest", str(tmp_path / "photos"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--automate"], cwd=cli.cwd,
                            env={**cli.env, "AUTOMATE_INTERVAL_MINUTES": "0.05"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if status_counts(cli).get("assigned to a person", 0) > 0:
                break
            time.sleep(2)
        assert status_counts(cli)["assigned to a person"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped" in err and "Traceback" not in err
