"""SQL for the operations history: Operations, AssignmentLog, FaceRejections.

Callers own the transaction. The log is append-only: rows are inserted, never changed
(an undo is one more operation with its own rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import WHO_USER, AssignmentLog, FaceRejections, Operations
from app.repositories import outbox
from app.repositories.ids import chunks


LOG_CHUNK = 50_000  # log rows built and sent at once


@dataclass(frozen=True)
class LogEntry:
    face_id: int
    old_person: int | None
    new_person: int | None
    who: str  # user, matched, clustered, recluster
    old_assigned_by: str | None
    new_assigned_by: str | None
    old_assigned_at: datetime | None


def persons_of(entries: Sequence[LogEntry]) -> set[int]:
    """Every person a face left or joined in these entries."""
    return {p for e in entries for p in (e.old_person, e.new_person) if p is not None}


def add_operation(session: Session, kind: str, who: str, summary: str, details: str | None,
                  entries: Sequence[LogEntry], undo_of: int | None = None) -> int:
    op_id = session.execute(
        insert(Operations).values(Kind=kind, Who=who, Summary=summary, Details=details, UndoOf=undo_of)
        .returning(Operations.Id)
    ).scalar_one()
    for start in range(0, len(entries), LOG_CHUNK):  # a first run over a million faces: 20 inserts
        session.execute(insert(AssignmentLog), [
            {"OperationId": op_id, "FaceId": e.face_id, "OldPersonId": e.old_person, "NewPersonId": e.new_person,
             "Who": e.who, "OldAssignedBy": e.old_assigned_by, "NewAssignedBy": e.new_assigned_by,
             "OldAssignedAt": e.old_assigned_at}
            for e in entries[start:start + LOG_CHUNK]
        ])
    outbox.enqueue_faces(session, [e.face_id for e in entries])  # published by --publish
    return op_id


@dataclass(frozen=True)
class OperationRow:
    id: int
    kind: str
    who: str
    summary: str
    details: str | None
    undo_of: int | None
    undone_by: int | None
    created_at: datetime
    faces: int  # log rows


def _operation_query():
    faces = (select(func.count()).where(AssignmentLog.OperationId == Operations.Id)
             .correlate(Operations).scalar_subquery())
    return select(Operations.Id, Operations.Kind, Operations.Who, Operations.Summary, Operations.Details,
                  Operations.UndoOf, Operations.UndoneBy, Operations.CreatedAt, faces)


def operations(session: Session, limit: int) -> list[OperationRow]:
    """The latest first."""
    rows = session.execute(_operation_query().order_by(Operations.Id.desc()).limit(limit)).all()
    return [OperationRow(*r) for r in rows]


def operation(session: Session, op_id: int) -> OperationRow | None:
    r = session.execute(_operation_query().where(Operations.Id == op_id)).first()
    return OperationRow(*r) if r else None


def last_undoable(session: Session) -> OperationRow | None:
    """The latest user operation that is not an undo and not undone."""
    r = session.execute(
        _operation_query()
        .where(Operations.Who == WHO_USER, Operations.UndoOf.is_(None), Operations.UndoneBy.is_(None))
        .order_by(Operations.Id.desc()).limit(1)
    ).first()
    return OperationRow(*r) if r else None


def set_undone(session: Session, op_id: int, by: int) -> None:
    session.execute(update(Operations).where(Operations.Id == op_id).values(UndoneBy=by))


def log_of(session: Session, op_id: int) -> list[LogEntry]:
    rows = session.execute(
        select(AssignmentLog.FaceId, AssignmentLog.OldPersonId, AssignmentLog.NewPersonId, AssignmentLog.Who,
               AssignmentLog.OldAssignedBy, AssignmentLog.NewAssignedBy, AssignmentLog.OldAssignedAt)
        .where(AssignmentLog.OperationId == op_id).order_by(AssignmentLog.Id)
    ).all()
    return [LogEntry(*r) for r in rows]


def later_operations_on_faces(session: Session, op_id: int, face_ids: Iterable[int]) -> dict[int, str]:
    """Operations after `op_id` that changed any of these faces and still stand (neither
    undone, nor an undo of an operation after `op_id`): id -> kind."""
    later = Operations.Id > op_id
    undo_of_later = and_(Operations.UndoOf.is_not(None), Operations.UndoOf > op_id)
    out: dict[int, str] = {}
    for chunk in chunks(face_ids):
        out.update(session.execute(
            select(Operations.Id, Operations.Kind).distinct()
            .join(AssignmentLog, AssignmentLog.OperationId == Operations.Id)
            .where(later, AssignmentLog.FaceId.in_(chunk), Operations.UndoneBy.is_(None), ~undo_of_later)
        ).all())
    return out


def later_user_operations(session: Session, op_id: int) -> list[OperationRow]:
    """User operations after `op_id` that still stand (their Details name the persons
    they changed)."""
    rows = session.execute(
        _operation_query().where(Operations.Id > op_id, Operations.Who == WHO_USER, Operations.UndoneBy.is_(None),
                                 or_(Operations.UndoOf.is_(None), Operations.UndoOf <= op_id))
        .order_by(Operations.Id)
    ).all()
    return [OperationRow(*r) for r in rows]


def replay(session: Session) -> dict[int, int | None]:
    """Each logged face's person after the last change the log holds for it."""
    out: dict[int, int | None] = {}
    for face, person in session.execute(
        select(AssignmentLog.FaceId, AssignmentLog.NewPersonId).order_by(AssignmentLog.Id)
    ):
        out[face] = person
    return out


# --- rejections ("not this person") -------------------------------------------------------

def rejections(session: Session, face_ids: Iterable[int]) -> dict[int, set[int]]:
    """face id -> persons it must never be given."""
    out: dict[int, set[int]] = {}
    for chunk in chunks(face_ids):
        for f, p in session.execute(select(FaceRejections.FaceId, FaceRejections.PersonId)
                                    .where(FaceRejections.FaceId.in_(chunk))):
            out.setdefault(f, set()).add(p)
    return out


def add_rejections(session: Session, pairs: Sequence[tuple[int, int]], op_id: int | None) -> None:
    if pairs:
        session.execute(insert(FaceRejections),
                        [{"FaceId": f, "PersonId": p, "OperationId": op_id} for f, p in pairs])


def remove_rejections(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    for f, p in pairs:
        session.execute(delete(FaceRejections).where(FaceRejections.FaceId == f, FaceRejections.PersonId == p))


def rejected_faces(session: Session, person_id: int) -> set[int]:
    """Faces that must never be given this person."""
    return set(session.scalars(select(FaceRejections.FaceId).where(FaceRejections.PersonId == person_id)).all())
