"""Face tracks (app/pipeline/tracks.py) on made-up boxes and vectors."""
import numpy as np

from app.pipeline.tracks import Candidate, Tracker
from app.types import Box


def unit(seed: int, near: np.ndarray | None = None, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=64) if near is None else near + noise * rng.normal(size=64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def face(x: float, vector, quality: float = 0.5, usable: bool = True, tag: str = "") -> Candidate:
    return Candidate(Box(x, 50, 100, 120), vector, (usable, quality), tag)


def tracker(keep: int = 3) -> Tracker:
    return Tracker(keep=keep, iou=0.3, similarity=0.5, match_similarity=0.8)


def test_a_face_followed_across_frames_keeps_its_best_faces():
    a = unit(1)
    t = tracker(keep=3)
    qualities = [0.2, 0.9, 0.4, 0.8, 0.1, 0.7]
    for sample, q in enumerate(qualities):
        assert t.add(sample, [face(100 + 3 * sample, unit(sample + 10, a, 0.05), q, tag=str(q))]) == [0]
    assert len(t.tracks) == 1 and t.tracks[0].faces == 6
    assert [c.item for _, c in t.kept()] == ["0.9", "0.8", "0.7"]


def test_usable_faces_are_kept_before_better_scored_unusable_ones():
    t = tracker(keep=2)
    a = unit(1)
    t.add(0, [face(100, None, 0.99, usable=False, tag="blurred")])
    t.add(1, [face(102, a, 0.3, tag="sharp1")])
    t.add(2, [face(104, a, 0.2, tag="sharp2")])
    assert [c.item for _, c in t.kept()] == ["sharp1", "sharp2"]


def test_two_faces_of_one_frame_are_two_tracks_even_when_alike():
    a = unit(1)
    t = tracker()
    assert t.add(0, [face(100, a), face(400, unit(2, a, 0.01))]) == [0, 1]
    # next frame: each continues its own track (overlap), never both the same
    assert t.add(1, [face(402, unit(3, a, 0.01)), face(101, unit(4, a, 0.01))]) == [1, 0]


def test_another_person_at_the_same_place_starts_a_new_track():
    a, b = unit(1), unit(2)
    t = tracker()
    t.add(0, [face(100, a)])
    assert t.add(1, [face(101, b)]) == [1]  # boxes overlap, vectors disagree (a cut)


def test_a_person_who_leaves_and_comes_back_elsewhere_rejoins_by_vector_only_when_close():
    a = unit(1)
    t = tracker()
    t.add(0, [face(100, a)])
    t.add(1, [face(102, a)])
    # three samples without anyone, then the same person elsewhere: matched by the vector
    assert t.add(5, [face(500, unit(7, a, 0.02))]) == [0]
    # someone merely similar (below the match similarity) far away: a new track
    c = unit(8, a, 0.2)
    assert float(c @ a) < 0.8
    assert t.add(9, [face(100, c)]) == [1]


def test_a_gap_of_one_sample_is_bridged_by_overlap_a_longer_one_is_not():
    t = tracker()
    t.add(0, [face(100, None, usable=False)])
    assert t.add(2, [face(101, None, usable=False)]) == [0]  # missed one sample
    assert t.add(5, [face(102, None, usable=False)]) == [1]  # missed two: unknown who


def test_a_continuing_track_wins_over_a_jump_to_an_older_one():
    a = unit(1)
    t = tracker()
    t.add(0, [face(100, a)])  # track 0
    t.add(3, [face(400, unit(5, a, 0.01))])  # far, close vector: joins track 0 by the jump rule
    assert len(t.tracks) == 1
    t.add(4, [face(100, unit(6, a, 0.01)), face(402, unit(7, a, 0.01))])
    # the face at 402 continues track 0 (overlap); the one at 100 cannot take it too
    assert [n for n, _ in t.kept()].count(0) == 3 and len(t.tracks) == 2
