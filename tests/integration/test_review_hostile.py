"""The review page (`--serve`) against what a hostile page, a hostile library or a careless
client sends, through the ASGI app (Starlette's TestClient) on PostgreSQL and SQLite:
files served only when the worker decoded them and they still are images or videos; only
the Host names the server was bound to (DNS rebinding), POSTs only from its own origin;
logins that expire, end at logout and cannot be guessed quickly."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

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

    def client(self, host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000", guard=None,
               peer: tuple[str, int] = ("testclient", 50000), **changes):
        """A client of the page's app as `main.py --serve --host HOST` makes it."""
        from starlette.testclient import TestClient

        from app.web.server import create_app

        app = create_app(replace(self.settings, **changes), self.sessions, host, guard=guard)
        return TestClient(app, base_url=base_url, client=peer)


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


def test_a_photo_changed_since_it_was_decoded_is_not_served_until_detected_again(world, tmp_path):
    """Detection recorded the photo's content hash; a file put in its place since (even one
    whose first bytes are a JPEG's) is not what the worker decoded, so it is not served."""
    from app.pipeline.file_stamp import read_stamp

    client, sessions, library, faces_dev = world
    photo = library / "gore.jpg"
    shutil.copy(_photo(faces_dev), photo)
    media, face = _register(sessions, photo)
    with sessions.begin() as s:
        s.execute(update(MediaItems).where(MediaItems.MediaFileId == media)
                  .values(ContentHash=read_stamp(photo).content_hash))
    assert client.get(f"/photo/{media}").status_code == 200
    original = photo.read_bytes()
    photo.write_bytes(original[:4] + b"root:x:0:0:root:/root:/bin/bash\n" * 10)
    assert client.get(f"/photo/{media}").status_code == 404
    assert client.get(f"/faces/{face}/photo").status_code == 404
    photo.write_bytes(original)
    assert client.get(f"/photo/{media}").status_code == 200


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
    # WEB_ALLOWED_HOSTS=* answers any Host, and still refuses a POST from another site
    every = site.client(web_allowed_hosts=("*",))
    token = _csrf(every, host="photos.example.org")
    got = every.post(f"/persons/{pid}/rename", data={"name": "Mallory", "csrf": token},
                     headers={"origin": "http://evil.example", "host": "photos.example.org"}, follow_redirects=False)
    assert got.status_code == 403 and "another site" in got.text
    got = every.post(f"/persons/{pid}/rename", data={"name": "Al Gore", "csrf": token},
                     headers={"origin": "https://photos.example.org", "host": "photos.example.org"},
                     follow_redirects=False)
    assert got.status_code == 303 and _name(site.sessions, pid) == "Al Gore"


TOKEN = "s3cret-token-0123456789"


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _cookie_header(response, name: str) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith(name + "="))


def _log_in(client, token: str = TOKEN):
    """Post the login form as a browser does: the session cookie and CSRF token of the form
    just loaded (sent by hand: over http the client keeps no Secure cookie)."""
    form = client.get("/login")
    sid = form.cookies.get("fg_sid") or client.cookies.get("fg_sid")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    return client.post("/login", data={"token": token, "csrf": csrf, "next": "/status"},
                       headers={"cookie": f"fg_sid={sid}"}, follow_redirects=False)


def test_a_login_is_a_signed_session_with_an_end(site):
    client = site.client(web_token=TOKEN)
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert 'action="/logout"' not in client.get("/login").text
    got = _log_in(client)
    assert got.status_code == 303 and got.headers["location"] == "/status"
    cookie = _cookie_header(got, "fg_auth").lower()
    assert "max-age=43200" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert TOKEN.lower() not in cookie
    page = client.get("/")
    assert page.status_code == 200 and 'action="/logout"' in page.text  # the layout offers to log out
    # the cookie the page used to set, computable from the token alone, is no login
    old = hmac.new(TOKEN.encode(), b"facegroup review page", hashlib.sha256).hexdigest()
    stranger = site.client(web_token=TOKEN)
    stranger.cookies.set("fg_auth", old)
    assert stranger.get("/status", follow_redirects=False).status_code == 303
    # nor does a login outlive the server that gave it
    again = site.client(web_token=TOKEN)
    again.cookies.set("fg_auth", client.cookies.get("fg_auth"))
    assert again.get("/status", follow_redirects=False).status_code == 303
    assert 'action="/logout"' not in site.client().get("/").text  # no login, no logout


