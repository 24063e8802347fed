"""A photo that kills the process decoding it (SIGKILL, as the OOM killer would) is found
and failed alone; the rest of its batch goes through. With lane processes (the default)
only the lane process dies and the worker goes on; with the lanes as threads the worker
dies, and a supervisor restarting it finds the photo by trying the dead worker's rows alone."""
import subprocess
import sys
import time
from pathlib import Path

from app.db.engine import make_engine
from tests.integration.helpers import copy_images, items_by_name

CRASHER = Path(__file__).with_name("crashing_worker.py")


def _library(cli, tmp_path, faces_dev, processes: str) -> dict:
    photos = tmp_path / "photos"
    good = copy_images(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:15], photos)
    (photos / "Al_Gore_07b_poison.jpg").write_bytes(good[7].read_bytes())  # in the middle of the batch
    assert cli("--ingest", str(photos)).returncode == 0
    return {**cli.env, "DETECT_BATCH_SIZE": "16", "MAX_ATTEMPTS": "3", "LEASE_SECONDS": "1",
            "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs"),
            "DETECT_PROCESSES": processes}


def test_a_photo_that_kills_its_lane_process_fails_alone_and_the_worker_goes_on(cli, db_url, tmp_path, faces_dev):
    env = _library(cli, tmp_path, faces_dev, "true")
    res = subprocess.run([sys.executable, str(CRASHER), "--db"], cwd=cli.cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    # one run: the poison's three attempts (retried at once) each end a lane process
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 failed" in res.stdout and "killed by SIGKILL" in res.stderr
    engine = make_engine(db_url)
    items = items_by_name(engine)
    engine.dispose()
    poison = items.pop("Al_Gore_07b_poison.jpg")
    assert poison.Status == "failed" and poison.Attempts == 3
    assert "the detection process ended while working on this image (killed by SIGKILL)" in poison.LastError
    assert all(i.IsFacesExtracted and i.Status == "done" and i.Attempts == 0 for i in items.values())


def test_only_the_photo_that_kills_the_worker_is_failed(cli, db_url, tmp_path, faces_dev):
    env = _library(cli, tmp_path, faces_dev, "false")
    runs = []
    for _ in range(8):  # a supervisor restarting the worker each time it dies
        res = subprocess.run([sys.executable, str(CRASHER), "--db"], cwd=cli.cwd, env=env,
                             capture_output=True, text=True, timeout=300)
        runs.append(res)
        if res.returncode >= 0:
            break
        time.sleep(1.2)  # the dead worker's lease runs out (SQLite does not wait for it)
    codes = [r.returncode for r in runs]
    # the batch once, then the poison alone on each of its 3 attempts; the next run gives it up
    assert codes == [-9, -9, -9, -9, 1], codes
    last = runs[-1]
    assert "1 failed" in last.stdout and "poison" in last.stdout + last.stderr
    assert "Traceback" not in last.stderr

    engine = make_engine(db_url)
    items = items_by_name(engine)
    engine.dispose()
    poison = items.pop("Al_Gore_07b_poison.jpg")
    assert poison.Status == "failed" and poison.Attempts == 3 and "likely cause" in poison.LastError
    assert all(i.IsFacesExtracted and i.Status == "done" for i in items.values())
    # each innocent photo was tried alone once after the first death; none is near its limit
    assert all(i.Attempts <= 1 for i in items.values())
    again = subprocess.run([sys.executable, str(CRASHER), "--db"], cwd=cli.cwd, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 images" in again.stdout
