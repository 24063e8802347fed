"""The review page's guards: the hosts it answers to, login token, CSRF token, safe redirects.

- Hosts: a request is served only when its Host header names the address the server is
  bound to (--host), a localhost form (localhost, 127.0.0.1, [::1]; any port) or a name in
  WEB_ALLOWED_HOSTS ("*": any); anything else gets 400. So a hostile page cannot reach the
  server through DNS rebinding (its requests carry the hostile name). A POST with an
  Origin header must come from such a host too ("null" included: 403).
- A browser gets a random session cookie (`fg_sid`, HttpOnly, SameSite=Strict) on its
  first request; its CSRF token is an HMAC of that cookie under a key made when the
  server starts. Every state-changing request is a POST carrying that token (form field
  `csrf` or header `X-CSRF-Token`); any other POST is refused with 403.
- With WEB_TOKEN set, every page but the login form needs a login: the cookie `fg_auth`,
  a random session id signed (itsdangerous) with a key made when the server starts, which
  the server remembers. It lasts WEB_SESSION_HOURS (the cookie's Max-Age and the
  signature's age), is Secure when the page was reached over https, and ends at logout
  (POST /logout forgets the id) or when the server stops. It never holds the token.
- Requests: a form is read only up to MAX_FORM_BYTES (the declared length checked first,
  then the bytes counted as they come: 413) and MAX_FORM_FIELDS fields, no files; a NUL
  character in a form field or the query, a multipart form without a boundary: 400.
- A wrong token is answered after WRONG_TOKEN_DELAY_SECONDS; after WRONG_TOKEN_LIMIT wrong
  tokens from one address within WRONG_TOKEN_WINDOW_SECONDS, the login answers 429 until
  the oldest of them is that old, without looking at the token.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import deque
from typing import AsyncGenerator, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from itsdangerous import BadData, TimestampSigner
from starlette.datastructures import FormData
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

SESSION_COOKIE = "fg_sid"
AUTH_COOKIE = "fg_auth"
LOOPBACK_NAMES = ("localhost",)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # what a browser on this machine sends as Host
# Guessing the token: each wrong one costs this long (a person mistyping does not notice),
# and at most WRONG_TOKEN_LIMIT tries per address in the window (5 per 5 minutes: a
# 16-character token is out of reach; a person who mistyped waits a few minutes).
WRONG_TOKEN_DELAY_SECONDS = 0.75
WRONG_TOKEN_LIMIT = 5
WRONG_TOKEN_WINDOW_SECONDS = 300.0
# The page's forms are small: the largest is a selection of faces, one field per face
# (`face_id=12345&`, 16 bytes). A person page lists every face of the person, so a
# selection of several thousand faces must still fit; 10,000 fields is 160 KB.
MAX_FORM_FIELDS = 10_000
MAX_FORM_BYTES = 1024 * 1024
FORM_KINDS = ("application/x-www-form-urlencoded", "multipart/form-data")


class Refused(Exception):
    """A request answered with `status` and one line, before any handler sees it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def has_nul(pairs) -> bool:
    """A NUL character in a key or value: no database column stores one (PostgreSQL fails)."""
    return any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in pairs)


async def read_form(request: Request) -> FormData:
    """The posted form within the limits above (an empty one for other content types)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in FORM_KINDS:
        return FormData()
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise Refused(413, f"refused: a form of more than {MAX_FORM_BYTES} bytes")
    body = _counted(request.stream())
    try:
        if kind == "multipart/form-data":
            parser: FormParser | MultiPartParser = MultiPartParser(
                request.headers, body, max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES)
        else:
            parser = FormParser(request.headers, body, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES)
        form = await parser.parse()
    except MultiPartException as exc:  # too many fields, no boundary, a file, broken multipart
        raise Refused(400, f"refused: a bad form: {exc.message}") from None
    finally:
        await body.aclose()
    if has_nul(form.multi_items()):
        raise Refused(400, "refused: a form field holds a NUL character")
    return form


async def _counted(stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The body as it comes, refused once more than MAX_FORM_BYTES came (a body sent in
    chunks declares no length)."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > MAX_FORM_BYTES:
            raise Refused(413, f"refused: a form of more than {MAX_FORM_BYTES} bytes")
        yield chunk


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name part of a Host header or a host setting, lowercase, an IPv6 address in
    brackets: 'Example.org:8000' -> 'example.org', '[::1]:80' and '::1' -> '[::1]'."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[:end + 1] if end > 0 else ""
    if value.count(":") > 1:  # a bare IPv6 address (a setting or --host, never a Host header)
        return f"[{value}]"
    return value.split(":", 1)[0].rstrip(".")


class Hosts:
    """The Host names this server answers to: the bound address, the localhost forms and
    WEB_ALLOWED_HOSTS ("*" accepts any)."""

    def __init__(self, bound: str, allowed: tuple[str, ...] = ()):
        self.any = "*" in allowed
        self.names = frozenset(host_name(h) for h in (bound, *LOCAL_HOSTS, *allowed) if h != "*")

    def accepts(self, host: str | None) -> bool:
        return host is not None and (self.any or host_name(host) in self.names)

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        """A POST's Origin: absent (an older client; the CSRF token still decides), or an
        http(s) origin on a host named here or the request's own Host (so "*", which takes
        any Host, still refuses a page of another site). "null" (a sandboxed page, a file)
        is refused."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        name = host_name(parts.netloc)
        return name in self.names or (host is not None and name == host_name(host))


