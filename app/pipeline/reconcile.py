"""Re-detection against what is stored: which faces to keep, delete and insert.

Pure: no database, no files. Faces a user decided (assigned, or given a PersonId by
another application) are kept as they are; a new detection overlapping one of them by
at least `same_face_iou` is that same face and is not inserted again. Every other stored
face is replaced by the new detections (re-processing never duplicates faces).

When the file's content changed since the last detection (a photo replaced under its
name, or edited), the stored pixels are gone, so nothing is kept as it is: a face a user
decided is *refreshed* from the new detection that overlaps it most (its row, person and
decision stay; box, thumbnail, scores and vectors are the new detection's, so its
embedding is redone from the new pixels), and a user's face no new detection overlaps is
deleted. Deleting it is the only safe choice: kept, its person would point at a face that
is not in the photo; moved to a new face elsewhere in the photo, the user's decision
would silently land on someone else. The new faces go through recognition like any other, and
the person keeps its name and its other faces (the store logs which decisions went).
Only boxes are known here, so another person's face at the very place of a user's face
in a replaced photo is refreshed too: the store marks a refreshed face with a person
'recheck' (still the user's), and the recognition run compares its new vector with the
person's other faces before assigning anything (app/services/recheck.py): the decision
stands, or the face leaves the person and is assigned like any new face.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Sequence, TypeVar

from app.types import Box

F = TypeVar("F")  # a new detection, carried through untouched

# A new detection this close to a face a user assigned is that same face.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class StoredFace:
    face_id: int
    box: Box | None
    thumbnail_path: str | None
    set_by_user: bool
    person_id: int | None = None
    frame: int | None = None  # a video's face: its frame number


@dataclass(frozen=True)
class Plan(Generic[F]):
    keep: list[StoredFace]
    delete: list[StoredFace]
    insert: list[F]
    skip: list[F]  # detections of faces a user already has
    # changed content: (a user's face, the new detection it takes its pixels from)
    refresh: list[tuple[StoredFace, F]] = field(default_factory=list)


def reconcile(stored: Sequence[StoredFace], found: Sequence[F], boxes: Sequence[Box],
              same_face_iou: float = SAME_FACE_IOU, frames: Sequence[int | None] | None = None,
              changed: bool = False) -> Plan[F]:
    """`boxes[i]` is the box of `found[i]`, in the same pixels as the stored boxes; in a
    video, `frames[i]` its frame number: only a kept face of the same frame is the same face.
    `changed`: the file's content is not what the stored faces were found in."""
    if changed:
        return _changed(stored, found, boxes, same_face_iou, frames)
    keep = [s for s in stored if s.set_by_user]
    delete = [s for s in stored if not s.set_by_user]
    kept = [(s.box, s.frame) for s in keep if s.box is not None]
    insert, skip = [], []
    for i, (face, box) in enumerate(zip(found, boxes)):
        frame = frames[i] if frames is not None else None
        (skip if any(f == frame and box.iou(k) >= same_face_iou for k, f in kept) else insert).append(face)
    return Plan(keep, delete, insert, skip)


def _changed(stored: Sequence[StoredFace], found: Sequence[F], boxes: Sequence[Box], same_face_iou: float,
             frames: Sequence[int | None] | None) -> Plan[F]:
    """Each user's face takes the free new detection it overlaps most (best pairs first)."""
    frame_of = (lambda i: frames[i]) if frames is not None else (lambda i: None)
    pairs = sorted(
        ((s.box.iou(box), k, i) for k, s in enumerate(stored) if s.set_by_user and s.box is not None
         for i, box in enumerate(boxes) if frame_of(i) == s.frame),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    taken_face: set[int] = set()
    taken_found: set[int] = set()
    refresh: list[tuple[StoredFace, F]] = []
    for iou, k, i in pairs:
        if iou < same_face_iou:
            break
        if k in taken_face or i in taken_found:
            continue
        taken_face.add(k)
        taken_found.add(i)
        refresh.append((stored[k], found[i]))
    delete = [s for k, s in enumerate(stored) if k not in taken_face]
    insert = [f for i, f in enumerate(found) if i not in taken_found]
    return Plan([], delete, insert, [], sorted(refresh, key=lambda p: p[0].face_id))
