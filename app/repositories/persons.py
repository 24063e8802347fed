"""SQL for looking at and correcting persons (the person-management services).

Callers own the transaction. Persons and face assignments are read and written as
plain rows, so an operation can record them before and after (AssignmentLog, undo).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import bindparam, case, delete, exists, false, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import Faces, MediaFile, Persons
from app.repositories.faces import FACES, vector_columns
from app.repositories.ids import chunks, id_batches


@dataclass(frozen=True)
class PersonRow:
    """A Persons row as an operation records it (ModifiedAt is not part of it: every
    change, an undo included, sets it to the time of the change)."""

    id: int
    name: str | None
    is_automatic: bool
    is_hidden: bool
    created_at: datetime

    def to_json(self) -> dict:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "PersonRow":
        return cls(d["id"], d["name"], d["is_automatic"], d["is_hidden"], datetime.fromisoformat(d["created_at"]))


def person_rows(session: Session, ids: Iterable[int]) -> dict[int, PersonRow]:
    out: dict[int, PersonRow] = {}
    for chunk in chunks(ids):
        for r in session.execute(
            select(Persons.Id, Persons.Name, Persons.IsAutomatic, Persons.IsHidden, Persons.CreatedAt)
            .where(Persons.Id.in_(chunk))
        ):
            out[r[0]] = PersonRow(r[0], r[1], bool(r[2]), bool(r[3]), r[4])
    return out


def update_person(session: Session, person_id: int, **values) -> None:
    """values: Name, IsAutomatic, IsHidden."""
    session.execute(update(Persons).where(Persons.Id == person_id).values(**values, ModifiedAt=func.now())
                    .execution_options(synchronize_session=False))


def create_person(session: Session, name: str | None = None) -> int:
    """A person made by a user (IsAutomatic false)."""
    return session.execute(insert(Persons).values(Name=name, IsAutomatic=False).returning(Persons.Id)).scalar_one()


def restore_person(session: Session, row: PersonRow) -> None:
    """Put back a person exactly as recorded: update it, or insert it with its old id."""
    values = dict(Name=row.name, IsAutomatic=row.is_automatic, IsHidden=row.is_hidden, CreatedAt=row.created_at)
    if session.execute(select(Persons.Id).where(Persons.Id == row.id)).first():
        update_person(session, row.id, **values)
    else:
        session.execute(insert(Persons).values(Id=row.id, **values))


def delete_persons(session: Session, ids: Iterable[int]) -> None:
    for chunk in chunks(ids):
        session.execute(delete(Persons).where(Persons.Id.in_(chunk)).execution_options(synchronize_session=False))


def lock_persons(session: Session, ids: Iterable[int]) -> None:
    """Row locks on these persons (PostgreSQL) for the rest of the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        for chunk in chunks(ids):
            session.execute(select(Persons.Id).where(Persons.Id.in_(chunk)).with_for_update())


# --- faces ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FaceState:
    face_id: int
    media_file_id: int
    person_id: int | None
    assigned_by: str | None
    assigned_at: datetime | None


def face_states(session: Session, face_ids: Iterable[int]) -> dict[int, FaceState]:
    out: dict[int, FaceState] = {}
    for where in id_batches(session, Faces.Id, face_ids):
        for r in session.execute(
            select(Faces.Id, Faces.MediaFileId, Faces.PersonId, Faces.AssignedBy, Faces.AssignedAt).where(where)
        ):
            out[r[0]] = FaceState(*r)
    return out


def face_states_of_persons(session: Session, person_ids: Iterable[int]) -> list[FaceState]:
    out: list[FaceState] = []
    for chunk in chunks(person_ids):
        out.extend(FaceState(*r) for r in session.execute(
            select(Faces.Id, Faces.MediaFileId, Faces.PersonId, Faces.AssignedBy, Faces.AssignedAt)
            .where(Faces.PersonId.in_(chunk)).order_by(Faces.Id)
        ))
    return out


