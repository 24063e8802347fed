"""Recognition run: embed new faces, then assign persons (or rebuild them: recluster)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.pipeline.encode import FaceEncoder
from app.services.assign import AssignReport, assign_unassigned, recluster
from app.services.embed import EmbedReport, embed_pending
from app.services.scores import fill_missing
from app.stopping import StopFlag

log = logging.getLogger("app.recognition")


@dataclass
class RecognizeReport:
    embed: EmbedReport
    assign: AssignReport


def recognize(sessions: sessionmaker[Session], encoder: FaceEncoder, settings: Settings,
              rebuild: bool = False, stop: StopFlag | None = None) -> RecognizeReport:
    embedded = embed_pending(sessions, encoder, settings, stop)
    if stop is not None and stop.is_set():  # a stop request: clustering can wait for the next run
        log.info("recognition: %d faces embedded; stopped before assignment", embedded.faces)
        return RecognizeReport(embedded, AssignReport())
    fill_missing(sessions, settings)  # faces stored before scores existed: covers need them
    assigned = recluster(sessions, settings) if rebuild else assign_unassigned(sessions, settings)
    log.info(
        "recognition: %d faces embedded in %.1f s; %d matched, %d joined, %d clustered into %d new "
        "persons, %d unassigned, assignment in %.1f s",
        embedded.faces, embedded.seconds, assigned.matched, assigned.joined, assigned.clustered,
        assigned.persons_created, assigned.unassigned, assigned.seconds,
    )
    return RecognizeReport(embedded, assigned)
