"""One user operation on persons, recorded as it happens: the persons' rows before and
after, every face that changed person (AssignmentLog), the rejections added and removed.
That record is what `--history` shows and what `--undo` reverts exactly.

Every operation is one transaction under the assignment step's advisory lock, so it never
interleaves with a running `--recognize` / `--automate` (on SQLite, the database's single
writer serialises them).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator, Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import ASSIGNED_USER, WHO_USER
from app.db.types import utcnow
from app.errors import RequestError
from app.repositories import history as hrepo
from app.repositories import outbox
from app.repositories import persons as prepo
from app.repositories import recognition as rrepo
from app.repositories.persons import FaceState, PersonRow


@dataclass
class OpResult:
    operation_id: int
    summary: str
    person_id: int | None = None  # the person the operation ended on (kept, renamed, ...)
    created: list[int] = field(default_factory=list)  # persons it made
    deleted: list[int] = field(default_factory=list)  # persons it removed
    faces: int = 0  # faces that changed person


class Change:
    def __init__(self, session: Session, now: datetime):
        self.session, self.now = session, now
        self.before: dict[int, PersonRow | None] = {}  # None: made by this operation
        self.entries: list[hrepo.LogEntry] = []
        self.rejected: list[tuple[int, int]] = []
        self.unrejected: list[tuple[int, int]] = []
        self.deleted: list[int] = []
        self.created: list[int] = []

    # --- persons ---------------------------------------------------------------------
    def persons(self, ids: Sequence[int]) -> dict[int, PersonRow]:
        """The rows of these persons (recorded before any change); unknown ids: error."""
        prepo.lock_persons(self.session, ids)
        rows = prepo.person_rows(self.session, ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise RequestError(f"no person with id {', '.join(str(i) for i in missing)}")
        for i, row in rows.items():
            self.before.setdefault(i, row)
        return rows

    def person(self, person_id: int) -> PersonRow:
        return self.persons([person_id])[person_id]

    def update(self, person_id: int, **values) -> None:
        self.person(person_id)
        prepo.update_person(self.session, person_id, **values)

    def confirm(self, ids: Iterable[int]) -> None:
        """Persons a user acted on become user persons: the worker still adds new faces to
        them by matching, but never reclusters, merges or deletes them."""
        for i, row in self.persons(sorted(set(ids))).items():
            if row.is_automatic:
                prepo.update_person(self.session, i, IsAutomatic=False)

    def create(self, name: str | None = None) -> int:
        person_id = prepo.create_person(self.session, name)
        self.before[person_id] = None
        self.created.append(person_id)
        return person_id

    def restore(self, row: PersonRow) -> None:
        current = prepo.person_rows(self.session, [row.id])
        self.before.setdefault(row.id, current.get(row.id))
        prepo.restore_person(self.session, row)

    def delete(self, ids: Iterable[int]) -> None:
        ids = sorted(set(ids))
        if ids:
            self.persons(ids)
            prepo.delete_persons(self.session, ids)
            self.deleted.extend(ids)

    def drop_emptied(self, ids: Iterable[int]) -> None:
        """Unnamed persons this operation left without a face are deleted."""
        ids = sorted(set(i for i in ids if i is not None))
        counts = prepo.face_counts(self.session, ids)
        rows = prepo.person_rows(self.session, ids)
        self.delete(i for i in ids if counts.get(i, 0) == 0 and i in rows and rows[i].name is None)

    # --- faces -----------------------------------------------------------------------
    def faces(self, face_ids: Sequence[int]) -> dict[int, FaceState]:
        if not face_ids:
            raise RequestError("no face ids given")
        if len(set(face_ids)) != len(face_ids):
            raise RequestError("a face id is given twice")
        states = prepo.face_states(self.session, face_ids)
        missing = [i for i in face_ids if i not in states]
        if missing:
            raise RequestError(f"no face with id {', '.join(str(i) for i in missing)}")
        return states

    def set(self, changes: Sequence[tuple[FaceState, int | None, str | None, datetime | None]],
            who: str = WHO_USER) -> None:
        """(face's state now, new person, new AssignedBy, new AssignedAt) per face. A face
        left without a person is looked at again by the next assignment step."""
        rows = []
        for state, person, by, at in changes:
            self.entries.append(hrepo.LogEntry(state.face_id, state.person_id, person, who, state.assigned_by,
                                               by, state.assigned_at))
            rows.append((state.face_id, person, by, at))
        prepo.set_faces(self.session, [r for r in rows if r[1] is not None])
        prepo.set_faces(self.session, [r for r in rows if r[1] is None], reconsider=True)

    def move(self, states: Iterable[FaceState], person_id: int | None, assigned_by: str | None = ASSIGNED_USER) -> None:
        self.set([(s, person_id, assigned_by, self.now) for s in states])

    def reject(self, pairs: Iterable[tuple[int, int]]) -> None:
        self.rejected.extend(pairs)

    def unreject(self, pairs: Iterable[tuple[int, int]]) -> None:
        self.unrejected.extend(pairs)

    def _settle_rejections(self) -> None:
        """Only what really changes is written and recorded: a rejection the database holds
        already is not added again (rejecting twice is no error), one it does not hold is not
        removed, so an undo reverts exactly this operation's rejections."""
        pairs = set(self.rejected) | set(self.unrejected)
        held = {(f, p) for f, ps in hrepo.rejections(self.session, {f for f, _ in pairs}).items() for p in ps}
        self.unrejected = sorted(set(self.unrejected) & held)
        self.rejected = sorted(set(self.rejected) - (held - set(self.unrejected)))

    # --- record ----------------------------------------------------------------------
    def finish(self, kind: str, summary: str, undo_of: int | None = None, **result) -> OpResult:
        self._settle_rejections()
        touched = hrepo.persons_of(self.entries)
        rrepo.touch_persons(self.session, sorted(touched))
        prepo.refresh_covers(self.session, touched | set(self.created))
        after = prepo.person_rows(self.session, self.before)
        details = json.dumps({
            "persons_before": {str(k): v.to_json() if v else None for k, v in sorted(self.before.items())},
            "persons_after": {str(k): after[k].to_json() if k in after else None for k in sorted(self.before)},
            "rejections_added": sorted(self.rejected),
            "rejections_removed": sorted(self.unrejected),
        })
        op_id = hrepo.add_operation(self.session, kind, WHO_USER, summary, details, self.entries, undo_of)
        # a renamed or hidden person changes what every photo of it says
        outbox.enqueue_persons(self.session, [k for k in self.before if k in after and self.before[k] != after[k]])
        hrepo.remove_rejections(self.session, self.unrejected)
        hrepo.add_rejections(self.session, self.rejected, op_id)
        return OpResult(op_id, summary, created=list(self.created), deleted=list(self.deleted),
                        faces=len({e.face_id for e in self.entries}), **result)


@contextmanager
def operation(sessions: sessionmaker[Session]) -> Iterator[Change]:
    """One transaction under the assignment lock; nothing is written when it raises."""
    with sessions.begin() as session:
        rrepo.lock_assignment(session)
        yield Change(session, utcnow())


def details(raw: str | None) -> dict:
    d = json.loads(raw) if raw else {}
    return {
        "persons_before": {int(k): PersonRow.from_json(v) if v else None for k, v in d.get("persons_before", {}).items()},
        "persons_after": {int(k): PersonRow.from_json(v) if v else None for k, v in d.get("persons_after", {}).items()},
        "rejections_added": [tuple(p) for p in d.get("rejections_added", [])],
        "rejections_removed": [tuple(p) for p in d.get("rejections_removed", [])],
    }
