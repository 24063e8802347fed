"""SQL for the recognition stage: embeddings, known and unassigned faces, persons.

Callers own the transaction. Embeddings are float32 bytes, compared only within one
EmbeddingModel.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np
from sqlalchemy import BigInteger, and_, bindparam, case, cast, delete, false, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from app.db.models import (
    ASSIGNED_CLUSTERED,
    ASSIGNED_MATCHED,
    ASSIGNED_RECHECK,
    ASSIGNED_USER,
    USER_DECIDED,
    Faces,
    MediaFile,
    Persons,
)
from app.db.types import UTCDateTime
from app.repositories.faces import FACES
from app.repositories.ids import ARRAY_CHUNK, chunks, id_batches
from app.repositories.persons import FaceState

# Any fixed number: the key of the PostgreSQL advisory lock of the assignment step.
ASSIGNMENT_LOCK_KEY = 741_852_963


@dataclass(frozen=True)
class FaceToEmbed:
    face_id: int
    media_file_id: int
    file_path: str
    bounding_box: str
    landmarks: str | None
    frame_time_ms: int | None = None  # a video's face: the frame to cut it from


def faces_to_embed(session: Session, face_ids: Sequence[int]) -> list[FaceToEmbed]:
    """What embedding needs of these (claimed) faces, a photo's faces together."""
    if not face_ids:
        return []
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, MediaFile.FilePath, Faces.BoundingBox, Faces.Landmarks,
               Faces.FrameTimeMs)
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .where(Faces.Id.in_(face_ids))
        .order_by(Faces.MediaFileId, Faces.FrameTimeMs, Faces.Id)
    ).all()
    return [FaceToEmbed(*r) for r in rows]


def save_embeddings(session: Session, rows: Sequence[tuple[int, bytes, bytes | None]], model: str,
                    model2: str | None) -> None:
    """(face id, FaceNet vector, second vector or None) per face."""
    if rows:
        values = dict(Embedding=bindparam("vector"), EmbeddingModel=model, EmbedError=None,
                      EmbedLockedBy=None, EmbedLockedUntil=None)
        if model2 is not None:
            values.update(Embedding2=bindparam("vector2"), Embedding2Model=model2)
        session.execute(
            update(FACES).where(FACES.c.Id == bindparam("face_id")).values(**values),
            [{"face_id": fid, "vector": vec, "vector2": vec2} for fid, vec, vec2 in rows],
        )


