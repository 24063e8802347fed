"""Real databases for integration tests.

PostgreSQL: TEST_DATABASE_URL when set (any server we may CREATE DATABASE on);
otherwise a testcontainers PostgreSQL when a Docker engine is reachable; otherwise
the PostgreSQL tests fail with a message saying how to provide one.
Each test gets its own database, cloned from a template migrated once per session.
SQLite: a migrated template file copied per test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.db import schema
from app.db.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]
# The labelled dev photos live beside the checkout (../shared); FACES_DEV_DIR overrides.
DATA_CANDIDATES = [
    Path(p) for p in (os.environ.get("FACES_DEV_DIR"),) if p
] + [ROOT.parent / "shared" / "data" / "faces-dev", Path("/work/shared/data/faces-dev")]
HOW_TO = (
    "No PostgreSQL for the integration tests: set TEST_DATABASE_URL to a server URL the "
    "tests may create databases on, e.g. "
    "TEST_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres, "
    "or start a Docker engine so testcontainers can run one."
)


def _docker_postgres() -> Iterator[str] | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return None
    from testcontainers.postgres import PostgresContainer

    def gen() -> Iterator[str]:
        with PostgresContainer("postgres:15-alpine", driver="psycopg2") as pg:
            yield pg.get_connection_url()

    return gen()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    container = _docker_postgres()
    if container is None:
        pytest.fail(HOW_TO, pytrace=False)
    yield from container


class PgDatabases:
    """Creates and drops throw-away databases on one server."""

    def __init__(self, server_url: str):
        self.server = make_url(server_url)
        self.admin: Engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        name = f"fg_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        for name in self.created:
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(pg_server) -> Iterator[PgDatabases]:
    dbs = PgDatabases(pg_server)
    try:
        yield dbs
    finally:
        dbs.close()


@pytest.fixture(scope="session")
def pg_template(pg_databases) -> str:
    name = pg_databases.create()
    schema.upgrade(pg_databases.url(name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "faces.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


def _pg_url(pg_databases: PgDatabases, template: str | None) -> str:
    return pg_databases.url(pg_databases.create(template))


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request, tmp_path) -> str:
    """A fresh, migrated database of each kind."""
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_databases")
        return _pg_url(pg, request.getfixturevalue("pg_template"))
    path = tmp_path / "faces.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_databases, pg_template) -> str:
    """A fresh, migrated PostgreSQL database (for PostgreSQL-only behaviour)."""
    return _pg_url(pg_databases, pg_template)


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_db_url(request, tmp_path) -> str:
    """A fresh database with no tables at all."""
    if request.param == "postgresql":
        return _pg_url(request.getfixturevalue("pg_databases"), None)
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@dataclass
class Cli:
    """Runs `python main.py ...` in a child process, the way users run it."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess:
        env = {**self.env, **extra_env}
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture
def cli_factory(tmp_path):
    def make(database_url: str | None) -> Cli:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "SQL_CONNECTION_STRING")}
        if database_url:
            env["DATABASE_URL"] = database_url
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        return Cli(cwd=work, env=env)

    return make


@pytest.fixture
def cli(cli_factory, db_url) -> Cli:
    return cli_factory(db_url)


@pytest.fixture(scope="session")
def faces_dev() -> Path:
    for path in DATA_CANDIDATES:
        if path.is_dir():
            return path
    pytest.fail(
        "the dev data set is missing; looked in " + ", ".join(map(str, DATA_CANDIDATES))
        + " (set FACES_DEV_DIR)", pytrace=False,
    )


@pytest.fixture(scope="module")
def models():
    """The default detector and encoder (FaceNet + SFace), loaded once per test module."""
    from app.config import load_settings
    from app.inference.registry import make_detector, make_encoder

    settings = load_settings({}, env_file=None)
    encoder = make_encoder(settings.embedder, settings.facenet, batch_size=16)
    encoder.load()
    return make_detector(settings.detector), encoder
