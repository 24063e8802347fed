"""Best N photos: best score first, near-duplicates skipped."""
from __future__ import annotations

import numpy as np

from app.pipeline.best import Candidate, choose
from app.types import Box


def vec(*values) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


CENTRED = Box(0.3, 0.2, 0.4, 0.5)


def cand(face_id, media, score, day=None, frame=CENTRED, vector=None):
    return Candidate(face_id, media, score, day, frame, vector)


def test_best_first_and_at_most_n():
    cs = [cand(i, i, s, vector=np.eye(5, dtype=np.float32)[i - 1]) for i, s in enumerate([0.2, 0.9, 0.5, 0.7, 0.1], 1)]
    chosen, skipped = choose(cs, 3, max_similarity=0.99)
    assert [c.face_id for c in chosen] == [2, 4, 3]
    assert skipped == []


def test_near_identical_embeddings_are_skipped():
    a = vec(1, 0, 0)
    close = vec(1, 0.1, 0)  # cosine 0.995
    far = vec(0.6, 0.8, 0)
    chosen, skipped = choose([cand(1, 1, 0.9, vector=a), cand(2, 2, 0.8, vector=close), cand(3, 3, 0.7, vector=far)],
                             3, max_similarity=0.95)
    assert [c.face_id for c in chosen] == [1, 3]
    assert skipped[0].face_id == 2 and "embedding" in skipped[0].reason
    # a looser limit keeps it
    chosen, _ = choose([cand(1, 1, 0.9, vector=a), cand(2, 2, 0.8, vector=close)], 3, max_similarity=0.999)
    assert len(chosen) == 2


def test_same_day_and_framing_is_skipped_other_day_or_framing_kept():
    cs = [
        cand(1, 1, 0.9, day="2024-01-15"),
        cand(2, 2, 0.8, day="2024-01-15"),  # same day, same framing: a second shot of the moment
        cand(3, 3, 0.7, day="2024-01-16"),  # same framing, another day
        cand(4, 4, 0.6, day="2024-01-15", frame=Box(0.0, 0.0, 0.2, 0.2)),  # same day, other framing
        cand(5, 5, 0.5, day=None),  # day unknown: the rule does not apply
    ]
    chosen, skipped = choose(cs, 10)
    assert [c.face_id for c in chosen] == [1, 3, 4, 5]
    assert [s.face_id for s in skipped] == [2]
    chosen, _ = choose(cs, 10, same_day_iou=1.01)  # the rule switched off
    assert len(chosen) == 5


def test_one_face_per_photo():
    chosen, skipped = choose([cand(1, 7, 0.9), cand(2, 7, 0.8), cand(3, 8, 0.1)], 3)
    assert [c.face_id for c in chosen] == [1, 3]
    assert skipped[0].reason == "photo chosen already"
