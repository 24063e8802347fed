"""The review page's guards (app/web/security.py)."""
import asyncio
import hashlib
import hmac

from app.web.security import (WRONG_TOKEN_DELAY_SECONDS, WRONG_TOKEN_LIMIT, WRONG_TOKEN_WINDOW_SECONDS, Guard, Hosts,
                              host_name, is_loopback, local_path, over_https)


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.org", "::"))


def test_csrf_token_belongs_to_its_session_and_server():
    guard, other = Guard(None), Guard(None)
    token = guard.csrf_for("session-a")
    assert guard.csrf_ok("session-a", token)
    assert not guard.csrf_ok("session-b", token)
    assert not guard.csrf_ok("session-a", other.csrf_for("session-a"))  # another server's key
    assert not guard.csrf_ok(None, token) and not guard.csrf_ok("session-a", None) and not guard.csrf_ok("session-a", "")


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


TOKEN = "s3cret-token-0123456789"


def test_login_token_and_session_cookie():
    open_ = Guard(None)
    assert not open_.login_required and open_.authenticated(None)
    guard = Guard(TOKEN)
    assert guard.login_required and not guard.authenticated(None) and not guard.authenticated(TOKEN)
    assert guard.token_ok(TOKEN) and not guard.token_ok(TOKEN + "x") and not guard.token_ok(None)
    cookie = guard.login()
    assert guard.authenticated(cookie) and TOKEN not in cookie
    assert not Guard(TOKEN).authenticated(cookie)  # another start of the server: log in again
    # the old cookie, HMAC(token, constant), is no login: it was computable from the token
    old = hmac.new(TOKEN.encode(), b"facegroup review page", hashlib.sha256).hexdigest()
    assert not guard.authenticated(old)
    assert not guard.authenticated(("B" if cookie[0] == "A" else "A") + cookie[1:])  # another session id


def test_a_session_ends_after_its_hours_and_at_logout():
    clock = Clock()
    guard = Guard(TOKEN, session_hours=1, clock=clock)
    cookie, other = guard.login(), guard.login()
    assert guard.session_seconds == 3600
    clock.now += 3599
    assert guard.authenticated(cookie)
    clock.now += 2
    assert not guard.authenticated(cookie) and not guard.authenticated(other)
    cookie, other = guard.login(), guard.login()
    guard.logout(cookie)
    assert not guard.authenticated(cookie) and guard.authenticated(other)  # only that session ends


def test_wrong_tokens_wait_and_then_are_limited_per_address():
    clock, waits = Clock(), []

    async def sleep(seconds):
        waits.append(seconds)

    guard = Guard(TOKEN, clock=clock, sleep=sleep)
    for _ in range(WRONG_TOKEN_LIMIT):
        assert guard.locked_out("10.0.0.1") is None
        asyncio.run(guard.wrong_token("10.0.0.1"))
        clock.now += 1
    assert waits == [WRONG_TOKEN_DELAY_SECONDS] * WRONG_TOKEN_LIMIT and WRONG_TOKEN_DELAY_SECONDS >= 0.5
    wait = guard.locked_out("10.0.0.1")
    assert wait == WRONG_TOKEN_WINDOW_SECONDS - WRONG_TOKEN_LIMIT
    assert guard.locked_out("10.0.0.2") is None  # another address has its own tries
    clock.now += wait
    assert guard.locked_out("10.0.0.1") is None  # the oldest wrong token left the window


def test_https_seen_directly_or_from_a_local_proxy():
    assert over_https("https", None, "192.168.1.9")
    assert over_https("http", "https", "127.0.0.1") and over_https("http", "HTTPS", "::1")
    assert not over_https("http", "https", "192.168.1.9")  # anyone can send the header
    assert not over_https("http", None, "127.0.0.1") and not over_https("http", "http", "127.0.0.1")


def test_redirects_stay_on_this_server():
    assert local_path("/persons/3?x=1") == "/persons/3?x=1"
    for bad in ("//evil.example/", "https://evil.example/", "javascript:alert(1)", "/\\evil", "", None):
        assert local_path(bad) == "/"


def test_media_type_comes_from_the_first_bytes():
    from app.services.review import media_type_of

    assert media_type_of(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert media_type_of(b"\x89PNG\r\n\x1a\n\x00") == "image/png"
    assert media_type_of(b"GIF89a..") == "image/gif"
    assert media_type_of(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert media_type_of(b"P5\n640 480\n255\n") == "image/x-portable-graymap"
    assert media_type_of(b"\x00\x00\x00\x20ftypisom") == "video/mp4"
    assert media_type_of(b"\x00\x00\x00\x14ftypqt  ") == "video/quicktime"
    assert media_type_of(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\x82\x84webm") == "video/webm"
    assert media_type_of(b"RIFF\x00\x00\x00\x00AVI LIST") == "video/x-msvideo"
    assert media_type_of(b"\x00\x00\x00\x08wide\x00\x00\x00\x00") == "video/quicktime"  # what video.py decodes
    for other in (b"", b"root:x:0:0:root:/root:/bin/bash\n", b"PK\x03\x04", b"Photo", b"%PDF-1.7"):
        assert media_type_of(other) is None, other


def test_host_names_and_origins():
    assert [host_name(h) for h in ("Example.org:8000", "[::1]:80", "::1", "[::1]", "localhost.", "127.0.0.1:8")] == [
        "example.org", "[::1]", "[::1]", "[::1]", "localhost", "127.0.0.1"]
    hosts = Hosts("192.168.1.5", ("photos.example.org",))
    assert all(hosts.accepts(h) for h in ("192.168.1.5:8000", "localhost", "127.0.0.1:1", "[::1]:2",
                                         "Photos.Example.org"))
    refused = (None, "", "evil.example", "192.168.1.6", "[::2]", "photos.example.org.evil")
    assert not any(hosts.accepts(h) for h in refused)
    assert all(hosts.origin_ok(o, "localhost") for o in (None, "http://localhost:8000", "https://192.168.1.5"))
    refused = ("null", "http://evil.example", "file:///x", "ws://localhost", "http://")
    assert not any(hosts.origin_ok(o, "localhost") for o in refused)
    every = Hosts("127.0.0.1", ("*",))
    assert every.accepts("anything.example")
    # "*" takes any Host, but a POST must still come from a page of the same site
    assert every.origin_ok("http://anything.example:8377", "anything.example:8377")
    assert not every.origin_ok("http://evil.example", "anything.example:8377")
