"""Lane processes: each detection lane does its photos whole in a process of its own.

Why: in threads, the lanes' Python work (decoding headers and EXIF, cropping, the
detector's pre- and post-processing, thumbnail files) and the worker's own (claiming,
storing) take turns on the one interpreter lock, so on two cores every step of a lane
took 40 to 110 % longer than alone. In a process each lane runs at its own speed and the
worker's thread only claims and stores (bench/pipeline_speed.py, README "Speed").

One pool of `lanes` processes (multiprocessing's spawn: no fork of a process that holds
model threads and database connections), each started on its lane's first photo and kept
while the worker runs, so a `--watch` or `--automate` worker starts them once; one pool
at a time, made again when the settings it was made with change. A process loads the
detector on a session of MODEL_THREADS threads (one by default) and does a photo whole
(app/services/detect.py, PhotoSteps): decode, detector, blur and quality, thumbnail
files, the crops for the embedders. It sends back the outcome (an ItemResult or a
Problem), its step timings and its log records, which are logged here. It never touches
the database.

A process that dies while working on a photo (a crash in a decoder, the kernel's
out-of-memory killer), or takes more than DETECT_TIMEOUT_SECONDS on it (a hung decoder:
it is killed), fails that photo alone, with the reason (retried like any failure,
up to MAX_ATTEMPTS); the lane's next photo starts a new process. While the worker is
stopping, or when SIGTERM ended the process (a service manager stopping the worker and
its processes), the photo is handed back instead. The processes ignore Ctrl-C (it reaches
the worker too, which finishes the photos in progress); they end when the worker closes
the pool or is gone.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import queue
import signal
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.config import Settings
from app.inference.detector import Detector
from app.pipeline.encode import Cropper
from app.repositories.media import ClaimedItem
from app.services.work_queue import Problem
from app.stopping import StopFlag

log = logging.getLogger("app.detection")
_SPAWN = multiprocessing.get_context("spawn")
START_SECONDS = 120.0  # a process that is not ready by then (imports, model) is a failure


class LaneStartError(RuntimeError):
    """A lane process could not start (it loads the same model the worker loaded, so this
    is the machine's fault, not a photo's): the run ends and its rows are handed back."""


class LaneProcess:
    def __init__(self, settings: Settings):
        self.conn, child = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=serve, args=(child, settings), name="detect-lane", daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, message: object, timeout: float) -> object:
        """Send one photo and wait for its outcome; EOFError or OSError when the process
        died, TimeoutError (the process killed) when it took longer than `timeout`."""
        if not self.ready:
            if not self.conn.poll(START_SECONDS):
                self.close()
                raise LaneStartError(f"a detection lane process did not start within {START_SECONDS:.0f} s")
            try:
                kind, detail = self.conn.recv()
            except (EOFError, OSError):  # it died while starting: not this photo's fault
                kind, detail = "failed", self.ending()[0]
            if kind != "ready":
                self.close()
                raise LaneStartError(f"a detection lane process could not start: {detail}")
            self.ready = True
        self.conn.send(message)
        if not self.conn.poll(timeout):
            self.process.kill()
            raise TimeoutError
        return self.conn.recv()

    def ending(self) -> tuple[str, bool]:
        """How the process ended (after call() failed), for the photo's reason, and whether
        it was told to stop (SIGTERM: a service manager stopping the worker and its
        processes), which is not the photo's fault."""
        self.process.join(5)
        code = self.process.exitcode
        self.close()
        if code is None:
            return "it stopped answering", False
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}", -code == signal.SIGTERM
        return f"exit code {code}", False

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
        self.conn.close()


