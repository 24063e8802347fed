"""Issue 12 on a library the real pipeline filled from dev photos, on PostgreSQL and
SQLite: EXIF read at detection (photos given EXIF with Pillow, one with a corrupt block),
quality scores and covers stored, best photos without near-duplicates, and --export:
the tree, its JSON against the shipped schemas, and re-exports after a merge / move /
hide / rename that change exactly what they should."""
from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from PIL import Image
from sqlalchemy import select

from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile, MediaMeta, MediaItems, Persons
from app.errors import RequestError, UsageError
from app.pipeline import photo_meta as pm
from app.services import persons
from app.services.export import export
from app.services.ingest import register_files
from app.services.run import detect_and_recognize
from app.storage.export_tree import MANIFEST
from tests.integration.persons_world import IDENTITIES, clone_sqlite, main_person, make_photos, settings_for

GUL, AGASSI, JOLIE, FLEISCHER = IDENTITIES
ROOT = Path(__file__).resolve().parents[2]
CHIP_SCHEMA = json.loads((ROOT / "schemas" / "export-chip.schema.json").read_text())
SUMMARY_SCHEMA = json.loads((ROOT / "schemas" / "export-summary.schema.json").read_text())
DEVICE_PATTERN = r"(AXIS-[A-Z0-9]+)"


def camera_exif(taken: str = "2024:01:15 13:24:00", offset: str | None = "+01:00") -> Image.Exif:
    exif = Image.Exif()
    exif[pm.MAKE], exif[pm.MODEL] = "Canon", "Canon EOS R5"
    sub = exif.get_ifd(pm.EXIF_IFD)
    sub[pm.DATETIME_ORIGINAL] = taken
    if offset:
        sub[pm.OFFSET_TIME_ORIGINAL] = offset
    gps = exif.get_ifd(pm.GPS_IFD)
    gps[pm.GPS_LAT_REF], gps[pm.GPS_LAT] = "N", (52.0, 31.0, 12.0)
    gps[pm.GPS_LON_REF], gps[pm.GPS_LON] = "E", (13.0, 24.0, 36.0)
    gps[pm.GPS_ALT_REF], gps[pm.GPS_ALT] = b"\x00", 34.5
    return exif


