"""A photo replaced, edited or removed under the same name (issue 27): noticed by --ingest
and by every detection run, detected again, its faces kept by box overlap only where a
user decided them, its vectors redone, and a missing file counted in --status."""
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, select, update

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.types import utcnow
from app.db.models import (
    ASSIGNED_RECHECK,
    ASSIGNED_USER,
    EVENT_QUEUED,
    EVENT_SENT,
    WHO_RECHECK,
    AssignmentLog,
    Faces,
    MediaItems,
    Persons,
    PublishEvents,
)
from app.pipeline.file_stamp import FileStamp
from app.repositories import media as media_repo
from app.services import file_changes
from tests.integration.helpers import copy_images, faces_by_media, items_by_path, status_counts


def _overwrite(path: Path, data: bytes) -> None:
    """Replace a file's bytes under its name, its modification time surely different."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))


def _persons_of(engine, folder: Path) -> Counter:
    items = items_by_path(engine)
    faces = faces_by_media(engine)
    return Counter(f.PersonId for path, item in items.items() if Path(path).parent == folder
                   for f in faces.get(item.MediaFileId, []))


def test_a_photo_replaced_by_another_persons_leaves_the_first_persons_group(cli, db_url, tmp_path, faces_dev):
    jolie, putin = tmp_path / "photos" / "jolie", tmp_path / "photos" / "putin"
    copy_images(sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))[:6], jolie)
    copy_images(sorted((faces_dev / "Vladimir_Putin").glob("*.jpg"))[:4], putin)
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    first = cli("--all")
    assert first.returncode == 0, first.stderr[-3000:]

    engine = make_engine(db_url)
    Session = session_factory(engine)
    jolie_person = _persons_of(engine, jolie).most_common(1)[0][0]
    putin_person = _persons_of(engine, putin).most_common(1)[0][0]
    assert None not in (jolie_person, putin_person) and jolie_person != putin_person
    target = jolie / "Angelina_Jolie_01.jpg"
    items = items_by_path(engine)
    target_media = items[str(target)].MediaFileId
    (old_face,) = faces_by_media(engine)[target_media]
    assert old_face.PersonId == jolie_person and old_face.AssignedBy != ASSIGNED_USER
    user_face = next(f for media, faces in faces_by_media(engine).items() if media != target_media
                     for f in faces if f.PersonId == jolie_person)
    with Session.begin() as s:  # the user names the person and confirms one of its faces
        s.execute(update(Persons).where(Persons.Id == jolie_person).values(Name="Angelina Jolie"))
        s.execute(update(Faces).where(Faces.Id == user_face.Id).values(AssignedBy=ASSIGNED_USER))
        s.execute(update(PublishEvents).values(Status=EVENT_SENT))  # what was published so far

    _overwrite(target, (sorted((faces_dev / "Vladimir_Putin").glob("*.jpg"))[4]).read_bytes())
    again = cli("--ingest", str(tmp_path / "photos"))
    assert again.returncode == 0, again.stderr
    assert "0 added, 10 skipped (already registered)" in again.stdout
    assert "1 changed, re-detection queued" in again.stdout
    assert status_counts(cli)["pending"] == 1

    second = cli("--all")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 images" in second.stdout or "1 image" in second.stdout
    (new_face,) = faces_by_media(engine)[target_media]
    assert new_face.Id != old_face.Id  # the old pixels' face is gone, not relabelled
    assert new_face.Embedding is not None and new_face.Embedding != old_face.Embedding
    assert new_face.PersonId != jolie_person and new_face.PersonId == putin_person
    with Session() as s:
        person = s.get(Persons, jolie_person)
        assert person.Name == "Angelina Jolie"
        kept = s.get(Faces, user_face.Id)
        assert kept.PersonId == jolie_person and kept.AssignedBy == ASSIGNED_USER
        queued = s.scalars(select(PublishEvents.MediaFileId).where(PublishEvents.Status == EVENT_QUEUED)).all()
        item = s.execute(select(MediaItems).where(MediaItems.MediaFileId == target_media)).scalar_one()
    assert target_media in queued  # the change is published
    assert item.FileSize == target.stat().st_size and item.FileMtimeNs == target.stat().st_mtime_ns
    assert item.ContentHash is not None and len(item.ContentHash) == 64
    engine.dispose()


def test_the_worker_notices_a_change_and_keeps_user_decisions_only_where_a_face_still_is(
        cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    jolie = sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))
    same_place, elsewhere = copy_images([jolie[0], jolie[2]], photos)
    assert cli("--ingest", str(photos)).returncode == 0
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    Session = session_factory(engine)
    items = items_by_path(engine)
    faces = faces_by_media(engine)
    (moved_face,) = faces[items[str(same_place)].MediaFileId]
    (gone_face,) = faces[items[str(elsewhere)].MediaFileId]
    with Session.begin() as s:  # a user puts both faces into a person of their own
        person = Persons(Name="Jolie")
        s.add(person)
        s.flush()
        pid = person.Id
        s.execute(update(Faces).where(Faces.Id.in_([moved_face.Id, gone_face.Id]))
                  .values(PersonId=pid, AssignedBy=ASSIGNED_USER))

    _overwrite(same_place, jolie[3].read_bytes())  # another photo, a face at the same place
    with Image.open(faces_dev / "Vladimir_Putin" / "01.jpg") as im:  # a face far from the old one
        canvas = Image.new("RGB", (im.width * 3, im.height), (128, 128, 128))
        canvas.paste(im, (im.width * 2, 0))
    before = elsewhere.stat()
    canvas.save(elsewhere, "JPEG", quality=92)
    os.utime(elsewhere, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))

    res = cli("--db")  # no --ingest: the detection run's own check finds them
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 images" in res.stdout
    assert "no longer in the changed file" in res.stderr
    faces = faces_by_media(engine)
    (refreshed,) = [f for f in faces[items[str(same_place)].MediaFileId] if f.PersonId is not None]
    assert refreshed.Id == moved_face.Id and refreshed.PersonId == pid and refreshed.AssignedBy == ASSIGNED_RECHECK
    assert refreshed.Embedding is None  # the old vector came from the old pixels
    assert refreshed.ThumbnailPath != moved_face.ThumbnailPath and not Path(moved_face.ThumbnailPath).exists()
    newcomers = faces[items[str(elsewhere)].MediaFileId]
    assert newcomers and gone_face.Id not in {f.Id for f in newcomers}
    assert all(f.PersonId is None for f in newcomers)  # the decision did not move to another face

    res = cli("--recognize")
    assert res.returncode == 0
    # the person's only other face went with its photo: nothing to check against, kept
    assert f"face {moved_face.Id} ({same_place}), person {pid} \"Jolie\"" in res.stderr
    assert "could not be checked" in res.stderr
    with Session() as s:
        refreshed = s.get(Faces, moved_face.Id)
        newcomers = [s.get(Faces, f.Id) for f in newcomers]
        assert s.get(Persons, pid).Name == "Jolie"
    assert refreshed.Embedding is not None and refreshed.Embedding != moved_face.Embedding
    old, new = (np.frombuffer(f.Embedding, np.float32) for f in (moved_face, refreshed))
    assert float(old @ new) < 0.999  # from the new pixels
    assert refreshed.PersonId == pid and refreshed.AssignedBy == ASSIGNED_USER
    assert all(f.PersonId != pid for f in newcomers)
    engine.dispose()


def test_a_missing_file_is_counted_in_status_and_nothing_is_charged(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    kept, removed = copy_images(sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))[:2], photos)
    assert cli("--ingest", str(photos)).returncode == 0
    assert cli("--db").returncode == 0
    data, st = removed.read_bytes(), removed.stat()
    removed.unlink()

    res = cli("--db")
    assert res.returncode == 0 and "0 images" in res.stdout
    counts = status_counts(cli)
    assert counts["files missing on disk"] == 1 and counts["done"] == 2 and counts["pending"] == 0

    removed.write_bytes(data)  # back as it was: found again, not detected again
    os.utime(removed, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = cli("--db")
    assert res.returncode == 0 and "0 images" in res.stdout
    assert status_counts(cli)["files missing on disk"] == 0


def test_the_check_takes_a_bounded_slice_per_run_and_resumes(db_url, tmp_path):
    engine = make_engine(db_url)
    Session = session_factory(engine)
    files = []
    for i in range(3):
        f = tmp_path / f"p{i}.jpg"
        f.write_bytes(b"x" * (10 + i))
        files.append(f)
    with Session.begin() as s:
        media_repo.add_media(s, [media_repo.NewMedia(str(f), f.name, ".jpg") for f in files])
        ids = list(s.scalars(select(MediaItems.Id).order_by(MediaItems.Id)))
        stamps = [FileStamp(f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        stamps[2] = None  # detected before stamps were recorded
        media_repo.mark_done(s, [(i, 0, st) for i, st in zip(ids, stamps)], utcnow())
    settings = replace(load_settings({}, env_file=None), thumbnail_path=tmp_path / "thumbs", change_check_files=2)
    for f in files[:2]:
        f.write_bytes(b"changed, longer")

    one = file_changes.check_some(Session, settings)
    assert (one.checked, one.changed) == (2, ids[:2])
    two = file_changes.check_some(Session, settings)  # resumes after the slice, then wraps
    assert two.checked == 1 and not two.changed and [i for i, _ in two.first_stats] == [ids[2]]
    with Session() as s:
        rows = {r.Id: r for r in s.scalars(select(MediaItems))}
    assert [rows[i].IsFacesExtracted for i in ids] == [False, False, True]
    assert rows[ids[2]].FileSize == files[2].stat().st_size  # recorded for the next check
    assert (tmp_path / "thumbs" / file_changes.CURSOR_FILE).read_text() == "0"
    assert file_changes.check_some(Session, replace(settings, change_check_files=0)).checked == 0
    engine.dispose()


REPLACEMENT = 7  # the Jolie photo copied over another: its face is where the other's was


def _faces_in(engine, folder: Path) -> dict[Path, Faces]:
    """{photo: its main face (the most confident)} of the photos in `folder`."""
    items = {Path(p): item for p, item in items_by_path(engine).items() if Path(p).parent == folder}
    faces = faces_by_media(engine)
    return {p: max(faces[item.MediaFileId], key=lambda f: f.Confidence) for p, item in items.items()}


def _name_jolie(cli, engine, folder: Path) -> tuple[int, dict[Path, Faces]]:
    """The user puts every face of `folder` into a new person named Angelina Jolie (--move,
    --rename): (the person, {photo: its face})."""
    moved = cli("--move", ",".join(str(f.Id) for f in _faces_in(engine, folder).values()), "--to", "new")
    assert moved.returncode == 0, moved.stderr
    faces = _faces_in(engine, folder)
    (person,) = {f.PersonId for f in faces.values()}
    assert cli("--rename", str(person), "Angelina Jolie").returncode == 0
    assert {f.AssignedBy for f in faces.values()} == {ASSIGNED_USER}
    return person, faces


def test_another_persons_face_at_the_place_of_a_users_face_leaves_the_users_person(
        cli, db_url, tmp_path, faces_dev):
    jolie, putin = tmp_path / "photos" / "jolie", tmp_path / "photos" / "putin"
    copy_images(sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))[:6], jolie)
    putins = sorted((faces_dev / "Vladimir_Putin").glob("*.jpg"))
    copy_images(putins[:3], putin)
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    Session = session_factory(engine)
    person, faces = _name_jolie(cli, engine, jolie)
    target = jolie / "Angelina_Jolie_01.jpg"
    confirmed = faces[target]

    _overwrite(target, putins[3].read_bytes())  # Putin's face where the user confirmed Jolie
    assert cli("--db").returncode == 0
    _overwrite(target, putins[4].read_bytes())  # replaced again before any recognition run
    assert cli("--db").returncode == 0
    with Session() as s:
        face = s.get(Faces, confirmed.Id)  # refreshed twice: still the user's, to be checked
        assert face is not None and face.PersonId == person and face.AssignedBy == ASSIGNED_RECHECK
    res = cli("--recognize")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"face {confirmed.Id}" in res.stderr and str(target) in res.stderr

    with Session() as s:
        face = s.get(Faces, confirmed.Id)
        assert face.PersonId != person  # Putin is not in Jolie's person
        putin_persons = {f.PersonId for f in _faces_in(engine, putin).values()}
        assert face.PersonId is None or face.PersonId in putin_persons
        assert s.get(Persons, person).Name == "Angelina Jolie"
        for photo, f in faces.items():
            if photo != target:
                kept = s.get(Faces, f.Id)
                assert (kept.PersonId, kept.AssignedBy) == (person, ASSIGNED_USER)
        left = s.execute(select(AssignmentLog).where(AssignmentLog.FaceId == confirmed.Id,
                                                     AssignmentLog.Who == WHO_RECHECK)).scalar_one()
    assert (left.OldPersonId, left.NewPersonId, left.OldAssignedBy) == (person, None, ASSIGNED_RECHECK)
    history = json.loads(cli("--history", "--json").stdout)
    assert any(op["who"] == "worker" and "1 left a user's person on re-check" in op["summary"] for op in history)
    engine.dispose()



def test_a_users_face_still_there_after_a_change_stays_the_users(cli, db_url, tmp_path, faces_dev):
    jolie = tmp_path / "photos" / "jolie"
    originals = sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))
    copy_images(originals[:6], jolie)
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    Session = session_factory(engine)
    person, faces = _name_jolie(cli, engine, jolie)
    resaved, replaced = jolie / "Angelina_Jolie_01.jpg", jolie / "Angelina_Jolie_02.jpg"
    with Image.open(resaved) as im:  # the same photo saved again: other bytes, the same face
        im.load()
    before = resaved.stat()
    im.save(resaved, "JPEG", quality=60)
    os.utime(resaved, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    _overwrite(replaced, originals[REPLACEMENT].read_bytes())  # another photo of her, face at the same place

    assert cli("--db").returncode == 0
    with Session() as s:
        assert {s.get(Faces, faces[p].Id).AssignedBy for p in (resaved, replaced)} == {ASSIGNED_RECHECK}
    res = cli("--recluster")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 confirmed, 0 left their person" in res.stderr
    with Session() as s:
        for photo, f in faces.items():
            now = s.get(Faces, f.Id)
            assert (now.PersonId, now.AssignedBy, now.AssignedAt) == (person, ASSIGNED_USER, f.AssignedAt)
        assert s.get(Persons, person).Name == "Angelina Jolie"
        assert not s.scalars(select(AssignmentLog).where(AssignmentLog.Who == WHO_RECHECK)).all()
    engine.dispose()


def test_a_touched_photo_is_not_detected_again(cli, db_url, tmp_path, faces_dev):
    """A new modification time over the same bytes (`touch`, a copy keeping them) is not a
    changed photo: no re-detection, no face replaced, no event; the new time is recorded."""
    photos = copy_images(sorted((faces_dev / "Angelina_Jolie").glob("*.jpg"))[:2], tmp_path / "photos")
    assert cli("--ingest", str(tmp_path / "photos")).returncode == 0
    assert cli("--all").returncode == 0
    engine = make_engine(db_url)
    before = {m: [(f.Id, f.PersonId, f.BoundingBox) for f in fs] for m, fs in faces_by_media(engine).items()}
    st = photos[0].stat()
    os.utime(photos[0], ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    with session_factory(engine)() as s:
        events = s.scalar(select(func.count()).select_from(PublishEvents))
    for command in ("--ingest", "--all"):
        res = cli(command, str(tmp_path / "photos")) if command == "--ingest" else cli(command)
        assert res.returncode == 0, res.stderr[-3000:]
    assert "changed" not in cli("--ingest", str(tmp_path / "photos")).stdout
    assert {m: [(f.Id, f.PersonId, f.BoundingBox) for f in fs] for m, fs in faces_by_media(engine).items()} == before
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(PublishEvents)) == events
    item = items_by_path(engine)[str(photos[0])]
    assert item.FileMtimeNs == st.st_mtime_ns + 7_000_000_000
    engine.dispose()
