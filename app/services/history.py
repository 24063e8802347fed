"""--history and --undo: the operations log, and reverting a user operation exactly.

An undo puts back what the operation recorded (app/services/person_change.py): each face's
person, AssignedBy and AssignedAt as they were before it, the persons' rows (deleted ones
come back with their ids, persons it made are deleted), and the rejections it added or
removed. The undo is itself an operation, logged like the others.
"""
from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import WHO_USER
from app.errors import RequestError
from app.repositories import history as hrepo
from app.repositories import persons as prepo
from app.repositories.history import OperationRow
from app.services.person_change import OpResult, details, operation


# The most operations one listing shows: each is a row in memory and on the screen, and
# a number beyond it (`--limit 100000000000000000000`) would overflow the database's integer.
HISTORY_MAX = 10_000


def history(sessions: sessionmaker[Session], limit: int = 20) -> list[OperationRow]:
    """The latest operations first, user operations and worker runs alike."""
    if not 1 <= limit <= HISTORY_MAX:
        raise RequestError(f"--limit must be from 1 to {HISTORY_MAX:,} (got {limit})")
    with sessions() as session:
        return hrepo.operations(session, limit)


def _target(session: Session, op_id: int | None) -> OperationRow:
    if op_id is None:
        op = hrepo.last_undoable(session)
        if op is None:
            raise RequestError("nothing to undo: no user operation that is not undone yet")
        return op
    op = hrepo.operation(session, op_id)
    if op is None:
        raise RequestError(f"no operation with id {op_id}")
    if op.who != WHO_USER:
        raise RequestError(f"operation {op_id} is a worker run ({op.kind}); only user operations can be undone "
                           "(--recluster rebuilds what the worker decided)")
    if op.undone_by is not None:
        raise RequestError(f"operation {op_id} was already undone by operation {op.undone_by}")
    return op


def _changed_persons(op: OperationRow) -> set[int]:
    """Persons whose row the operation changed (named, hidden, made, deleted, ...)."""
    d = details(op.details)
    return {p for p, row in d["persons_before"].items() if d["persons_after"].get(p) != row}


def _conflicts(session: Session, op: OperationRow, faces: set[int], persons: set[int], created: list[int]) -> list[str]:
    on_faces = hrepo.later_operations_on_faces(session, op.id, faces)
    found = [f"operation {i} ({kind}) changed the same faces since" for i, kind in sorted(on_faces.items())]
    found += [f"operation {later.id} ({later.kind}) changed the same persons since"
              for later in hrepo.later_user_operations(session, op.id)
              if later.id not in on_faces and _changed_persons(later) & persons]
    for state in prepo.face_states_of_persons(session, created):
        if state.face_id not in faces:
            found.append(f"person {state.person_id}, made by this operation, has received face {state.face_id} since")
            break
    return found


def undo(sessions: sessionmaker[Session], op_id: int | None = None, force: bool = False) -> OpResult:
    """Revert the given user operation, or the latest one not undone yet. Refuses when
    later operations touched the same faces or persons, unless `force`: then the faces and
    persons it touched get their recorded earlier state anyway, and faces that later
    joined a person it made are left without a person (the next run looks at them).
    Unnamed persons the undo leaves without a face are deleted, as moves and rejections
    delete them; a named person is kept even with no face (a user named it)."""
    with operation(sessions) as change:
        session = change.session
        op = _target(session, op_id)
        entries = hrepo.log_of(session, op.id)
        d = details(op.details)
        first: dict[int, hrepo.LogEntry] = {}
        for e in entries:
            first.setdefault(e.face_id, e)
        created = sorted(p for p, row in d["persons_before"].items() if row is None)
        conflicts = _conflicts(session, op, set(first), set(d["persons_before"]), created)
        if conflicts and not force:
            raise RequestError(f"operation {op.id} ({op.kind}) cannot be undone exactly: " + "; ".join(conflicts)
                               + "; add --force to undo it anyway")
        for row in d["persons_before"].values():
            if row is not None:
                change.restore(row)
        states = prepo.face_states(session, first)  # faces deleted since are gone for good
        exists = set(prepo.person_rows(session, [e.old_person for e in first.values() if e.old_person is not None]))
        back = []
        for f, e in first.items():
            if f in states:  # to a person deleted since (forced): no person, for the next run to decide
                gone = e.old_person is not None and e.old_person not in exists
                back.append((states[f], None if gone else e.old_person, None if gone else e.old_assigned_by,
                             e.old_assigned_at))
        change.set(back)
        change.move(prepo.face_states_of_persons(session, created), None, None)
        change.delete(prepo.person_rows(session, created))
        # a forced undo can leave a person it brought back, or one its faces left, without
        # a face (its other faces went elsewhere later): unnamed ones go, as after a move
        change.drop_emptied(set(d["persons_before"]) | {s.person_id for s in states.values()})
        change.unreject(d["rejections_added"])
        change.reject(d["rejections_removed"])
        result = change.finish("undo", f"undid operation {op.id} ({op.kind}: {op.summary})", undo_of=op.id)
        hrepo.set_undone(session, op.id, result.operation_id)
        return result
