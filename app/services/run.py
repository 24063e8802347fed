"""The "detect then recognize" use case: what `--all` runs once and `--automate` runs on
a schedule (and what a web page or another caller would run)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.detector import Detector
from app.pipeline.encode import FaceEncoder
from app.services.detect import DetectReport, detect_pending
from app.services.publish import PublishReport, publish
from app.services.recognize import RecognizeReport, recognize
from app.stopping import StopFlag


@dataclass
class RunReport:
    detected: DetectReport
    recognized: RecognizeReport | None  # None: stopped before recognition
    published: PublishReport | None = None  # --automate with PUBLISH_URL set

    @property
    def failed(self) -> int:
        return self.detected.failed + (self.recognized.embed.failed if self.recognized else 0)


def detect_and_recognize(sessions: sessionmaker[Session], detector: Detector, encoder: FaceEncoder,
                         settings: Settings, stop: StopFlag | None = None) -> RunReport:
    detected = detect_pending(sessions, detector, settings, stop, encoder=encoder)
    if stop is not None and stop.is_set():
        return RunReport(detected, None)
    return RunReport(detected, recognize(sessions, encoder, settings, stop=stop))


def automated_run(sessions: sessionmaker[Session], detector: Detector, encoder: FaceEncoder,
                  settings: Settings, stop: StopFlag | None = None) -> RunReport:
    """One run of --automate: detect, recognize, then (PUBLISH_URL set) one publishing
    pass over the events that are due; events waiting for a retry go in a later run."""
    report = detect_and_recognize(sessions, detector, encoder, settings, stop)
    if settings.publish_url and not (stop is not None and stop.is_set()):
        report.published = publish(sessions, settings, stop, wait=False)
    return report
