"""Re-check of users' faces refreshed from new pixels, in every assignment step (--recognize,
--recluster), before any face is assigned.

A photo replaced or edited under its name keeps a user's face where a new face stands at
the same place, marked 'recheck' (app/repositories/faces.py refresh_faces): the user's
decision was about pixels that are gone. Once the face has its new deciding vector, it is
compared with the person's other faces (app/pipeline/recheck.py): close enough, the
decision stands ('user' again); not, the face leaves the person (logged, and recorded in
the run's operation like the worker's other changes) and the same step gives it a person
by the usual rules. A person with no other face to compare with keeps it. Faces still
waiting for their vector stay 'recheck', the user's everywhere, until a later run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import ASSIGNED_RECHECK, WHO_RECHECK
from app.db.types import utcnow
from app.inference.names import facenet_setting, model_name
from app.pipeline.recheck import recheck
from app.repositories import recognition as repo
from app.repositories.history import LogEntry

log = logging.getLogger("app.recognition")


@dataclass
class RecheckReport:
    confirmed: int = 0
    left: int = 0  # left the user's person
    unchecked: int = 0  # nothing to compare with: kept


def _unchecked_why(f: repo.FaceToRecheck) -> str:
    if f.vector is None:
        return "the new face is not usable, so it has no vector"
    if f.person_id is None:
        return "its person was deleted since"
    return "no other face of the person has a vector to compare with"


def recheck_refreshed(session: Session, settings: Settings, bound: float, entries: list[LogEntry]) -> RecheckReport:
    """Decide every face waiting for a re-check that can be decided now, under the
    caller's assignment lock; `bound`: the join bound (linkage_params(settings).join).
    Faces that leave their person are appended to `entries`."""
    model = model_name(settings.embedder)
    facenet = model_name(facenet_setting(settings.embedder, settings.facenet))
    faces = repo.faces_to_recheck(session, facenet, model)
    report = RecheckReport()
    if not faces:
        return report
    others = repo.decided_vectors(session, [f.person_id for f in faces if f.person_id is not None], facenet, model)
    confirmed, left = [], []
    for f in faces:
        verdict = recheck(f.vector, others.get(f.person_id), bound)
        name = f' "{f.person_name}"' if f.person_name else ""
        where = f"face {f.face_id} ({f.file_path}), person {f.person_id}{name}"
        if verdict.keep:
            confirmed.append(f.face_id)
            if not verdict.checked:
                report.unchecked += 1
                log.info("%s: the file changed and the user's decision could not be checked (%s); kept",
                         where, _unchecked_why(f))
            else:
                log.info("%s: the file changed and the face now there is still the person (average similarity "
                         "%.3f with its %d other faces, bound %.3f); kept", where, verdict.similarity,
                         verdict.others, bound)
        else:
            left.append(f)
            log.warning("%s: the file changed and the face now there is someone else (average similarity %.3f "
                        "with the person's %d other faces, below %.3f); it left the person", where,
                        verdict.similarity, verdict.others, bound)
    repo.confirm_rechecked(session, confirmed)
    repo.release_rechecked(session, [f.face_id for f in left], utcnow())
    repo.touch_persons(session, sorted({f.person_id for f in left if f.person_id is not None}))
    entries += [LogEntry(f.face_id, f.person_id, None, WHO_RECHECK, ASSIGNED_RECHECK, None, f.assigned_at)
                for f in left]
    report.confirmed, report.left = len(confirmed) - report.unchecked, len(left)
    log.info("re-check of users' faces in changed files: %d confirmed, %d left their person, %d not checkable",
             report.confirmed, report.left, report.unchecked)
    return report
