"""The review page's guards: login token, CSRF token, safe redirects.

- A browser gets a random session cookie (`fg_sid`, HttpOnly, SameSite=Strict) on its
  first request; its CSRF token is an HMAC of that cookie under a key made when the
  server starts. Every state-changing request is a POST carrying that token (form field
  `csrf` or header `X-CSRF-Token`); any other POST is refused with 403.
- With WEB_TOKEN set, every page but the login form needs the cookie `fg_auth`, an HMAC
  of the token (so it survives a restart and never holds the token itself).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

SESSION_COOKIE = "fg_sid"
AUTH_COOKIE = "fg_auth"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, token: str | None):
        self._key = secrets.token_bytes(32)
        self._token = token

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

    def auth_value(self) -> str:
        assert self._token is not None
        return hmac.new(self._token.encode(), b"facegroup review page", hashlib.sha256).hexdigest()

    def token_ok(self, sent: str | None) -> bool:
        return self._token is not None and sent is not None and hmac.compare_digest(
            hashlib.sha256(sent.encode()).digest(), hashlib.sha256(self._token.encode()).digest())

    def authenticated(self, cookie: str | None) -> bool:
        return not self.login_required or (cookie is not None and hmac.compare_digest(cookie, self.auth_value()))


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go back after a POST: a path on this server only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