class _Signer(TimestampSigner):
    """itsdangerous' timestamp signer on the guard's clock (a test moves it on)."""

    def __init__(self, clock: Callable[[], float]):
        super().__init__(secrets.token_bytes(32), salt="facegroup review login")
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class Guard:
    """CSRF tokens and, with a token, logins: one per server start (its keys and the
    sessions it issued live in memory only). Used from the event loop only."""

    def __init__(self, token: str | None, session_hours: float = 12.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self._key = secrets.token_bytes(32)
        self._token = token
        self._clock, self._sleep = clock, sleep
        self._signer = _Signer(clock)
        self.session_seconds = max(1, round(session_hours * 3600))
        self._sessions: dict[str, float] = {}  # session id -> when it ends
        self._wrong: dict[str, deque[float]] = {}  # client address -> times of its recent wrong tokens

    @property
    def login_required(self) -> bool:
        return self._token is not None

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def csrf_for(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, sent: str | None) -> bool:
        return bool(session) and bool(sent) and hmac.compare_digest(self.csrf_for(session), sent)

    def token_ok(self, sent: str | None) -> bool:
        return self._token is not None and sent is not None and hmac.compare_digest(
            hashlib.sha256(sent.encode()).digest(), hashlib.sha256(self._token.encode()).digest())

    # --- logins ---------------------------------------------------------------------

    def login(self) -> str:
        """A new login's cookie value (after a correct token)."""
        now = self._clock()
        self._sessions = {sid: end for sid, end in self._sessions.items() if end > now}
        sid = secrets.token_urlsafe(24)
        self._sessions[sid] = now + self.session_seconds
        return self._signer.sign(sid).decode()

    def _session_of(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            sid = self._signer.unsign(cookie, max_age=self.session_seconds).decode()
        except BadData:  # not ours, tampered with, or too old
            return None
        end = self._sessions.get(sid)
        return sid if end is not None and end > self._clock() else None

    def authenticated(self, cookie: str | None) -> bool:
        return not self.login_required or self._session_of(cookie) is not None

    def logout(self, cookie: str | None) -> None:
        sid = self._session_of(cookie)
        if sid is not None:
            del self._sessions[sid]

    # --- guessing -------------------------------------------------------------------

    def _recent(self, address: str) -> deque[float]:
        since = self._clock() - WRONG_TOKEN_WINDOW_SECONDS
        for addr in list(self._wrong):  # forget what the window left behind
            times = self._wrong[addr]
            while times and times[0] <= since:
                times.popleft()
            if not times:
                del self._wrong[addr]
        return self._wrong.get(address, deque())

    def locked_out(self, address: str) -> int | None:
        """Seconds until `address` may try a token again, when it has used up its tries."""
        recent = self._recent(address)
        if len(recent) < WRONG_TOKEN_LIMIT:
            return None
        return max(1, math.ceil(recent[0] + WRONG_TOKEN_WINDOW_SECONDS - self._clock()))

    async def wrong_token(self, address: str) -> None:
        """Count a wrong token from `address`, then wait (without holding a thread)."""
        self._wrong.setdefault(address, deque()).append(self._clock())
        await self._sleep(WRONG_TOKEN_DELAY_SECONDS)


def over_https(scheme: str, forwarded_proto: str | None, peer: str | None) -> bool:
    """Whether the browser reached the page over https: directly, or through a proxy on
    this machine that says so (X-Forwarded-Proto is believed from a loopback peer only)."""
    if scheme == "https":
        return True
    return (forwarded_proto or "").strip().lower() == "https" and peer is not None and is_loopback(peer)


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go back after a POST: a path on this server only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
