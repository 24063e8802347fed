"""Person management: look at the persons and correct them. The command line calls these
functions, and so will the review page: one set of rules for both.

Rules shared by every operation (app/services/person_change.py): one transaction under
the assignment lock; every face that moves gets AssignedBy 'user' and AssignedAt; every
change is logged and can be undone; bad input (unknown ids, a face of another person, an
empty name, ...) raises RequestError before anything is written.

A person a user acts on (renames, merges into, moves faces into, splits, hides, takes a
face out of) becomes a user person (IsAutomatic false): the worker still gives it new
faces by matching and clustering, but never reclusters, merges or deletes it, so no later
run undoes the correction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import ASSIGNED_USER, Persons
from app.errors import RequestError
from app.repositories import history as hrepo
from app.repositories import persons as prepo
from app.repositories import recognition as rrepo
from app.repositories.persons import PersonFace, PersonSummary
from app.services.person_change import OpResult, operation

NAME_MAX = Persons.__table__.c.Name.type.length


def list_persons(sessions: sessionmaker[Session], include_hidden: bool = False, limit: int | None = None,
                 offset: int = 0, show: str | None = None, unnamed_first: bool = False,
                 person_ids: Sequence[int] | None = None) -> list[PersonSummary]:
    """Largest first; hidden persons only when asked for (`show`: one of prepo.SHOWS)."""
    with sessions() as session:
        return prepo.list_persons(session, include_hidden, limit, offset, person_ids=person_ids, show=show,
                                  unnamed_first=unnamed_first)


def persons_by_id(sessions: sessionmaker[Session], person_ids: Sequence[int]) -> list[PersonSummary]:
    """The given persons, hidden ones too, largest first; an unknown id is an error, as for
    every other person command (nothing is listed then)."""
    found = list_persons(sessions, include_hidden=True, person_ids=person_ids)
    missing = sorted(set(person_ids) - {p.id for p in found})
    if missing:
        raise RequestError(f"no person with id {', '.join(map(str, missing))}")
    return found


def count_persons(sessions: sessionmaker[Session], show: str = "visible") -> int:
    with sessions() as session:
        return prepo.count_persons(session, show)


@dataclass(frozen=True)
class PersonDetail:
    person: PersonSummary
    faces: list[PersonFace]
    rejected: int  # faces that must never be given this person


def get_person(sessions: sessionmaker[Session], person_id: int) -> PersonDetail:
    with sessions() as session:
        found = prepo.list_persons(session, include_hidden=True, person_ids=[person_id])
        if not found:
            raise RequestError(f"no person with id {person_id}")
        return PersonDetail(found[0], prepo.faces_of_person(session, person_id),
                            len(hrepo.rejected_faces(session, person_id)))


def _label(row: prepo.PersonRow) -> str:
    return f"{row.id} ({row.name!r})" if row.name else str(row.id)


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise RequestError("the name is empty")
    if len(name) > NAME_MAX:
        raise RequestError(f"the name is {len(name)} characters long; at most {NAME_MAX} are allowed")
    return name


def rename(sessions: sessionmaker[Session], person_id: int, name: str) -> OpResult:
    """Naming a person confirms it: the worker never renames, merges or reclusters it."""
    name = clean_name(name)
    with operation(sessions) as change:
        old = change.person(person_id)
        change.update(person_id, Name=name, IsAutomatic=False)
        was = f"from {old.name!r} " if old.name else ""
        return change.finish("rename", f"renamed person {person_id} {was}to {name!r}", person_id=person_id)


def merge(sessions: sessionmaker[Session], person_ids: Sequence[int], force: bool = False) -> OpResult:
    """Into one person: the named one if exactly one is named, else the first given. The
    others are deleted after their faces move. Differently named persons need `force`."""
    ids = [int(i) for i in person_ids]
    if len(ids) < 2:
        raise RequestError("merging needs at least two person ids")
    if len(set(ids)) != len(ids):
        raise RequestError("a person cannot be merged with itself (an id is given twice)")
    with operation(sessions) as change:
        rows = change.persons(ids)
        named = [i for i in ids if rows[i].name]
        if len({rows[i].name for i in named}) > 1 and not force:
            raise RequestError(
                "the persons have different names (" + ", ".join(_label(rows[i]) for i in named)
                + f"); add --force to merge them anyway (the kept person is {_label(rows[ids[0]])})")
        kept = named[0] if len(named) == 1 else ids[0]
        others = [i for i in ids if i != kept]
        states = prepo.face_states_of_persons(change.session, others)
        # "not this person" said of any merged person holds for the merged one: such a
        # face ends in no person (the kept person's own faces included: one a merged
        # person rejected may have been moved to the kept one since), and every rejection
        # is kept for the kept person
        refused: set[int] = set()
        for i in ids:
            refused |= hrepo.rejected_faces(change.session, i)
        moved = [s for s in states if s.face_id not in refused]
        left = [s for s in states + prepo.face_states_of_persons(change.session, [kept]) if s.face_id in refused]
        change.move(moved, kept)
        change.move(left, None, None)
        change.reject((f, kept) for f in sorted(refused))  # those it has already are left as they are
        change.delete(others)
        change.confirm([kept])
        note = f"; {len(left)} face(s) rejected by a merged person left without a person" if left else ""
        return change.finish(
            "merge", f"merged person(s) {', '.join(map(str, others))} into {_label(rows[kept])} "
            f"({len(moved)} faces moved{note})", person_id=kept)


def _expect(states: dict[int, prepo.FaceState], expect: int | None) -> None:
    if expect is None:
        return
    for s in states.values():
        if s.person_id != expect:
            where = f"is in person {s.person_id}" if s.person_id is not None else "has no person"
            raise RequestError(f"face {s.face_id} {where}, not in person {expect}")


def move_faces(sessions: sessionmaker[Session], face_ids: Sequence[int], to: int | None,
               expect: int | None = None) -> OpResult:
    """Faces to person `to`, or to a new person when `to` is None. `expect`: the person
    the faces must be in now (a page showing one person's faces)."""
    with operation(sessions) as change:
        states = change.faces([int(i) for i in face_ids])
        _expect(states, expect)
        if to is None:
            to = change.create()
        else:
            change.person(to)
            already = [s.face_id for s in states.values() if s.person_id == to]
            if already:
                raise RequestError(f"face {already[0]} is already in person {to}")
        sources = {s.person_id for s in states.values()}
        refused = hrepo.rejections(change.session, states)
        change.unreject((f, to) for f in sorted(states) if to in refused.get(f, ()))
        change.move(states.values(), to)
        change.confirm([to])
        change.drop_emptied(sources)
        made = " (new)" if change.created else ""
        return change.finish("move", f"moved {len(states)} face(s) to person {to}{made}", person_id=to)


def reject_faces(sessions: sessionmaker[Session], face_ids: Sequence[int], expect: int | None = None) -> OpResult:
    """"Not this person": each face leaves its person and is never given it again (by
    matching, clustering or --recluster). The next assignment step may place the face
    in another person."""
    with operation(sessions) as change:
        states = change.faces([int(i) for i in face_ids])
        _expect(states, expect)
        loose = [s.face_id for s in states.values() if s.person_id is None]
        if loose:
            raise RequestError(f"face {loose[0]} has no person to reject")
        sources = sorted({s.person_id for s in states.values()})
        change.confirm(sources)  # so the person, and with it the rejection, outlives --recluster
        change.reject((s.face_id, s.person_id) for s in states.values())
        change.move(states.values(), None, None)
        change.drop_emptied(sources)
        return change.finish("reject", f"rejected {len(states)} face(s) from person(s) "
                             f"{', '.join(map(str, sources))}", person_id=sources[0] if len(sources) == 1 else None)


def set_hidden(sessions: sessionmaker[Session], person_id: int, hidden: bool) -> OpResult:
    """Hidden persons stay, and still collect their new faces; lists leave them out."""
    with operation(sessions) as change:
        change.person(person_id)
        change.update(person_id, IsHidden=hidden, IsAutomatic=False)
        return change.finish("hide" if hidden else "unhide",
                             f"{'hid' if hidden else 'unhid'} person {person_id}", person_id=person_id)


def delete_person(sessions: sessionmaker[Session], person_id: int) -> OpResult:
    """The person goes; its faces stay without a person, marked as left so by the user
    (AssignedBy 'user'): later runs never give them a person again, so the person does
    not come back from them. `--move` can still place them; `--undo` restores all."""
    with operation(sessions) as change:
        row = change.person(person_id)
        states = prepo.face_states_of_persons(change.session, [person_id])
        change.move(states, None, ASSIGNED_USER)
        change.delete([person_id])
        return change.finish("delete-person", f"deleted person {_label(row)} ({len(states)} faces left "
                             "without a person)", person_id=person_id)


def set_cover(sessions: sessionmaker[Session], person_id: int, face_id: int | None) -> int | None:
    """The user's cover for a person: one of its faces, kept until the user picks another
    or the face leaves the person; None gives the choice back to the worker (the best-
    scored face). Returns the cover now. Not an operation of the history: nothing about
    the persons' faces changes."""
    with sessions.begin() as session:
        rrepo.lock_assignment(session)
        if person_id not in prepo.person_rows(session, [person_id]):
            raise RequestError(f"no person with id {person_id}")
        if face_id is not None:
            state = prepo.face_states(session, [face_id]).get(face_id)
            if state is None:
                raise RequestError(f"no face with id {face_id}")
            if state.person_id != person_id:
                raise RequestError(f"face {face_id} is not a face of person {person_id}")
        prepo.set_cover(session, person_id, face_id)
        return prepo.cover_of(session, person_id)
