"""Re-detection against what is stored: which faces to keep, delete and insert.

Pure: no database, no files. Faces a user decided (assigned, or given a PersonId by
another application) are kept as they are; a new detection overlapping one of them by
at least `same_face_iou` is that same face and is not inserted again. Every other stored
face is replaced by the new detections (re-processing never duplicates faces).
"""
from __future__ import annotations

from dataclasses import dataclass
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


def reconcile(stored: Sequence[StoredFace], found: Sequence[F], boxes: Sequence[Box],
              same_face_iou: float = SAME_FACE_IOU, frames: Sequence[int | None] | None = None) -> Plan[F]:
    """`boxes[i]` is the box of `found[i]`, in the same pixels as the stored boxes; in a
    video, `frames[i]` its frame number: only a kept face of the same frame is the same face."""
    keep = [s for s in stored if s.set_by_user]
    delete = [s for s in stored if not s.set_by_user]
    kept = [(s.box, s.frame) for s in keep if s.box is not None]
    insert, skip = [], []
    for i, (face, box) in enumerate(zip(found, boxes)):
        frame = frames[i] if frames is not None else None
        (skip if any(f == frame and box.iou(k) >= same_face_iou for k, f in kept) else insert).append(face)
    return Plan(keep, delete, insert, skip)