class LanePool:
    """`count` lane processes, each used by one lane thread at a time."""

    def __init__(self, settings: Settings, count: int):
        # the settings without the per-run ones (pool_for): the thumbnail folder and how
        # faces are cut for the embedders come with each photo
        self.settings, self.count = settings, count
        self.idle: queue.SimpleQueue[LaneProcess | None] = queue.SimpleQueue()  # None: not started
        for _ in range(count):
            self.idle.put(None)

    def run(self, item: ClaimedItem, thumbnail_path: Path, cropper: Cropper | None, timings,
            stop: StopFlag | None):
        """The photo's outcome (ItemResult or Problem) from a lane process, its thumbnails
        written under `thumbnail_path` and, with a cropper, its faces' crops for the
        embedders cut; None when its process ended while the worker is stopping (the photo
        is handed back)."""
        lane = self.idle.get()
        try:
            if lane is not None and not lane.alive():  # ended while idle (killed): a new one
                lane.close()
                lane = None
            if lane is None:
                lane = LaneProcess(self.settings)
            limit = self.settings.detect_timeout_seconds
            try:
                outcome, seconds, records = lane.call((item, thumbnail_path, cropper), limit)
            except LaneStartError:
                lane = None
                raise
            except TimeoutError:
                lane.ending()
                lane = None
                log.error("item %d (%s): the detection process took more than %d s on it and was stopped",
                          item.item_id, item.file_path, limit)
                return Problem(item.item_id, f"the detection process took more than {limit} s on this image "
                                             "and was stopped (DETECT_TIMEOUT_SECONDS)")
            except (EOFError, OSError):
                how, told = lane.ending()
                lane = None
                if told or (stop is not None and stop.is_set()):
                    return None
                log.error("item %d (%s): the detection process ended while working on it (%s)",
                          item.item_id, item.file_path, how)
                return Problem(item.item_id, f"the detection process ended while working on this image ({how})")
            timings.add(seconds)
            for record in records:
                logging.getLogger(record.name).handle(record)
            return outcome
        finally:
            self.idle.put(lane)

    def close(self) -> None:
        """End every process (waiting for those in use to come back)."""
        for _ in range(self.count):
            lane = self.idle.get()
            if lane is not None:
                lane.close()


_pool: LanePool | None = None
_pool_lock = threading.Lock()


def pool_for(detector: Detector, settings: Settings, lanes: int) -> LanePool | None:
    """The lane processes for a detection stage, or None to run the lanes as threads: when
    DETECT_PROCESSES is off, or the detector is not one a process can make again from the
    settings (a backend without that, a wrapped or test detector)."""
    global _pool
    if not settings.detect_processes or getattr(detector, "setting", None) != settings.detector:
        return None
    # the per-run settings blanked (the database and its password never travel to the
    # processes), so that one pool serves every run of a worker
    own = replace(settings, database_url="", worker_id="", thumbnail_path=Path("."), publish_token=None)
    with _pool_lock:
        if _pool is not None and (_pool.settings != own or _pool.count != lanes):
            _pool.close()
            _pool = None
        if _pool is None:
            _pool = LanePool(own, lanes)
        return _pool


@atexit.register
def close_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


# --- in the lane process ------------------------------------------------------------------

class _Records(logging.Handler):
    """Keeps the process's log records, made ready to travel back to the worker."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        out, self.records = self.records, []
        return out


def serve(conn, settings: Settings) -> None:
    """A lane process: load the detector, then do each photo sent until told to stop (None)
    or the worker is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which stops in order
    records = _Records()
    root = logging.getLogger()
    root.handlers[:] = [records]
    root.setLevel(settings.log_level)
    try:
        from app.inference.registry import make_detector
        from app.services.detect import PhotoSteps, Timings

        s = settings
        steps = PhotoSteps(make_detector(s.detector, s.model_threads), s)
        steps.detector.load()
        steps.detector.detect([np.zeros((64, 64, 3), np.uint8)], 1.0)  # its first call's set-up, now
    except Exception as exc:  # noqa: BLE001 - told to the worker, which ends the run
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the worker is gone
            return
        if message is None:
            return
        item, steps.thumbnail_path, steps.cropper = message
        steps.timings = Timings()
        try:
            outcome = steps.whole(item)
        except Exception as exc:  # noqa: BLE001 - PhotoSteps returns Problems; anything else is one too
            outcome = Problem(item.item_id, f"unexpected error: {type(exc).__name__}: {exc}")
        try:
            conn.send((outcome, steps.timings.seconds, records.take()))
        except (OSError, ValueError):
            return
