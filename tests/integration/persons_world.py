"""A small library filled by the real pipeline (real dev photos, real models), cloned per
test on PostgreSQL and SQLite: what the person-operation tests work on."""
from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, load_settings
from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile, Persons
from app.services.ingest import register_files
from app.services.recognize import recognize
from app.services.run import detect_and_recognize
from tests.integration.helpers import copy_images

IDENTITIES = ("Abdullah_Gul", "Andre_Agassi", "Angelina_Jolie", "Ari_Fleischer")
FIRST = range(1, 6)  # photos in the library at the start
LATER = (6, 7)  # photos added by tests


def make_photos(faces_dev: Path, folder: Path) -> tuple[list[Path], list[Path]]:
    first = copy_images([faces_dev / i / f"{n:02d}.jpg" for i in IDENTITIES for n in FIRST], folder / "first")
    later = copy_images([faces_dev / i / f"{n:02d}.jpg" for i in IDENTITIES for n in LATER], folder / "later")
    return first, later


def settings_for(url: str, thumbs: Path) -> Settings:
    return replace(load_settings({}, env_file=None), database_url=url, thumbnail_path=thumbs)


def fill(url: str, thumbs: Path, models, paths: list[Path]) -> None:
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        register_files(sessions, paths)
        report = detect_and_recognize(sessions, models[0], models[1], settings_for(url, thumbs))
        assert report.failed == 0
    finally:
        engine.dispose()


@dataclass
class World:
    url: str
    sessions: sessionmaker[Session]
    settings: Settings
    add: Callable[[list[Path]], object]
    recognize: Callable[[bool], object]
    later: list[Path]


def open_world(url: str, thumbs: Path, models, later: list[Path]) -> tuple[World, Callable[[], None]]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = settings_for(url, thumbs)

    def add(paths):
        register_files(sessions, list(paths))
        report = detect_and_recognize(sessions, models[0], models[1], settings)
        assert report.failed == 0
        return report

    def run(rebuild: bool):
        return recognize(sessions, models[1], settings, rebuild=rebuild)

    return World(url, sessions, settings, add, run, later), engine.dispose


def clone_sqlite(template: Path, folder: Path) -> str:
    path = folder / "faces.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


# --- looking at the database ---------------------------------------------------------------

def dump(sessions, at: bool = False) -> tuple[dict, dict]:
    """Every face's person and how it was set (and when, with `at`: a --recluster sets
    AssignedAt again on the faces it gives the same person); every person's row
    (ModifiedAt aside)."""
    with sessions() as s:
        faces = {r[0]: tuple(r[1:] if at else r[1:3]) for r in s.execute(
            select(Faces.Id, Faces.PersonId, Faces.AssignedBy, Faces.AssignedAt))}
        persons = {r[0]: tuple(r[1:]) for r in s.execute(
            select(Persons.Id, Persons.Name, Persons.IsAutomatic, Persons.IsHidden, Persons.CreatedAt))}
    return faces, persons


def identity_of(path: str) -> str:
    return Path(path).name.rsplit("_", 1)[0]


def _main_faces(sessions) -> list[tuple[int, int | None, str]]:
    """(face id, person id, file path) of the largest face of each photo, in face id order
    (some dev photos show other people in the background)."""
    with sessions() as s:
        rows = s.execute(select(Faces.Id, Faces.PersonId, MediaFile.FilePath, Faces.BoundingBox)
                         .join(MediaFile, MediaFile.Id == Faces.MediaFileId).order_by(Faces.Id)).all()
    best: dict[str, tuple] = {}
    for face, person, path, box in rows:
        b = json.loads(box)
        if path not in best or b["w"] * b["h"] > best[path][3]:
            best[path] = (face, person, path, b["w"] * b["h"])
    return sorted((f, p, path) for f, p, path, _ in best.values())


def persons_by_identity(sessions) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for _, pid, path in _main_faces(sessions):
        out[identity_of(path)][pid] += 1
    return out


def faces_of_identity(sessions, identity: str) -> list[tuple[int, int | None]]:
    """(face id, person id) of the identity's faces (each photo's main face), in id order."""
    return [(f, p) for f, p, path in _main_faces(sessions) if identity_of(path) == identity]


def main_person(sessions, identity: str) -> int:
    """The person holding most of the identity's faces."""
    person, _ = persons_by_identity(sessions)[identity].most_common(1)[0]
    assert person is not None, f"{identity} has no person"
    return person


def face_person(sessions, face_id: int) -> int | None:
    with sessions() as s:
        return s.scalar(select(Faces.PersonId).where(Faces.Id == face_id))


def changes(a: tuple[dict, dict], b: tuple[dict, dict]) -> dict:
    """What differs between two dumps: {("face"|"person", id): (in a, in b)}."""
    out = {}
    for kind, x, y in (("face", a[0], b[0]), ("person", a[1], b[1])):
        for key in x.keys() | y.keys():
            if x.get(key) != y.get(key):
                out[(kind, key)] = (x.get(key), y.get(key))
    return out
