"""Face tracks in a video: the same face in consecutive sampled frames is one track, and a
track keeps only its best few faces (a 10-minute interview is not 600 faces of one person).

Pure: faces in, tracks out; no model, no database. A face continues a track seen in one of
the last two samples (a detector may miss a face once) when their boxes overlap (IoU >=
`iou`) and, when both have vectors, the vectors agree (cosine >= `similarity`). Failing
that, it joins any track whose vectors agree as much as matching requires
(`match_similarity`: a cut between two shots of one person, or someone coming back).
Per sample the closest pairs are taken first, continuing before jumping, and a track
takes at most one face of a frame (two faces of one frame are two people).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from app.types import Box

T = TypeVar("T")  # what the caller carries with each face (thumbnail, vectors, ...)


@dataclass
class Candidate(Generic[T]):
    box: Box  # in frame pixels
    vector: np.ndarray | None  # L2-normalised; None when the face was not embedded
    rank: tuple  # larger is better: which faces a track keeps
    item: T


@dataclass
class Track(Generic[T]):
    number: int
    last_sample: int
    last_box: Box
    total: np.ndarray | None = None  # sum of the vectors seen
    faces: int = 0
    kept: list[Candidate[T]] = field(default_factory=list)  # best first

    @property
    def vector(self) -> np.ndarray | None:
        if self.total is None:
            return None
        n = float(np.linalg.norm(self.total))
        return self.total / n if n > 0 else None


class Tracker(Generic[T]):
    def __init__(self, keep: int, iou: float, similarity: float, match_similarity: float, max_gap: int = 1):
        self.keep = keep
        self.iou = iou
        self.similarity = similarity
        self.match_similarity = match_similarity
        self.max_gap = max_gap  # samples a track may miss (a blink of the detector) and go on
        self.tracks: list[Track[T]] = []

    def _score(self, track: Track[T], c: Candidate[T], sample: int) -> float | None:
        """How well a face continues a track (higher is better), None when it does not."""
        tv = track.vector
        cos = float(tv @ c.vector) if tv is not None and c.vector is not None else None
        near = sample - track.last_sample <= self.max_gap + 1 and c.box.iou(track.last_box) >= self.iou
        if near and (cos is None or cos >= self.similarity):  # continues it: before any jump
            return 2.0 + (cos if cos is not None else c.box.iou(track.last_box))
        if cos is not None and cos >= self.match_similarity:
            return 1.0 + cos
        return None

    def add(self, sample: int, faces: list[Candidate[T]]) -> list[int]:
        """The faces of one sampled frame; returns each face's track number."""
        pairs = []
        for t, track in enumerate(self.tracks):
            for f, c in enumerate(faces):
                score = self._score(track, c, sample)
                if score is not None:
                    pairs.append((score, t, f))
        pairs.sort(key=lambda p: -p[0])
        taken_tracks: set[int] = set()
        of_face: dict[int, int] = {}
        for _, t, f in pairs:
            if t not in taken_tracks and f not in of_face:
                taken_tracks.add(t)
                of_face[f] = t
        out = []
        for f, c in enumerate(faces):
            if f in of_face:
                track = self.tracks[of_face[f]]
            else:
                track = Track(len(self.tracks), sample, c.box)
                self.tracks.append(track)
            self._join(track, sample, c)
            out.append(track.number)
        return out

    def _join(self, track: Track[T], sample: int, c: Candidate[T]) -> None:
        track.last_sample, track.last_box = sample, c.box
        track.faces += 1
        if c.vector is not None:
            track.total = c.vector.astype(np.float64) if track.total is None else track.total + c.vector
        track.kept.append(c)
        track.kept.sort(key=lambda k: k.rank, reverse=True)
        del track.kept[self.keep:]  # the others (and their thumbnails) are let go at once

    def kept(self) -> list[tuple[int, Candidate[T]]]:
        """(track number, face) of every face kept, track by track."""
        return [(t.number, c) for t in self.tracks for c in t.kept]
