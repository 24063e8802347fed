"""The worker's database connections are terminated mid-run: one warning line each, the
work retried on a new connection, nothing charged to the items, nothing lost."""
import signal
import subprocess
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db.engine import APPLICATION_NAME, make_engine
from tests.integration.conftest import ROOT
from tests.integration.helpers import faces_by_media, install_work_audit, items_by_path, work_audit


def _terminator(pg_url: str):
    """Kills every connection of the worker (by its application_name) to this database."""
    engine = create_engine(pg_url, connect_args={"application_name": "storm"}, isolation_level="AUTOCOMMIT")
    database = make_url(pg_url).database

    def kill() -> int:
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND application_name = :app"), {"db": database, "app": APPLICATION_NAME}).scalar()

    return engine, kill


def _slow_store(engine, item_id: int) -> None:
    """Storing this item takes 2 s (a trigger sleeps), so its store transaction can be
    killed half-way, as in a real outage."""
    with engine.begin() as conn:
        conn.execute(text(f"""CREATE FUNCTION slow_store() RETURNS trigger AS $$ BEGIN
            IF NEW."Id" = {item_id} AND NEW."IsFacesExtracted" THEN PERFORM pg_sleep(2); END IF;
            RETURN NEW; END; $$ LANGUAGE plpgsql"""))
        conn.execute(text('CREATE TRIGGER slow_store BEFORE UPDATE ON "MediaItems" '
                          "FOR EACH ROW EXECUTE FUNCTION slow_store()"))


def _kill_while_storing(storm_engine, database: str, times: int, timeout: float) -> int:
    killed, deadline = 0, time.time() + timeout
    while killed < times and time.time() < deadline:
        with storm_engine.connect() as conn:
            killed += conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :db "
                "AND application_name = :app AND wait_event = 'PgSleep'"),
                {"db": database, "app": APPLICATION_NAME}).scalar()
        time.sleep(0.05)
    return killed


def _storm(kill, seconds: float, every: float) -> int:
    killed, end = 0, time.time() + seconds
    while time.time() < end:
        killed += kill()
        time.sleep(every)
    return killed


def test_watch_survives_connections_being_terminated(pg_url, cli_factory, faces_dev, tmp_path):
    cli = cli_factory(pg_url)
    for folder in sorted(p for p in faces_dev.iterdir() if p.is_dir() and p.name != "group")[:10]:
        assert cli("--ingest", str(folder)).returncode == 0
    engine = make_engine(pg_url)
    install_work_audit(engine)
    total = len(items_by_path(engine))
    slow_item = sorted(i.Id for i in items_by_path(engine).values())[total // 3]
    _slow_store(engine, slow_item)
    storm_engine, kill = _terminator(pg_url)
    watcher = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--watch"], cwd=cli.cwd,
        env={**cli.env, "WATCH_INTERVAL_SECONDS": "0.5", "DETECT_BATCH_SIZE": "4", "MODEL_THREADS": "1",
             "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # twice half-way through storing a batch, then let it through
        assert _kill_while_storing(storm_engine, make_url(pg_url).database, times=2, timeout=120) == 2
        killed = _storm(kill, seconds=4, every=0.1)
        assert killed > 0
        # one more blow later, while it works or idles
        time.sleep(1)
        killed += kill()
        deadline = time.time() + 180
        while time.time() < deadline and not all(i.IsFacesExtracted for i in items_by_path(engine).values()):
            time.sleep(0.5)
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=120)
        storm_engine.dispose()
    assert watcher.poll() == 0, err[-3000:]
    assert "Traceback" not in err and "PendingRollbackError" not in err
    assert err.count("database connection lost while storing a detection batch") >= 1
    items = items_by_path(engine).values()
    assert all(i.IsFacesExtracted and i.Status == "done" for i in items)
    assert all(i.Attempts == 0 and i.LastError is None for i in items), "an item was charged for the outage"
    done = work_audit(engine)["detected"]
    assert len(done) == total and set(done.values()) == {1}
    faces = faces_by_media(engine)
    assert all(len(faces.get(i.MediaFileId, [])) == i.FaceCount for i in items)
    on_disk = {p.name for p in (tmp_path / "thumbs").rglob("*.jpg")}
    assert {f.ThumbnailPath.rsplit("/", 1)[1] for fs in faces.values() for f in fs} <= on_disk
    engine.dispose()


def test_one_shot_run_exits_2_with_one_line_when_the_database_stays_away(pg_url, cli_factory, faces_dev):
    cli = cli_factory(pg_url)
    assert cli("--ingest", str(faces_dev / "Al_Gore")).returncode == 0
    engine = make_engine(pg_url)
    _slow_store(engine, min(i.Id for i in items_by_path(engine).values()))
    storm_engine, _ = _terminator(pg_url)
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--db"], cwd=cli.cwd,
        env={**cli.env, "MODEL_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:  # every try to store the first batch is cut off
        _kill_while_storing(storm_engine, make_url(pg_url).database, times=5, timeout=120)
        out, err = worker.communicate(timeout=120)
    finally:
        storm_engine.dispose()
    assert worker.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: database connection lost while storing")
    with engine.begin() as conn:
        conn.execute(text('DROP TRIGGER slow_store ON "MediaItems"'))
    # the worker handed its batch back on the way out: a rerun does it all, nothing charged
    res = cli("--db")
    assert res.returncode == 0, res.stderr
    items = items_by_path(engine).values()
    assert all(i.IsFacesExtracted and i.Attempts == 0 for i in items)
    engine.dispose()
