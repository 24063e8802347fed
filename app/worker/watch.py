"""--watch: poll for pending media, process it, sleep when idle, stop cleanly."""
from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import DatabaseUnavailable, EnvironmentFault, first_line
from app.inference.detector import Detector
from app.services.detect import DetectReport, detect_pending
from app.stopping import StopFlag

log = logging.getLogger("app.detection")
MAX_OUTAGE_SLEEP = 300.0


def watch(sessions: sessionmaker[Session], detector: Detector, settings: Settings,
          stop: StopFlag) -> DetectReport:
    total = DetectReport()
    outage_sleep = settings.watch_interval_seconds
    log.info("watching for pending media every %g s (Ctrl+C to stop)", settings.watch_interval_seconds)
    while not stop.is_set():
        try:
            report = detect_pending(sessions, detector, settings, stop)
        except (DatabaseUnavailable, DBAPIError, EnvironmentFault) as exc:
            # The database went away, or the machine fails (a photo folder unmounted, the
            # thumbnail folder full): keep the worker alive, nothing charged, and try again
            # later, backing off so an outage does not flood the log.
            what = "stopped by a fault of the machine" if isinstance(exc, EnvironmentFault) else "database unavailable"
            log.error("%s, retrying in %.0f s: %s", what, outage_sleep, first_line(exc))
            stop.wait(outage_sleep)
            outage_sleep = min(outage_sleep * 2, MAX_OUTAGE_SLEEP)
            continue
        outage_sleep = settings.watch_interval_seconds
        total.add(report)
        if report.images == 0:
            stop.wait(settings.watch_interval_seconds)
    log.info("stopped: %d images, %d faces, %d failed since start", total.images, total.faces, total.failed)
    return total
