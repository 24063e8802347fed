"""The review page (`--serve`) against what a hostile page, a hostile library or a careless
client sends, through the ASGI app (Starlette's TestClient) on PostgreSQL and SQLite:
files served only when the worker decoded them and they still are images or videos; only
the Host names the server was bound to (DNS rebinding), POSTs only from its own origin."""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import update

from app.config import Settings, load_settings
from app.db.engine import session_factory
from app.db.models import STATUS_DONE, Faces, MediaFile, MediaItems, Persons

PHOTO = ("Al_Gore", 0)  # a dev photo: (identity, index)


@dataclass
class Site:
    sessions: object
    settings: Settings
    library: Path
    faces_dev: Path

    def client(self, host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000", **changes):
        """A client of the page's app as `main.py --serve --host HOST` makes it."""
        from starlette.testclient import TestClient

        from app.web.server import create_app

        return TestClient(create_app(replace(self.settings, **changes), self.sessions, host), base_url=base_url)


@pytest.fixture
def site(db_url, engine, tmp_path, faces_dev) -> Site:
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "thumbs")
    library = tmp_path / "lib"
    library.mkdir()
    return Site(session_factory(engine), settings, library, faces_dev)


@pytest.fixture
def world(site):
    yield site.client(), site.sessions, site.library, site.faces_dev


def _csrf(client, **headers) -> str:
    page = client.get("/", headers=headers)
    assert page.status_code == 200, page.text
    return re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page.text).group(1)


def _person(sessions) -> int:
    with sessions.begin() as s:
        person = Persons(IsAutomatic=True)
        s.add(person)
        s.flush()
        return person.Id


def _name(sessions, person_id: int) -> str | None:
    with sessions() as s:
        return s.get(Persons, person_id).Name


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


def test_a_foreign_host_is_refused_and_cannot_post(site):
    """DNS rebinding: a hostile page's name resolved to 127.0.0.1 is same-origin with the
    page, so it could read a CSRF token and post with it; the Host header gives it away."""
    pid = _person(site.sessions)
    client = site.client()
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example:80"):
        got = client.get("/", headers={"host": host})
        assert got.status_code == 400 and "WEB_ALLOWED_HOSTS" in got.text and "\n" not in got.text.strip(), host
    token = _csrf(client)  # a token the hostile page could have read, were it served
    got = client.post(f"/persons/{pid}/rename", data={"name": "Mallory", "csrf": token},
                      headers={"host": "evil.example:8000"}, follow_redirects=False)
    assert got.status_code == 400 and _name(site.sessions, pid) is None
    for host in ("localhost:8000", "LOCALHOST", "127.0.0.1", "127.0.0.1:9", "[::1]:8000", "[::1]"):
        assert client.get("/", headers={"host": host}).status_code == 200, host
    got = client.post(f"/persons/{pid}/rename", data={"name": "Al Gore", "csrf": token},
                      headers={"host": "localhost:8000"}, follow_redirects=False)
    assert got.status_code == 303 and _name(site.sessions, pid) == "Al Gore"


def test_the_bound_host_and_allowed_hosts_are_answered(site):
    bound = site.client(host="photos.lan")
    assert bound.get("/", headers={"host": "photos.lan:8000"}).status_code == 200
    assert bound.get("/", headers={"host": "other.lan:8000"}).status_code == 400
    assert site.client(host="::1").get("/", headers={"host": "[::1]:8000"}).status_code == 200
    allowed = site.client(host="0.0.0.0", web_allowed_hosts=("photos.example.org",))
    assert allowed.get("/", headers={"host": "photos.example.org"}).status_code == 200
    assert allowed.get("/", headers={"host": "0.0.0.0:8000"}).status_code == 200
    assert allowed.get("/", headers={"host": "evil.example"}).status_code == 400
    assert site.client(web_allowed_hosts=("*",)).get("/", headers={"host": "any.example"}).status_code == 200


def test_a_post_from_another_origin_is_refused(site):
    pid = _person(site.sessions)
    client = site.client()
    token = _csrf(client)
    for origin in ("http://evil.example", "https://evil.example:8000", "null", "file://", "ftp://localhost",
                   "http://localhost@evil.example"):
        got = client.post(f"/persons/{pid}/rename", data={"name": "Mallory", "csrf": token},
                          headers={"origin": origin}, follow_redirects=False)
        assert got.status_code == 403 and "another site" in got.text, origin
    assert _name(site.sessions, pid) is None
    for origin in ("http://127.0.0.1:8000", "https://localhost"):
        got = client.post(f"/persons/{pid}/rename", data={"name": f"Al Gore {origin[:5]}", "csrf": token},
                          headers={"origin": origin}, follow_redirects=False)
        assert got.status_code == 303 and _name(site.sessions, pid) == f"Al Gore {origin[:5]}", origin