def lock_assignment(session: Session) -> None:
    """Serialise the assignment step across processes (PostgreSQL; SQLite has one worker)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ASSIGNMENT_LOCK_KEY})


@dataclass(frozen=True)
class FaceVectors:
    face_ids: np.ndarray  # int64
    media_ids: np.ndarray  # int64: what the same-photo rule compares (photo_key(): a frame in a video)
    person_ids: np.ndarray  # int64, -1 for none
    vectors: np.ndarray  # float32 (n, d): the deciding model's
    match_vectors: np.ndarray  # float32 (n, 512): FaceNet's (the same array when FaceNet decides)
    considered: np.ndarray  # bool: the assignment step has looked at this face before


def _vectors(rows, same: bool) -> FaceVectors:
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), np.int64, n)
    media = np.fromiter((r[1] for r in rows), np.int64, n)
    persons = np.fromiter((r[2] if r[2] is not None else -1 for r in rows), np.int64, n)
    considered = np.fromiter((r[3] is not None for r in rows), bool, n)
    match = np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows]) if n else np.zeros((0, 512), np.float32)
    if same:
        vectors = match
    else:
        vectors = np.vstack([np.frombuffer(r[5], dtype=np.float32) for r in rows]) if n else np.zeros((0, 128), np.float32)
    return FaceVectors(ids, media, persons, vectors, match, considered)


def photo_key():
    """What the same-photo rule compares (two faces of one photo are two people): the
    media file for a photo's faces, the frame for a video's (one person is in many frames
    of a video; two faces of one frame are two people). Frames get negative keys, which
    no media file id is."""
    media = cast(Faces.MediaFileId, BigInteger)
    return case((Faces.FrameNumber.is_(None), media),
                else_=-(media * FRAME_KEY_SPAN + cast(Faces.FrameNumber, BigInteger) + 1))


FRAME_KEY_SPAN = 1 << 24  # frames per video in the key: 16.7M (9 days at 20 fps)


def _columns(facenet: str, model: str):
    """Columns to read and the condition that a face has every vector needed: FaceNet's
    in Embedding (the contract's column) and, when another model decides, its vector
    in Embedding2."""
    has_facenet = and_(Faces.Embedding.is_not(None), Faces.EmbeddingModel == facenet)
    columns = [Faces.Id, photo_key(), Faces.PersonId, Faces.ConsideredAt, Faces.Embedding]
    if model == facenet:
        return columns, has_facenet
    return columns + [Faces.Embedding2], and_(has_facenet, Faces.Embedding2.is_not(None),
                                              Faces.Embedding2Model == model)


def known_faces(session: Session, facenet: str, model: str) -> FaceVectors:
    """Faces with a person (any way it was set): matching's known faces and the persons
    new faces may join."""
    columns, ready = _columns(facenet, model)
    rows = session.execute(
        select(*columns).where(ready, Faces.PersonId.is_not(None)).order_by(Faces.Id)
    ).all()
    return _vectors(rows, model == facenet)


def unassigned_faces(session: Session, facenet: str, model: str) -> FaceVectors:
    """Usable faces with no person, except those a user left without one on purpose
    (AssignedBy 'user'). A face whose automatic person was deleted by another
    application (PersonId set to NULL by the foreign key) is taken again."""
    columns, ready = _columns(facenet, model)
    rows = session.execute(
        select(*columns)
        .where(ready, Faces.PersonId.is_(None), Faces.IsUsable.is_(True),
               or_(Faces.AssignedBy.is_(None), Faces.AssignedBy.in_((ASSIGNED_MATCHED, ASSIGNED_CLUSTERED))))
        .order_by(Faces.Id)
    ).all()
    return _vectors(rows, model == facenet)


def free_persons(session: Session) -> set[int]:
    """Persons the worker may merge: automatic, unnamed, and no face placed by a user
    (a user's face waiting for its re-check is still the user's)."""
    user_placed = select(Faces.Id).where(Faces.PersonId == Persons.Id,
                                         Faces.AssignedBy.in_(USER_DECIDED)).exists()
    return set(session.scalars(select(Persons.Id).where(_resettable_person(), ~user_placed)).all())


def merge_persons(session: Session, merged: dict[int, int], now: datetime) -> None:
    """Move every face of each merged person to the person it merged into, and delete the
    emptied (automatic) person."""
    for gone, into in merged.items():
        session.execute(update(Faces).where(Faces.PersonId == gone).values(PersonId=into, AssignedAt=now)
                        .execution_options(synchronize_session=False))
        session.execute(delete(Persons).where(Persons.Id == gone, _resettable_person())
                        .execution_options(synchronize_session=False))


def mark_considered(session: Session, face_ids: Sequence[int], now: datetime) -> None:
    """Faces the assignment step looked at and left without a person."""
    for where in id_batches(session, Faces.Id, face_ids):
        session.execute(update(Faces).where(where).values(ConsideredAt=now)
                        .execution_options(synchronize_session=False))


def assign(session: Session, face_person: Sequence[tuple[int, int]], how: str, now: datetime) -> None:
    if face_person and session.get_bind().dialect.name == "postgresql":
        # one statement per 50,000 faces, the pairs as two arrays (a million faces in seconds)
        for start in range(0, len(face_person), ARRAY_CHUNK):
            part = face_person[start:start + ARRAY_CHUNK]
            session.execute(text(
                'UPDATE "Faces" AS f SET "PersonId" = v.p, "AssignedBy" = :how, "AssignedAt" = :now '
                'FROM unnest(CAST(:faces AS integer[]), CAST(:persons AS integer[])) AS v(f, p) '
                'WHERE f."Id" = v.f AND f."PersonId" IS NULL'
            ), {"how": how, "now": now, "faces": [f for f, _ in part], "persons": [p for _, p in part]})
    elif face_person:
        session.execute(
            update(FACES)
            .where(FACES.c.Id == bindparam("face_id"), FACES.c.PersonId.is_(None))
            .values(PersonId=bindparam("person_id"), AssignedBy=how, AssignedAt=now),
            [{"face_id": f, "person_id": p} for f, p in face_person],
        )


def create_persons(session: Session, count: int) -> list[int]:
    """New automatic persons (no name), ids in creation order."""
    if count == 0:
        return []
    rows = session.execute(
        insert(Persons).returning(Persons.Id, sort_by_parameter_order=True),
        [{"IsAutomatic": True} for _ in range(count)],
    ).all()
    return [r[0] for r in rows]


def touch_persons(session: Session, person_ids: Sequence[int]) -> None:
    """ModifiedAt = now on persons whose set of faces changed."""
    for chunk in chunks(person_ids):
        session.execute(update(Persons).where(Persons.Id.in_(chunk)).values(ModifiedAt=func.now()))


# --- re-check of users' faces refreshed from new pixels (app/services/recheck.py) -----

@dataclass(frozen=True)
class FaceToRecheck:
    face_id: int
    person_id: int | None  # None: another application removed the person since
    person_name: str | None
    file_path: str
    assigned_at: datetime | None
    vector: np.ndarray | None  # the deciding vector; None: the face is not usable (never embedded)


def faces_to_recheck(session: Session, facenet: str, model: str) -> list[FaceToRecheck]:
    """Faces waiting for a re-check that can be decided now: those with their deciding
    vector, and those that will never have one (not usable). The rest wait for embedding."""
    columns, ready = _columns(facenet, model)
    has_vector = func.coalesce(ready, false())
    rows = session.execute(
        select(Faces.Id, Faces.PersonId, Persons.Name, MediaFile.FilePath, Faces.AssignedAt, has_vector, columns[-1])
        .join(MediaFile, MediaFile.Id == Faces.MediaFileId)
        .outerjoin(Persons, Persons.Id == Faces.PersonId)
        .where(Faces.AssignedBy == ASSIGNED_RECHECK, or_(ready, Faces.IsUsable.is_(False)))
        .order_by(Faces.Id)
    ).all()
    return [FaceToRecheck(*r[:5], np.frombuffer(r[6], np.float32) if r[5] else None) for r in rows]


def decided_vectors(session: Session, person_ids: Sequence[int], facenet: str, model: str) -> dict[int, np.ndarray]:
    """person id -> the deciding vectors of its faces, except those waiting for a re-check."""
    columns, ready = _columns(facenet, model)
    found: dict[int, list[np.ndarray]] = {}
    for chunk in chunks(person_ids):
        rows = session.execute(
            select(Faces.PersonId, columns[-1])
            .where(ready, Faces.PersonId.in_(chunk),
                   Faces.AssignedBy.is_distinct_from(ASSIGNED_RECHECK))
        )
        for person, vector in rows:
            found.setdefault(person, []).append(np.frombuffer(vector, np.float32))
    return {p: np.vstack(v) for p, v in found.items()}


def _end_recheck(session: Session, face_ids: Sequence[int], **values) -> None:
    """Set these values on the faces still waiting for a re-check."""
    for where in id_batches(session, Faces.Id, face_ids):
        session.execute(update(Faces).where(where, Faces.AssignedBy == ASSIGNED_RECHECK)
                        .values(**values).execution_options(synchronize_session=False))


def confirm_rechecked(session: Session, face_ids: Sequence[int]) -> None:
    """The user's decision stands: AssignedBy 'user' again, AssignedAt as the user left it."""
    _end_recheck(session, face_ids, AssignedBy=ASSIGNED_USER)


def release_rechecked(session: Session, face_ids: Sequence[int], now: datetime) -> None:
    """The face is someone else now: no person, and new to the assignment step."""
    _end_recheck(session, face_ids, PersonId=None, AssignedBy=None, AssignedAt=now, ConsideredAt=None)


# --- recluster ------------------------------------------------------------------------

def _resettable_person():
    return and_(Persons.IsAutomatic.is_(True), Persons.Name.is_(None))


def automatic_assignments(session: Session) -> dict[int, FaceState]:
    """face id -> state of every automatic assignment to an unnamed automatic person: what
    --recluster rebuilds (and logs as cleared)."""
    rows = session.execute(
        select(Faces.Id, Faces.MediaFileId, Faces.PersonId, Faces.AssignedBy, Faces.AssignedAt)
        .join(Persons, Persons.Id == Faces.PersonId)
        .where(Faces.AssignedBy.in_((ASSIGNED_MATCHED, ASSIGNED_CLUSTERED)), _resettable_person())
    ).all()
    return {r[0]: FaceState(*r) for r in rows}


def clear_automatic_assignments(session: Session, now: datetime) -> int:
    resettable = select(Persons.Id).where(_resettable_person())
    result = session.execute(
        update(Faces)
        .where(Faces.AssignedBy.in_((ASSIGNED_MATCHED, ASSIGNED_CLUSTERED)),
               Faces.PersonId.in_(resettable))
        .values(PersonId=None, AssignedBy=None, AssignedAt=now)
        .execution_options(synchronize_session=False)
    )
    # every face left over is looked at again
    session.execute(update(Faces).where(Faces.ConsideredAt.is_not(None)).values(ConsideredAt=None)
                    .execution_options(synchronize_session=False))
    return result.rowcount or 0


def delete_empty_automatic_persons(session: Session) -> int:
    """Automatic unnamed persons left with no face. Named or user-made persons stay."""
    has_faces = select(Faces.Id).where(Faces.PersonId == Persons.Id).exists()
    result = session.execute(
        delete(Persons).where(_resettable_person(), ~has_faces).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


# --- large libraries: faces as arrays, vectors by id ------------------------------------

@dataclass(frozen=True)
class FaceTable:
    """Every face with the vectors the deciding step needs, as arrays in face-id order."""

    face_ids: np.ndarray  # int64, ascending
    media_ids: np.ndarray  # int64: what the same-photo rule compares (photo_key(): a frame in a video)
    person_ids: np.ndarray  # int64, -1 for none
    considered: np.ndarray  # bool: the assignment step has looked at this face before
    open: np.ndarray  # bool: unassigned and the step may assign it (usable, not left alone by a user)


TABLE_BATCH = 100_000


def face_table(session: Session, facenet: str, model: str) -> FaceTable:
    """Ids and states only (no vectors), as arrays: a million faces are a few tens of
    megabytes. PostgreSQL sends them with COPY in its binary format, parsed by NumPy in
    one pass (no Python object per face); other databases in batches of rows."""
    _, ready = _columns(facenet, model)
    may_assign = and_(Faces.PersonId.is_(None), Faces.IsUsable.is_(True),
                      or_(Faces.AssignedBy.is_(None), Faces.AssignedBy.in_((ASSIGNED_MATCHED, ASSIGNED_CLUSTERED))))
    query = select(cast(Faces.Id, BigInteger), photo_key(),
                   cast(func.coalesce(Faces.PersonId, -1), BigInteger), Faces.ConsideredAt.is_not(None),
                   func.coalesce(may_assign, false())).where(ready).order_by(Faces.Id)
    if session.get_bind().dialect.name == "postgresql":
        return _face_table_copy(session, query)
    parts = []
    for batch in session.execute(query.execution_options(yield_per=TABLE_BATCH)).partitions():
        cols = list(zip(*batch))
        parts.append([np.array(cols[0], np.int64), np.array(cols[1], np.int64), np.array(cols[2], np.int64),
                      np.array(cols[3], bool), np.array(cols[4], bool)])
    if not parts:
        empty = np.zeros(0, np.int64)
        return FaceTable(empty, empty, empty, np.zeros(0, bool), np.zeros(0, bool))
    return FaceTable(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


# One row of face_table's query in PostgreSQL's binary COPY format: a field count, then
# each field's length and value (three bigints, two booleans; none is ever NULL).
_COPY_ROW = np.dtype([("fields", ">i2"), ("n_id", ">i4"), ("id", ">i8"), ("n_media", ">i4"), ("media", ">i8"),
                      ("n_person", ">i4"), ("person", ">i8"), ("n_considered", ">i4"), ("considered", "?"),
                      ("n_open", ">i4"), ("open", "?")])
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _face_table_copy(session: Session, query) -> FaceTable:
    sql = str(query.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    out = io.BytesIO()
    session.connection().connection.cursor().copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT binary)", out)
    data = out.getbuffer()
    if bytes(data[:11]) != _COPY_SIGNATURE or bytes(data[-2:]) != b"\xff\xff":
        raise ValueError("face table: unexpected COPY output from the database")
    start = 19 + int.from_bytes(data[15:19], "big")  # signature, flags, header extension
    rows = np.frombuffer(data[start:len(data) - 2], _COPY_ROW)
    expected = (5, 8, 8, 8, 1, 1)
    got = (rows["fields"], rows["n_id"], rows["n_media"], rows["n_person"], rows["n_considered"], rows["n_open"])
    if any((g != e).any() for g, e in zip(got, expected)):
        raise ValueError("face table: unexpected row layout in the COPY output")
    table = FaceTable(rows["id"].astype(np.int64), rows["media"].astype(np.int64), rows["person"].astype(np.int64),
                      rows["considered"].copy(), rows["open"].copy())
    return table


def count_ready(session: Session, facenet: str, model: str) -> int:
    _, ready = _columns(facenet, model)
    return int(session.scalar(select(func.count()).select_from(Faces).where(ready)) or 0)


def vectors_of(session: Session, face_ids: np.ndarray, facenet: str, model: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(ids, FaceNet vectors, deciding vectors or None when FaceNet decides) of these
    faces in ascending id order; faces no longer there, or re-embedded by another model,
    are left out."""
    columns, ready = _columns(facenet, model)
    ids_out, f_out, d_out = [], [], []
    for where in id_batches(session, Faces.Id, face_ids.tolist()):
        for r in session.execute(select(*columns).where(ready, where).order_by(Faces.Id)):
            ids_out.append(r[0])
            f_out.append(np.frombuffer(r[4], np.float32))
            if model != facenet:
                d_out.append(np.frombuffer(r[5], np.float32))
    ids = np.array(ids_out, np.int64)
    fac = np.vstack(f_out) if f_out else np.zeros((0, 512), np.float32)
    dec = (np.vstack(d_out) if d_out else np.zeros((0, 128), np.float32)) if model != facenet else None
    return ids, fac, dec


def database_now(session: Session) -> datetime:
    """The database's clock (the one that stamps ModifiedAt): the vector store's
    high-water mark."""
    return session.scalar(select(func.now(type_=UTCDateTime())))


def vectors_modified_since(session: Session, since: datetime | None, facenet: str, model: str) -> np.ndarray:
    """Ids (ascending) of the faces with their vectors whose row changed at or after
    `since` (every such face when None): the faces whose vectors may have changed."""
    _, ready = _columns(facenet, model)
    query = select(cast(Faces.Id, BigInteger)).where(ready)
    if since is not None:
        query = query.where(Faces.ModifiedAt >= since)
    return np.array(session.scalars(query.order_by(Faces.Id)).all(), np.int64)
