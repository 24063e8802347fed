"""Several workers on one database; --watch; the SQLite one-worker rule."""
import signal
import subprocess
import sys
import time

from app.db.engine import make_engine
from app.worker.sqlite_lock import single_worker
from tests.integration.conftest import ROOT
from tests.integration.helpers import (
    faces_by_media,
    install_work_audit,
    items_by_name,
    items_by_path,
    work_audit,
)


def _spawn(cli, *args, **env):
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args], cwd=cli.cwd,
        env={**cli.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_db_workers_on_postgres_process_each_item_once(pg_url, cli_factory, faces_dev):
    cli = cli_factory(pg_url)
    folders = sorted(p for p in faces_dev.iterdir() if p.is_dir() and p.name != "group")[:12]
    for folder in folders:
        assert cli("--ingest", str(folder)).returncode == 0
    engine = make_engine(pg_url)
    total = len(items_by_path(engine))
    assert total > 100
    install_work_audit(engine)

    env = {"DETECT_BATCH_SIZE": "4", "MODEL_THREADS": "1"}
    workers = [_spawn(cli, "--db", WORKER_ID=f"w{i}", **env) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    done = [int(out.split("detection: ")[1].split(" images")[0]) for out, _ in outputs]
    assert sum(done) == total and min(done) > 0  # both worked, and together did each item once
    items = items_by_path(engine).values()
    assert all(i.IsFacesExtracted and i.Attempts == 0 for i in items)  # no failure, no retry
    done_times = work_audit(engine)["detected"]
    assert sorted(done_times) == sorted(i.Id for i in items) and set(done_times.values()) == {1}
    faces = faces_by_media(engine)
    assert all(len(faces.get(i.MediaFileId, [])) == i.FaceCount for i in items)
    engine.dispose()


def test_second_worker_on_sqlite_is_refused(cli_factory, tmp_path):
    cli = cli_factory(None)
    assert cli("--status").returncode == 0  # creates the embedded database
    db = cli.cwd / "data" / "faces.db"
    with single_worker(f"sqlite:///{db}"):
        res = cli("--db")
    assert res.returncode == 2
    assert "one worker at a time" in res.stderr and "Traceback" not in res.stderr


def test_watch_processes_new_items_and_stops_cleanly(cli, tmp_path, faces_dev):
    watcher = _spawn(cli, "--watch", WATCH_INTERVAL_SECONDS="0.5")
    try:
        photos = tmp_path / "photos"
        photos.mkdir()
        (photos / "a.jpg").write_bytes((faces_dev / "Al_Gore" / "05.jpg").read_bytes())
        time.sleep(2)
        assert cli("--ingest", str(photos)).returncode == 0
        deadline = time.time() + 120
        engine = make_engine(cli.env["DATABASE_URL"])
        while time.time() < deadline:
            items = items_by_name(engine)
            if items and all(i.IsFacesExtracted for i in items.values()):
                break
            time.sleep(0.5)
        assert all(i.IsFacesExtracted for i in items_by_name(engine).values())
        engine.dispose()
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert "stopping after the current image" in err and "Traceback" not in err
    assert "detection: 1 images" in out