def test_a_login_expires(site):
    from app.web.security import Guard

    clock = Clock()
    client = site.client(web_token=TOKEN, web_session_hours=2,
                         guard=Guard(TOKEN, session_hours=2, clock=clock))
    got = _log_in(client)
    assert "max-age=7200" in _cookie_header(got, "fg_auth").lower()
    assert client.get("/status", follow_redirects=False).status_code == 200
    clock.now += 2 * 3600 + 1
    assert client.get("/status", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_for_good(site):
    client = site.client(web_token=TOKEN)
    _log_in(client)
    cookie = client.cookies.get("fg_auth")
    page = client.get("/")
    token = re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page.text).group(1)
    assert client.post("/logout", follow_redirects=False).status_code == 403  # CSRF-checked like every POST
    got = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert got.status_code == 303 and got.headers["location"] == "/login"
    assert 'fg_auth=""' in _cookie_header(got, "fg_auth") and "max-age=0" in _cookie_header(got, "fg_auth").lower()
    client.cookies.set("fg_auth", cookie)  # a copy of the cookie kept from before
    assert client.get("/status", follow_redirects=False).status_code == 303


def test_wrong_tokens_are_slowed_then_refused(site):
    from app.web.security import WRONG_TOKEN_DELAY_SECONDS, WRONG_TOKEN_LIMIT, Guard

    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    client = site.client(web_token=TOKEN, guard=Guard(TOKEN, sleep=sleep))
    for guess in range(WRONG_TOKEN_LIMIT):
        got = _log_in(client, f"guess-{guess:020d}")
        assert got.status_code == 403 and "Wrong token" in got.text
    assert waits == [WRONG_TOKEN_DELAY_SECONDS] * WRONG_TOKEN_LIMIT
    got = _log_in(client)  # the 6th try: refused without looking, even the right token
    assert got.status_code == 429 and int(got.headers["retry-after"]) > 0
    assert got.text.startswith("refused: too many wrong tokens") and "\n" not in got.text.strip()
    assert "fg_auth" not in got.headers.get("set-cookie", "")
    assert len(waits) == WRONG_TOKEN_LIMIT
    other = site.client(web_token=TOKEN, guard=Guard(TOKEN, sleep=sleep))  # a fresh server
    assert _log_in(other).status_code == 303


def test_cookies_are_secure_behind_https(site):
    secure = site.client(web_token=TOKEN, base_url="https://127.0.0.1")
    assert "secure" in _cookie_header(_log_in(secure), "fg_auth").lower()
    assert secure.get("/status").status_code == 200
    # a local proxy (nginx on this machine) saying the browser came over https is believed
    proxied = site.client(web_token=TOKEN, peer=("127.0.0.1", 40000))
    proxied.headers["x-forwarded-proto"] = "https"
    assert "secure" in _cookie_header(_log_in(proxied), "fg_auth").lower()
    # anyone else saying so is not
    spoofed = site.client(web_token=TOKEN, peer=("192.168.1.9", 40000))
    spoofed.headers["x-forwarded-proto"] = "https"
    assert "secure" not in _cookie_header(_log_in(spoofed), "fg_auth").lower()


BIG = "1" + "0" * 20  # past what SQLite's driver can bind (2**63)


