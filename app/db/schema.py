"""Schema version checks and upgrades, through Alembic."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect

from app.errors import SchemaError

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_TABLES = ("MediaFile", "MediaItems", "Faces", "Persons")


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    # '%' must be doubled for ConfigParser interpolation (passwords may hold it).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # The worker has configured logging already; alembic.ini's would replace it.
    cfg.attributes["configure_logging"] = False
    return cfg


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def is_empty(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return not names & (set(CONTRACT_TABLES) | {"alembic_version"})


def ensure_current(engine: Engine, url: str, auto_create: bool) -> None:
    """Refuse to work on a schema that is behind (or ahead of) this code.

    An empty database is created when `auto_create` is set (the embedded SQLite
    default, so a new user can start with no set-up step).
    """
    if auto_create and is_empty(engine):
        upgrade(url)
        return
    current = current_revision(engine)
    head = head_revision(url)
    if current == head:
        return
    if current is None:
        raise SchemaError(
            "the database has no schema version (not created by this worker); "
            "run `python main.py --migrate` to create the tables"
        )
    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaError(
            f"the database schema is at revision {current}, which this code does not know "
            "(it is newer than this code?); upgrade the worker"
        )
    raise SchemaError(
        f"the database schema is at revision {current} but this code needs {head}; "
        "run `python main.py --migrate`"
    )
