"""The review page (`--serve`) against what a hostile page, a hostile library or a careless
client sends, through the ASGI app (Starlette's TestClient) on PostgreSQL and SQLite:
files served only when the worker decoded them and they still are images or videos."""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from app.config import load_settings
from app.db.engine import session_factory
from app.db.models import STATUS_DONE, Faces, MediaFile, MediaItems

PHOTO = ("Al_Gore", 0)  # a dev photo: (identity, index)


@pytest.fixture
def world(db_url, engine, tmp_path, faces_dev):
    from starlette.testclient import TestClient

    from app.web.server import create_app

    sessions = session_factory(engine)
    settings = replace(load_settings({}, env_file=None), database_url=db_url,
                       thumbnail_path=tmp_path / "thumbs")
    library = tmp_path / "lib"
    library.mkdir()
    with TestClient(create_app(settings, sessions), base_url="http://127.0.0.1") as client:
        yield client, sessions, library, faces_dev


def _photo(faces_dev: Path) -> Path:
    name, index = PHOTO
    return sorted((faces_dev / name).iterdir())[index]


def _register(sessions, path: Path, done: bool = True) -> tuple[int, int]:
    """A MediaFile row for `path` as given (a link stays a link), its MediaItems row done
    (as the worker leaves a photo it decoded) or pending, and one face in it: (media id, face id)."""
    with sessions.begin() as s:
        media = MediaFile(FilePath=str(path), FileName=path.name, Extensions=path.suffix.lower())
        s.add(media)
        s.flush()
        s.add(MediaItems(MediaFileId=media.Id, IsFacesExtracted=done, Status=STATUS_DONE if done else "pending"))
        face = Faces(MediaFileId=media.Id, BoundingBox='{"x": 1, "y": 1, "w": 10, "h": 10}')
        s.add(face)
        s.flush()
        return media.Id, face.Id


def test_a_decoded_photo_is_served_as_what_its_bytes_are(world):
    client, sessions, library, faces_dev = world
    photo = library / "gore.jpg"
    shutil.copy(_photo(faces_dev), photo)
    media, face = _register(sessions, photo)
    for url in (f"/photo/{media}", f"/faces/{face}/photo"):
        got = client.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg", url
        assert got.content == photo.read_bytes()
    # a PNG named .jpg goes out as a PNG: the type comes from the bytes, not the name
    from PIL import Image

    png = library / "really-a-png.jpg"
    Image.open(photo).save(png, "PNG")
    media, _ = _register(sessions, png)
    got = client.get(f"/photo/{media}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == png.read_bytes()


def test_a_photo_not_decoded_yet_is_not_served(world):
    client, sessions, library, faces_dev = world
    photo = library / "gore.jpg"
    shutil.copy(_photo(faces_dev), photo)
    media, face = _register(sessions, photo, done=False)
    assert client.get(f"/photo/{media}").status_code == 404
    assert client.get(f"/faces/{face}/photo").status_code == 404
    with sessions.begin() as s:  # the worker decodes it
        s.execute(update(MediaItems).where(MediaItems.MediaFileId == media)
                  .values(IsFacesExtracted=True, Status=STATUS_DONE))
    assert client.get(f"/photo/{media}").status_code == 200


def test_links_and_files_that_are_not_images_are_never_served(world, tmp_path):
    """`ln -s /etc/passwd lib/leak.jpg`, and a photo the worker decoded that was replaced
    by a link, a text file, a directory, a fifo or a device afterwards."""
    client, sessions, library, faces_dev = world
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (library / "leak.jpg").symlink_to(secret)
    (library / "passwd.jpg").symlink_to("/etc/passwd")
    (library / "notes.jpg").write_text("not a photo")
    (library / "empty.jpg").write_bytes(b"")
    (library / "folder.jpg").mkdir()
    os.mkfifo(library / "pipe.jpg")
    (library / "zero.jpg").symlink_to("/dev/zero")
    (library / "real-link.jpg").symlink_to(_photo(faces_dev))  # a link to a photo is fine
    served = {}
    for entry in sorted(library.iterdir()):
        media, face = _register(sessions, entry)
        served[entry.name] = (client.get(f"/photo/{media}").status_code,
                              client.get(f"/faces/{face}/photo").status_code)
    assert served.pop("real-link.jpg") == (200, 200)
    assert served == {name: (404, 404) for name in served}, served