def make_exif_photos(faces_dev: Path, folder: Path) -> dict[str, Path]:
    """Dev photos saved again with EXIF: a camera photo, a camera-less one whose file name
    names the device, one with a corrupt EXIF block, and a burst (one photo twice, same
    day and framing)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def save(src: Path, name: str, **kw) -> None:
        with Image.open(src) as im:
            im.convert("RGB").save(folder / name, "JPEG", quality=95, **kw)
        out[name] = folder / name

    save(faces_dev / GUL / "06.jpg", f"{GUL}_06.jpg", exif=camera_exif())
    save(faces_dev / GUL / "07.jpg", "AXIS-W120_2024-01-15.jpg")
    save(faces_dev / AGASSI / "06.jpg", f"{AGASSI}_06.jpg", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff")
    burst = camera_exif("2024:03:02 10:00:00", None)
    save(faces_dev / JOLIE / "06.jpg", f"{JOLIE}_06.jpg", exif=burst)
    save(faces_dev / JOLIE / "06.jpg", f"{JOLIE}_16.jpg", exif=burst)
    return out


def fill(url: str, thumbs: Path, models, paths: list[Path]) -> None:
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        register_files(sessions, paths)
        settings = replace(settings_for(url, thumbs), device_id_pattern=DEVICE_PATTERN)
        assert detect_and_recognize(sessions, models[0], models[1], settings).failed == 0
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def library(request, tmp_path_factory, models, faces_dev):
    root = tmp_path_factory.mktemp("export-library")
    first, _later = make_photos(faces_dev, root / "photos")
    extra = make_exif_photos(faces_dev, root / "photos" / "exif")
    paths = first + list(extra.values())
    thumbs = root / "thumbs"
    pg = request.getfixturevalue("pg_databases")
    name = pg.create(request.getfixturevalue("pg_template"))
    fill(pg.url(name), thumbs, models, paths)
    fill(clone_sqlite(request.getfixturevalue("sqlite_template"), root), thumbs, models, paths)
    return {"postgresql": name, "sqlite": root / "faces.db", "thumbs": thumbs, "extra": extra}


class World:
    def __init__(self, url: str, thumbs: Path, extra: dict[str, Path]):
        self.url, self.extra = url, extra
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.settings = settings_for(url, thumbs)


@pytest.fixture(params=["postgresql", "sqlite"])
def world(request, library, tmp_path):
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_databases")
        url = pg.url(pg.create(library["postgresql"]))
    else:
        url = clone_sqlite(library["sqlite"], tmp_path)
    w = World(url, library["thumbs"], library["extra"])
    yield w
    w.engine.dispose()


def meta_of(w: World, name: str):
    with w.sessions() as s:
        return s.execute(select(MediaMeta).join(MediaFile, MediaFile.Id == MediaMeta.MediaFileId)
                         .where(MediaFile.FileName == name)).scalar_one()


def test_exif_is_read_at_detection_and_broken_exif_fails_nothing(world):
    camera = meta_of(world, f"{GUL}_06.jpg")
    assert camera.TakenAt == "2024-01-15T13:24:00+01:00"
    assert (camera.CameraMake, camera.CameraModel, camera.DeviceId) == ("Canon", "Canon EOS R5", "Canon EOS R5")
    assert camera.Latitude == pytest.approx(52 + 31 / 60 + 12 / 3600)
    assert camera.Longitude == pytest.approx(13 + 24 / 60 + 36 / 3600)
    assert camera.Altitude == pytest.approx(34.5) and camera.Problems is None
    with Image.open(world.extra[f"{GUL}_06.jpg"]) as im:
        assert (camera.Width, camera.Height) == im.size

    axis = meta_of(world, "AXIS-W120_2024-01-15.jpg")
    assert axis.DeviceId == "AXIS-W120" and axis.TakenAt is None and axis.CameraMake is None

    broken = meta_of(world, f"{AGASSI}_06.jpg")
    assert broken.TakenAt is None and broken.CameraMake is None and broken.Latitude is None
    assert broken.Width and broken.Height
    with world.sessions() as s:
        item = s.execute(select(MediaItems).join(MediaFile, MediaFile.Id == MediaItems.MediaFileId)
                         .where(MediaFile.FileName == f"{AGASSI}_06.jpg")).scalar_one()
        assert item.Status == "done" and item.FaceCount >= 1


def test_every_face_is_scored_and_every_person_has_its_best_face_as_cover(world):
    with world.sessions() as s:
        faces = s.execute(select(Faces.Id, Faces.PersonId, Faces.Quality, Faces.IsUsable)).all()
        covers = dict(s.execute(select(Persons.Id, Persons.CoverFaceId)).all())
    assert faces and all(q is not None and 0.0 <= q <= 1.0 for _, _, q, _ in faces)
    by_person: dict[int, list] = {}
    for fid, pid, q, usable in faces:
        if pid is not None:
            by_person.setdefault(pid, []).append((usable, q, fid))
    assert set(by_person) == set(covers)
    for pid, rows in by_person.items():
        best = max(rows, key=lambda r: (r[0], r[1], -r[2]))
        assert covers[pid] == best[2], pid


def test_a_users_cover_is_kept_until_its_face_leaves(world):
    gul = main_person(world.sessions, GUL)
    with world.sessions() as s:
        faces = s.execute(select(Faces.Id, Faces.Quality).where(Faces.PersonId == gul).order_by(Faces.Quality)).all()
    worst, best = faces[0][0], faces[-1][0]
    assert persons.set_cover(world.sessions, gul, worst) == worst
    # a later operation on the person keeps the user's choice
    persons.rename(world.sessions, gul, "Abdullah")
    assert persons.get_person(world.sessions, gul).person.cover_face == worst
    with pytest.raises(RequestError, match="not a face of person"):
        persons.set_cover(world.sessions, gul, [f for f in _all_faces(world) if f not in dict(faces)][0])
    # the face leaves: the best face takes over
    persons.move_faces(world.sessions, [worst], None)
    with world.sessions() as s:
        assert s.scalar(select(Persons.CoverFaceId).where(Persons.Id == gul)) == best
    assert persons.set_cover(world.sessions, gul, None) == best


def _all_faces(w: World) -> list[int]:
    with w.sessions() as s:
        return list(s.scalars(select(Faces.Id)))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, _dirs, names in os.walk(root):
        for n in names:
            p = Path(folder) / n
            st = p.lstat()
            out[p.relative_to(root).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return out


def changed(before: dict, after: dict) -> dict[str, set[str]]:
    return {"added": set(after) - set(before), "removed": set(before) - set(after),
            "rewritten": {p for p in set(before) & set(after) if before[p] != after[p]}}


def validate(root: Path) -> dict:
    summary = json.loads((root / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    chips = [json.loads(p.read_text()) for p in root.glob("*/faces/face_*.json")]
    for chip in chips:
        jsonschema.validate(chip, CHIP_SCHEMA)
        assert (root / chip["file"]).is_file()
    assert sum(p["faces"] for p in summary["persons"]) + summary["noise"]["faces"] == len(chips)
    return summary


def person_entry(summary: dict, person_id: int) -> dict:
    return next(p for p in summary["persons"] if p["id"] == person_id)


def test_export_tree_json_and_reexports_change_exactly_what_they_should(world, tmp_path):
    out = tmp_path / "export"
    report = export(world.sessions, world.settings, out)
    assert report.sync.failed == [] and report.persons >= 4
    summary = validate(out)
    gul, agassi, jolie = (main_person(world.sessions, i) for i in (GUL, AGASSI, JOLIE))

    # the tree of one person
    g = person_entry(summary, gul)
    folder = out / g["folder"]
    assert g["folder"] == f"person_{gul}"
    assert len(list((folder / "faces").glob("*.jpg"))) == g["faces"]
    photos = list((folder / "photos").iterdir())
    assert len(photos) == g["photos"] and all(p.is_symlink() and p.resolve().is_file() for p in photos)
    with Image.open(folder / "faces" / f"face_{g['cover']['faceId']}.jpg") as chip:
        assert chip.size == (160, 160)
    with Image.open(out / g["contactSheet"]) as sheet:
        assert sheet.width >= 96 and sheet.height >= 96
    assert [b["rank"] for b in g["best"]] == list(range(1, len(g["best"]) + 1))
    assert [b["score"] for b in g["best"]] == sorted((b["score"] for b in g["best"]), reverse=True)
    assert len(list((folder / "best").iterdir())) == len(g["best"])
    # the EXIF photo's chip carries its metadata
    chips = {json.loads(p.read_text())["sourceFile"]: json.loads(p.read_text())
             for p in out.glob("*/faces/face_*.json")}
    cam = chips[str(world.extra[f"{GUL}_06.jpg"])]
    assert cam["timestamp"] == "2024-01-15T13:24:00+01:00" and cam["timestampSource"] == "exif"
    assert cam["deviceId"] == "Canon EOS R5" and cam["gps"]["latitude"] == pytest.approx(52.52)
    assert chips[str(world.extra["AXIS-W120_2024-01-15.jpg"])]["deviceId"] == "AXIS-W120"
    plain = next(c for src, c in chips.items() if "/exif/" not in src)
    assert plain["timestampSource"] == "file" and plain["timestamp"].endswith("Z")
    # the burst: the same photo twice on one day gives one best photo, not two
    burst = {str(world.extra[f"{JOLIE}_06.jpg"]), str(world.extra[f"{JOLIE}_16.jpg"])}
    jolie_best = {b["sourceFile"] for b in person_entry(summary, jolie)["best"]}
    assert len(jolie_best & burst) == 1
    index = (out / "index.html").read_text()
    assert index.count("contact_sheet.jpg") == len(summary["persons"])

    # nothing changed: nothing rewritten
    before = snapshot(out)
    again = export(world.sessions, world.settings, out)
    assert again.sync.changed == 0 and snapshot(out) == before

    # merge Agassi into Gul: Agassi's chips move (same files), his folder goes; Gul's chip
    # JSONs of the moved faces, his contact sheet, summary and index change; nothing else
    a = person_entry(summary, agassi)
    persons.merge(world.sessions, [gul, agassi], force=True)
    export(world.sessions, world.settings, out)
    diff = changed(before, after := snapshot(out))
    moved_chips = {f"{g['folder']}/faces/{Path(p).name}" for p in before
                   if p.startswith(a["folder"] + "/faces/") and p.endswith(".jpg")}
    assert moved_chips and moved_chips <= diff["added"]
    for new in moved_chips:  # renamed, not written again
        old = f"{a['folder']}/faces/{Path(new).name}"
        assert after[new][0] == before[old][0]
    assert not any(p.startswith(a["folder"] + "/") for p in after)
    # removed: Agassi's folder, and Gul's best photos whose rank changed (the merged
    # person's best N are chosen again from all its faces)
    assert all(p.startswith((a["folder"] + "/", g["folder"] + "/best/")) for p in diff["removed"]), diff["removed"]
    touched = diff["added"] | diff["rewritten"]
    others = [p["folder"] for p in summary["persons"] if p["id"] not in (gul, agassi)]
    assert not any(p.startswith(f + "/") for f in others for p in touched), "another person's files changed"
    assert {"summary.json", "index.html", f"{g['folder']}/contact_sheet.jpg"} <= diff["rewritten"]
    validate(out)

    # hide Jolie: her folder goes; the other persons' files stay as they were
    before = snapshot(out)
    j = person_entry(json.loads((out / "summary.json").read_text()), jolie)
    persons.set_hidden(world.sessions, jolie, True)
    export(world.sessions, world.settings, out)
    diff = changed(before, after := snapshot(out))
    assert diff["added"] == set() and {p for p in before if p.startswith(j["folder"] + "/")} == diff["removed"]
    assert not (out / j["folder"]).exists()
    assert diff["rewritten"] == {"summary.json", "index.html", MANIFEST}

    # move one face to a new person: its chip moves to the new folder
    before = snapshot(out)
    face = int(re.search(r"face_(\d+)", next(p for p in before if p.startswith(f"person_{gul}/faces/")
                                              and p.endswith(".jpg"))).group(1))
    new = persons.move_faces(world.sessions, [face], None).person_id
    with world.sessions() as s:
        new = s.scalar(select(Faces.PersonId).where(Faces.Id == face))
    export(world.sessions, world.settings, out)
    after = snapshot(out)
    assert f"person_{new}/faces/face_{face}.jpg" in after
    assert after[f"person_{new}/faces/face_{face}.jpg"][0] == before[f"person_{gul}/faces/face_{face}.jpg"][0]
    assert f"person_{gul}/faces/face_{face}.jpg" not in after
    validate(out)


HOSTILE = ["<script>alert(1)</script>", "same", "same", "../../escape", "a/b\\c", "CON", "bell\x07\x1b[31m"]


def test_hostile_names_stay_inside_and_never_collide(world, tmp_path):
    with world.sessions() as s:
        ids = list(s.scalars(select(Persons.Id).order_by(Persons.Id)))
    assert len(ids) >= 4
    for pid, name in zip(ids, HOSTILE):
        persons.rename(world.sessions, pid, name)
    out = tmp_path / "export"
    export(world.sessions, world.settings, out)
    summary = validate(out)
    folders = [p["folder"] for p in summary["persons"]]
    assert len(folders) == len(set(folders))
    for f in folders:
        assert (out / f).resolve().parent == out.resolve()
        assert re.fullmatch(r"person_\d+(_[\w-]+)?", f), f
    assert not (tmp_path / "escape").exists()
    index = (out / "index.html").read_text()
    assert "<script>alert" not in index and "&lt;script&gt;" in index
    names = [p["name"] for p in summary["persons"]]
    assert "../../escape" in names and names.count("same") == 2  # the names themselves are kept, in the data


def test_export_command_copy_filter_and_refusal(world, tmp_path, cli_factory):
    cli = cli_factory(world.url)
    gul = main_person(world.sessions, GUL)
    out = tmp_path / "copy"
    r = cli("--export", str(out), "--persons", str(gul), "--copy",
            THUMBNAIL_SAVE_PATH=str(world.settings.thumbnail_path))
    assert r.returncode == 0, r.stderr
    summary = validate(out)
    assert [p["id"] for p in summary["persons"]] == [gul] and summary["noise"]["faces"] == 0
    photos = list((out / summary["persons"][0]["folder"] / "photos").iterdir())
    assert photos and all(p.is_file() and not p.is_symlink() for p in photos)

    foreign = tmp_path / "holiday"
    foreign.mkdir()
    (foreign / "beach.jpg").write_bytes(b"mine")
    r = cli("--export", str(foreign))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert os.listdir(foreign) == ["beach.jpg"]
    r = cli("--export", str(tmp_path / "x"), "--persons", "999999")
    assert r.returncode == 2 and "no visible person" in r.stderr
    with pytest.raises(UsageError):
        export(world.sessions, world.settings, foreign)


def test_a_cover_face_removed_by_detecting_again_is_replaced(world, models):
    from sqlalchemy import update

    from app.services.detect import detect_pending

    gul = main_person(world.sessions, GUL)
    with world.sessions.begin() as s:
        cover, media = s.execute(select(Persons.CoverFaceId, Faces.MediaFileId)
                                 .join(Faces, Faces.Id == Persons.CoverFaceId).where(Persons.Id == gul)).one()
        # the stored box no longer matches what the detector finds: detecting again
        # replaces the face (a new row without a person)
        s.execute(update(Faces).where(Faces.Id == cover).values(BoundingBox='{"x": 0, "y": 0, "w": 5, "h": 5}'))
        s.execute(update(MediaItems).where(MediaItems.MediaFileId == media)
                  .values(IsFacesExtracted=False, Status="pending", Attempts=0))
    assert detect_pending(world.sessions, models[0], world.settings).failed == 0
    with world.sessions() as s:
        assert s.get(Faces, cover) is None
        now = s.scalar(select(Persons.CoverFaceId).where(Persons.Id == gul))
        assert now is not None and now != cover
        assert s.scalar(select(Faces.PersonId).where(Faces.Id == now)) == gul


def test_two_exports_into_one_folder_end_right(world, tmp_path, cli_factory):
    """Issue 27: a --persons export beside a full one left summary.json with one person, and
    every later export called it unchanged. A --persons export into a folder of every
    person is refused; a file that is no longer what the export wrote is written again."""
    cli = cli_factory(world.url)
    env = {"THUMBNAIL_SAVE_PATH": str(world.settings.thumbnail_path)}
    out = tmp_path / "export"
    gul = main_person(world.sessions, GUL)
    assert cli("--export", str(out), **env).returncode == 0
    full = validate(out)
    before = snapshot(out)
    r = cli("--export", str(out), "--persons", str(gul), **env)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "export of every person" in r.stderr, r.stderr
    assert snapshot(out) == before
    # what a --persons export racing a full one left behind, and a user's slips
    partial = tmp_path / "partial"
    assert cli("--export", str(partial), "--persons", str(gul), **env).returncode == 0
    (out / "summary.json").write_bytes((partial / "summary.json").read_bytes())
    chips = sorted(out.glob(f"person_{gul}/faces/face_*.jpg"))
    chips[0].unlink()
    chips[1].write_bytes(b"\xff\xd8 not a chip any more")
    (out / chips[2].relative_to(out).with_suffix(".json")).write_text("{}")
    r = cli("--export", str(out), **env)
    assert r.returncode == 0 and "4 written" in r.stdout, r.stdout + r.stderr
    assert validate(out) == full
    for chip in chips[:2]:
        with Image.open(chip) as im:
            assert im.size == (160, 160)
    r = cli("--export", str(out), **env)
    assert r.returncode == 0 and " 0 written, 0 moved, 0 deleted" in r.stdout, r.stdout


def test_an_export_into_a_folder_another_export_holds_exits_2(world, tmp_path, cli_factory):
    import fcntl

    from app.storage.export_tree import LOCK

    cli = cli_factory(world.url)
    out = tmp_path / "export"
    out.mkdir()
    with open(out / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = cli("--export", str(out), THUMBNAIL_SAVE_PATH=str(world.settings.thumbnail_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == f"error: --export {out}: another export into this folder is running"
    assert os.listdir(out) == [LOCK]
    r = cli("--export", str(out), THUMBNAIL_SAVE_PATH=str(world.settings.thumbnail_path))
    assert r.returncode == 0, r.stderr
    validate(out)


@pytest.mark.parametrize("where, message", [
    ("dangling", "is a symbolic link to .*, which does not exist"),
    ("under_a_file", "cannot create .*: Not a directory"),
])
def test_an_export_folder_that_cannot_be_made_is_one_line(world, tmp_path, cli_factory, where, message):
    if where == "dangling":
        out = tmp_path / "link"
        os.symlink(tmp_path / "unmounted" / "export", out)
    else:
        (tmp_path / "notes.txt").write_text("x")
        out = tmp_path / "notes.txt" / "export"  # as read-only as it gets, even for root
    r = cli_factory(world.url)("--export", str(out), THUMBNAIL_SAVE_PATH=str(world.settings.thumbnail_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert re.fullmatch(f"error: --export: .*{message}.*", line), line


def test_a_full_disk_stops_the_export_with_one_line(world, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "export"
    real = Path.write_bytes
    written = []

    def write_bytes(self, data):
        if out in self.parents and len(written) >= 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(UsageError) as raised:
        export(world.sessions, world.settings, out)
    assert len(str(raised.value).splitlines()) == 1
    assert re.match(rf"--export: cannot write into {re.escape(str(out))}: No space left on device; stopped after "
                    r"\d+ of \d+ files", str(raised.value)), raised.value
    monkeypatch.undo()  # space again: the next export finishes the folder
    assert export(world.sessions, world.settings, out).sync.failed == []
    validate(out)
