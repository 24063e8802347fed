"""--automate: detection + recognition on a schedule (APScheduler), never overlapping."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.exc import DBAPIError

from app.errors import AppError, DatabaseUnavailable, first_line
from app.stopping import StopFlag

log = logging.getLogger("app.worker")


def automate(run_once: Callable[[StopFlag], object], interval_minutes: float, stop: StopFlag) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    def job() -> None:
        if stop.is_set():
            return
        try:
            run_once(stop)
        except (DatabaseUnavailable, DBAPIError) as exc:
            log.error("database unavailable, next try at the next run: %s", first_line(exc))
        except AppError as exc:  # a fault of the machine (thumbnail folder, photo folder): one line
            log.error("run stopped, next try at the next run: %s", exc)
        except Exception:
            # One failed run must not end the service; the next run starts afresh.
            log.exception("run failed; next try at the next run")

    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_job(
        job, "interval", minutes=interval_minutes, id="detect-and-recognize",
        next_run_time=datetime.now(timezone.utc),
        max_instances=1,  # a run still going makes the scheduler skip, never overlap
        coalesce=True,
    )
    scheduler.start()
    log.info("running detection + recognition every %g minutes (Ctrl+C to stop)", interval_minutes)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
        log.info("stopped")
