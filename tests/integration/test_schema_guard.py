from sqlalchemy import inspect

from app.db import schema
from app.db.engine import make_engine


def test_worker_refuses_a_postgres_database_without_schema(pg_databases, cli_factory):
    url = pg_databases.url(pg_databases.create())
    cli = cli_factory(url)
    res = cli("--status")
    assert res.returncode == 2
    assert "--migrate" in res.stderr and "Traceback" not in res.stderr

    res = cli("--migrate")
    assert res.returncode == 0, res.stderr
    assert "schema upgraded from empty to" in res.stdout
    assert cli("--status").returncode == 0
    assert "already at the latest" in cli("--migrate").stdout


def test_worker_refuses_a_schema_it_does_not_know(pg_url, cli_factory):
    # A newer worker migrated this database to a revision this code has never seen.
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'newer'")
    engine.dispose()
    res = cli_factory(pg_url)("--status")
    assert res.returncode == 2
    assert "newer" in res.stderr and "Traceback" not in res.stderr


def test_embedded_sqlite_default_is_created_on_first_use(cli_factory):
    cli = cli_factory(None)
    res = cli("--status")
    assert res.returncode == 0, res.stderr
    db = cli.cwd / "data" / "faces.db"
    assert db.is_file()
    engine = make_engine(f"sqlite:///{db}")
    assert {"MediaFile", "MediaItems", "Faces", "Persons"} <= set(inspect(engine).get_table_names())
    assert schema.current_revision(engine) == schema.head_revision(f"sqlite:///{db}")
    engine.dispose()


def test_unreachable_database_is_a_clear_error(cli_factory):
    cli = cli_factory("postgresql+psycopg2://postgres@127.0.0.1:1/none?connect_timeout=3")
    res = cli("--status")
    assert res.returncode == 2
    assert "cannot use the database" in res.stderr and "Traceback" not in res.stderr


def test_worker_refuses_a_schema_that_is_behind_until_migrated(empty_db_url, cli_factory):
    schema.upgrade(empty_db_url, "0001")
    cli = cli_factory(empty_db_url)
    res = cli("--status")
    assert res.returncode == 2
    assert "at revision 0001" in res.stderr and "--migrate" in res.stderr
    res = cli("--migrate")
    assert res.returncode == 0 and "upgraded from 0001 to" in res.stdout
    assert cli("--status").returncode == 0
