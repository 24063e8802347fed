"""Database URLs: accept the forms people write, use the installed driver, never show a
password.

`postgresql://`, `postgres://`, `postgresql+psycopg2://` and `postgresql+psycopg://` all
mean PostgreSQL through whichever of psycopg2 / psycopg 3 is installed (psycopg2 is a
dependency; SQLAlchemy 2.1 picks psycopg 3 for the bare scheme). SQLite URLs pass as they
are. Errors are plain ValueErrors whose text never contains the password.
"""
from __future__ import annotations

import importlib.util
import re

from sqlalchemy.engine import URL, make_url

EXAMPLES = "postgresql://user:password@host:5432/dbname or sqlite:///path/to/faces.db"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO_SECRET = re.compile(r"(://[^:/@\s]*:)\S*@")  # greedy: a password may hold "@"
_KEY_SECRET = re.compile(r"(?i)\b(password|pwd|passwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^;&\s]*)")
POSTGRES_DRIVERS = ("psycopg2", "psycopg")  # in order of preference


def mask(text: str) -> str:
    """Any connection-string-looking text with its password replaced by ***."""
    return _KEY_SECRET.sub(r"\1\2***", _USERINFO_SECRET.sub(r"\1***@", text))


def display(url: str) -> str:
    """A URL as shown in logs and --status: the password hidden, whatever the form."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return mask(url)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _postgres_driver(asked: str | None) -> str:
    if asked in POSTGRES_DRIVERS and _installed(asked):
        return asked
    if asked not in (None, *POSTGRES_DRIVERS):
        raise ValueError(
            f"the PostgreSQL driver {asked!r} is not supported; write postgresql://... "
            f"(the worker uses {' or '.join(POSTGRES_DRIVERS)})"
        )
    for driver in POSTGRES_DRIVERS:
        if _installed(driver):
            return driver
    raise ValueError("no PostgreSQL driver is installed: pip install psycopg2-binary")


def normalise(url: str) -> str:
    """The SQLAlchemy URL to connect with. Raises ValueError (password-free) if unusable."""
    text = url.strip()
    match = _SCHEME.match(text)
    if not match:
        raise ValueError(
            f"is not a database URL; expected a form like {EXAMPLES} "
            "(ADO.NET / ODBC strings such as 'Server=...;Database=...' are not supported)"
        )
    scheme = match.group(1).lower()
    backend, _, driver = scheme.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("postgresql", "sqlite"):
        raise ValueError(f"the database kind {backend!r} is not supported; use PostgreSQL or SQLite ({EXAMPLES})")
    rest = text[match.end():]
    try:
        parsed: URL = make_url(f"{backend}://{rest}")
        parsed.port  # noqa: B018  (parsed lazily in some versions)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"is not a valid URL ({mask(text)}): {mask(reason)}; expected a form like {EXAMPLES}") from None
    if backend == "postgresql":
        parsed = parsed.set(drivername=f"postgresql+{_postgres_driver(driver or None)}")
    elif driver not in ("", "pysqlite"):
        raise ValueError(f"the SQLite driver {driver!r} is not supported; write sqlite:///path/to/faces.db")
    return parsed.render_as_string(hide_password=False)


def password_of(url: str) -> str | None:
    """The password in a URL, for the log filter that keeps it out of every log line."""
    try:
        return make_url(url).password or None
    except Exception:
        return None