def set_faces(session: Session, rows: Sequence[tuple[int, int | None, str | None, datetime | None]],
              reconsider: bool = False) -> None:
    """(face id, person id, AssignedBy, AssignedAt) per face. `reconsider`: also clear
    ConsideredAt, so the next assignment step looks at the faces again."""
    if not rows:
        return
    values = dict(PersonId=bindparam("p"), AssignedBy=bindparam("by"), AssignedAt=bindparam("at"))
    if reconsider:
        values["ConsideredAt"] = None
    session.execute(
        update(FACES).where(FACES.c.Id == bindparam("f")).values(**values),
        [{"f": f, "p": p, "by": by, "at": at} for f, p, by, at in rows],
    )


def face_counts(session: Session, person_ids: Iterable[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for chunk in chunks(person_ids):
        out.update(session.execute(
            select(Faces.PersonId, func.count()).where(Faces.PersonId.in_(chunk)).group_by(Faces.PersonId)
        ).all())
    return out


def person_vectors(session: Session, person_id: int, model: str, second: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face ids, media ids and deciding vectors of a person's faces that have them."""
    column, model_column = vector_columns(second)
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, column)
        .where(Faces.PersonId == person_id, column.is_not(None), model_column == model).order_by(Faces.Id)
    ).all()
    ids = np.array([r[0] for r in rows], np.int64)
    media = np.array([r[1] for r in rows], np.int64)
    vectors = np.vstack([np.frombuffer(r[2], np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
    return ids, media, vectors


# --- listing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonSummary:
    id: int
    name: str | None
    faces: int
    photos: int
    hidden: bool
    automatic: bool
    cover: str | None  # thumbnail path of the cover face (Persons.CoverFaceId, else the best face)
    first_seen: datetime | None  # MediaFile.CreatedAt, earliest and latest
    last_seen: datetime | None
    cover_face: int | None = None  # the face whose thumbnail is the cover


SHOWS = ("visible", "named", "unnamed", "hidden", "all")


def _shown(q, show: str):
    """visible: not hidden; named / unnamed: visible ones with / without a name;
    hidden: hidden only; all: every person."""
    if show not in SHOWS:
        raise ValueError(f"show must be one of {SHOWS}")
    if show in ("visible", "named", "unnamed"):
        q = q.where(Persons.IsHidden.is_(False))
    if show == "hidden":
        q = q.where(Persons.IsHidden.is_(True))
    if show == "named":
        q = q.where(Persons.Name.is_not(None))
    if show == "unnamed":
        q = q.where(Persons.Name.is_(None))
    return q


def count_persons(session: Session, show: str = "visible") -> int:
    return int(session.scalar(_shown(select(func.count()).select_from(Persons), show)) or 0)


def list_persons(session: Session, include_hidden: bool = False, limit: int | None = None, offset: int = 0,
                 person_ids: Sequence[int] | None = None, show: str | None = None,
                 unnamed_first: bool = False) -> list[PersonSummary]:
    """Largest first (then by id); with `unnamed_first`, persons without a name first.
    `show` (SHOWS) overrides `include_hidden`. The cover (see _covers) is looked up for the
    listed persons only, so a page of a large library costs one grouped count and a page's
    worth of covers."""
    stats = (
        select(Faces.PersonId.label("pid"), func.count(Faces.Id).label("faces"),
               func.count(func.distinct(Faces.MediaFileId)).label("photos"),
               func.min(MediaFile.CreatedAt).label("first"), func.max(MediaFile.CreatedAt).label("last"))
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .where(Faces.PersonId.is_not(None)).group_by(Faces.PersonId).subquery()
    )
    faces = func.coalesce(stats.c.faces, 0)
    order = [faces.desc(), Persons.Id]
    if unnamed_first:
        order.insert(0, Persons.Name.is_not(None))
    q = (
        select(Persons.Id, Persons.Name, faces, func.coalesce(stats.c.photos, 0), Persons.IsHidden,
               Persons.IsAutomatic, stats.c.first, stats.c.last)
        .outerjoin(stats, stats.c.pid == Persons.Id)
        .order_by(*order)
    )
    q = _shown(q, show or ("all" if include_hidden else "visible"))
    if person_ids is not None:
        q = q.where(Persons.Id.in_(list(person_ids)))
    if limit is not None:
        q = q.limit(limit).offset(offset)
    rows = session.execute(q).all()
    covers = _covers(session, [r[0] for r in rows])
    return [PersonSummary(r[0], r[1], int(r[2]), int(r[3]), bool(r[4]), bool(r[5]),
                          covers[r[0]][1] if r[0] in covers else None, r[6], r[7],
                          covers[r[0]][0] if r[0] in covers else None) for r in rows]


# --- covers ------------------------------------------------------------------------------

def cover_order():
    """Best cover first: usable, then highest Quality (unscored last), then most confident."""
    return (Faces.IsUsable.desc(), Faces.Quality.desc().nulls_last(), Faces.Confidence.desc(), Faces.Id)


def refresh_covers(session: Session, person_ids: Iterable[int]) -> None:
    """Persons.CoverFaceId = the best face, for these persons, unless a user chose a cover
    that is still one of the person's faces. Rows already right are not written."""
    for chunk in chunks(sorted({p for p in person_ids if p is not None})):
        best = (select(Faces.Id).where(Faces.PersonId == Persons.Id).order_by(*cover_order())
                .limit(1).scalar_subquery())
        still_theirs = exists().where(Faces.Id == Persons.CoverFaceId, Faces.PersonId == Persons.Id)
        keep_users = Persons.CoverByUser.is_(True) & still_theirs
        session.execute(
            update(Persons)
            .where(Persons.Id.in_(chunk), ~keep_users,
                   or_(Persons.CoverFaceId.is_distinct_from(best), Persons.CoverByUser.is_(True)))
            .values(CoverFaceId=best, CoverByUser=false())
            .execution_options(synchronize_session=False)
        )


def set_cover(session: Session, person_id: int, face_id: int | None) -> None:
    """A user's cover (None: back to the worker's choice, the best face)."""
    session.execute(update(Persons).where(Persons.Id == person_id)
                    .values(CoverFaceId=face_id, CoverByUser=face_id is not None))
    if face_id is None:
        refresh_covers(session, [person_id])


def cover_of(session: Session, person_id: int) -> int | None:
    return session.scalar(select(Persons.CoverFaceId).where(Persons.Id == person_id))


def _covers(session: Session, person_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Person id -> (face id, thumbnail path) of its cover: Persons.CoverFaceId while it is
    one of its faces, else its best face (cover_order)."""
    out: dict[int, tuple[int, str]] = {}
    for chunk in chunks(person_ids):
        chosen = case((Faces.Id == Persons.CoverFaceId, 0), else_=1)
        ranked = (
            select(Faces.PersonId.label("pid"), Faces.Id.label("fid"), Faces.ThumbnailPath.label("thumb"),
                   func.row_number().over(partition_by=Faces.PersonId,
                                          order_by=(chosen, *cover_order())).label("rank"))
            .join(Persons, Persons.Id == Faces.PersonId)
            .where(Faces.PersonId.in_(chunk), Faces.ThumbnailPath.is_not(None)).subquery()
        )
        for pid, fid, thumb in session.execute(select(ranked.c.pid, ranked.c.fid, ranked.c.thumb)
                                               .where(ranked.c.rank == 1)):
            out[pid] = (fid, thumb)
    return out


@dataclass(frozen=True)
class PersonFace:
    face_id: int
    media_file_id: int
    file_path: str
    confidence: float | None
    assigned_by: str | None
    assigned_at: datetime | None
    thumbnail: str | None
    blur: float | None = None  # sharpness of the face (variance of the Laplacian)


def faces_of_person(session: Session, person_id: int) -> list[PersonFace]:
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, MediaFile.FilePath, Faces.Confidence, Faces.AssignedBy,
               Faces.AssignedAt, Faces.ThumbnailPath, Faces.Blur)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .where(Faces.PersonId == person_id).order_by(Faces.Id)
    ).all()
    return [PersonFace(*r) for r in rows]