def test_nul_characters_are_refused_with_one_line(site):
    pid = _person(site.sessions)
    client = site.client()
    token = _csrf(client)
    got = client.post(f"/persons/{pid}/rename", data={"name": "Al\x00Gore", "csrf": token}, follow_redirects=False)
    assert got.status_code == 400 and got.text == "refused: a form field holds a NUL character"
    assert _name(site.sessions, pid) is None
    for url in ("/api/names?q=%00", "/api/names?q=Al%00", "/?show=%00", "/history?limit=1%00", "/unassigned?%00=1"):
        got = client.get(url)
        assert got.status_code == 400 and got.text == "refused: a NUL character in the query", url


def test_page_numbers_and_limits_out_of_range_are_clamped(site, faces_dev):
    client = site.client()
    photo = site.library / "gore.jpg"
    shutil.copy(_photo(faces_dev), photo)
    _, face = _register(site.sessions, photo)
    for page in (BIG, "1e20", "-5", "0", "9" * 5000):
        got = client.get(f"/unassigned?page={page}")
        assert got.status_code == 200 and f'data-id="{face}"' in got.text, page  # the last page, shown
        assert client.get(f"/?page={page}").status_code == 200, page
    assert client.get(f"/history?limit={BIG}").status_code == 200


def test_ids_too_large_or_not_ascii_are_not_found_or_refused(site):
    client = site.client()
    token = _csrf(client)
    for url in (f"/persons/{BIG}", f"/persons/{BIG}/split", f"/thumb/{BIG}", f"/photo/{BIG}", f"/faces/{BIG}/photo"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/persons/{BIG}/rename", data={"name": "x", "csrf": token}).status_code == 404
    posts = (("/faces/move", {"face_id": BIG, "to": "new"}), ("/faces/move", {"face_id": "²", "to": "new"}),
             ("/faces/move", {"face_id": "1", "to": "new", "from": BIG}), ("/undo", {"op": BIG}),
             ("/faces/reject", {"face_id": "1", "from": "x"}), ("/persons/merge", {"person_id": ["1", BIG]}))
    for path, form in posts:
        got = client.post(path, data={**form, "csrf": token}, follow_redirects=False)
        assert got.status_code == 303, (path, form)
        assert "is not an id" in unquote(got.cookies.get("fg_flash")), (path, form)  # the page's error line


def test_forms_too_large_or_malformed_are_refused_before_parsing(site):
    from app.web.security import MAX_FORM_BYTES, MAX_FORM_FIELDS

    pid = _person(site.sessions)
    client = site.client()
    token = _csrf(client)
    url = f"/persons/{pid}/rename"
    many = "&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS + 1))
    got = client.post(url, content=f"csrf={token}&name=A&{many}",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert got.status_code == 400 and got.text.startswith("refused: a bad form: Too many fields"), got.text
    # a field far past the limit: refused by its declared length, and when it declares none
    # (sent in chunks), once the bytes counted pass the limit
    huge = b"csrf=" + token.encode() + b"&name=" + b"a" * (MAX_FORM_BYTES + 1)
    got = client.post(url, content=huge, headers={"content-type": "application/x-www-form-urlencoded"})
    assert got.status_code == 413 and got.text == f"refused: a form of more than {MAX_FORM_BYTES} bytes"
    got = client.post(url, content=iter([huge[:1000], huge[1000:]]),
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert "content-length" not in got.request.headers and got.status_code == 413
    got = client.post(url, content=b"--x\r\n", headers={"content-type": "multipart/form-data", "x-csrf-token": token})
    assert got.status_code == 400 and got.text == "refused: a bad form: Missing boundary in multipart."
    got = client.post(url, files={"name": ("a.txt", b"file")}, data={"csrf": token})  # no files taken
    assert got.status_code == 400 and "Too many files" in got.text
    assert _name(site.sessions, pid) is None
    got = client.post(url, files={"name": (None, "Al Gore")}, data={"csrf": token}, follow_redirects=False)
    assert got.status_code == 303 and _name(site.sessions, pid) == "Al Gore"  # a multipart form within the limits


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("--serve", "--port", str(port), timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --serve: cannot listen on 127.0.0.1:{port}: address already in use")
    assert "Traceback" not in done.stderr and "Errno" not in done.stderr
