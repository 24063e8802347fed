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
- With WEB_TOKEN set, every page but the login form needs the cookie `fg_auth`, an HMAC
  of the token (so it survives a restart and never holds the token itself).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

SESSION_COOKIE = "fg_sid"
AUTH_COOKIE = "fg_auth"
LOOPBACK_NAMES = ("localhost",)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # what a browser on this machine sends as Host


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

    def origin_ok(self, origin: str | None) -> bool:
        """A POST's Origin: absent (an older client; the CSRF token still decides), or an
        http(s) origin on an accepted host. "null" (a sandboxed page, a file) is refused."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(parts.netloc) and self.accepts(parts.netloc)


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
