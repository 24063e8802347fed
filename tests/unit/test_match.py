import numpy as np

from app.pipeline import match as match_mod
from app.pipeline.match import Known, match_faces, match_to_persons, top_k
from tests.unit.synthetic import faces_around, identities, normalise


def _known(vectors, persons, media):
    return Known(np.asarray(vectors, np.float32), np.asarray(persons, np.int64), np.asarray(media, np.int64))


def test_top_k_in_blocks_equals_brute_force(monkeypatch):
    rng = np.random.default_rng(3)
    q, b = normalise(rng.normal(size=(50, 16))), normalise(rng.normal(size=(300, 16)))
    monkeypatch.setattr(match_mod, "BLOCK_NEW", 7)
    monkeypatch.setattr(match_mod, "BLOCK_KNOWN", 33)
    idx, sim = top_k(q, b, 5)
    full = q @ b.T
    expected = np.argsort(-full, axis=1)[:, :5]
    assert (idx == expected).all()
    assert np.allclose(sim, np.take_along_axis(full, expected, axis=1))


def test_threshold_and_best_person():
    ids = identities(2, seed=1)
    known = _known(np.vstack([faces_around(ids[0], 3, 0.9, 1), faces_around(ids[1], 3, 0.9, 2)]),
                   [10, 10, 10, 20, 20, 20], [1, 2, 3, 4, 5, 6])
    new = np.vstack([faces_around(ids[1], 1, 0.95, 3), faces_around(ids[0], 1, 0.95, 4),
                     identities(1, seed=99)])
    result = match_faces(new, np.array([100, 101, 102]), known, threshold=0.8)
    assert result.tolist() == [20, 10, -1]


def _on_arc(degrees: float) -> np.ndarray:
    v = np.zeros((1, 512), np.float32)
    v[0, 0], v[0, 1] = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return v


def test_chaining_lets_a_new_face_match_through_another_new_face():
    anchor, a, b = _on_arc(0), _on_arc(35), _on_arc(70)  # cos 35 deg = 0.82, cos 70 deg = 0.34
    known = _known(anchor, [7], [1])
    result = match_faces(np.vstack([b, a]), np.array([2, 3]), known, threshold=0.8)
    assert result.tolist() == [7, 7]
    alone = match_faces(b, np.array([2]), known, threshold=0.8)
    assert alone.tolist() == [-1]


def test_two_faces_of_one_photo_never_get_the_same_person():
    centre = identities(1, seed=8)[0]
    known = _known(faces_around(centre, 2, 0.95, 1), [5, 5], [1, 2])
    new = np.vstack([faces_around(centre, 1, 0.97, 2), faces_around(centre, 1, 0.93, 3)])
    result = match_faces(new, np.array([50, 50]), known, threshold=0.8)
    assert sorted(result.tolist()) == [-1, 5]
    assert result[0] == 5  # the more similar one wins


def test_a_photo_that_already_holds_the_person_does_not_get_it_twice():
    centre = identities(1, seed=9)[0]
    known = _known(faces_around(centre, 1, 0.95, 1), [5], [77])
    new = faces_around(centre, 1, 0.95, 2)
    assert match_faces(new, np.array([77]), known, 0.8).tolist() == [-1]


def test_no_known_faces():
    new = identities(3, seed=2)
    empty = _known(np.zeros((0, 512)), [], [])
    assert match_faces(new, np.arange(3), empty, 0.8).tolist() == [-1, -1, -1]


def test_a_forbidden_person_is_skipped_for_the_next_best():
    ids = identities(2, seed=4)
    known = _known(np.vstack([faces_around(ids[0], 2, 0.95, 1), faces_around(ids[0], 2, 0.95, 2)]),
                   [10, 10, 20, 20], [1, 2, 3, 4])
    new = faces_around(ids[0], 1, 0.97, 3)
    assert match_faces(new, np.array([9]), known, 0.8, forbidden={0: {10}}).tolist() == [20]
    assert match_faces(new, np.array([9]), known, 0.8, forbidden={0: {10, 20}}).tolist() == [-1]


def _faces_of(known: Known, asked: list):
    def faces_of(persons):
        asked.append(sorted(persons.tolist()))
        rows = np.isin(known.person_ids, persons)
        return Known(known.vectors[rows], known.person_ids[rows], known.media_ids[rows])
    return faces_of


def test_matching_each_face_to_one_person_agrees_with_full_matching_where_that_person_is_the_best(monkeypatch):
    """Large libraries match a face only against the person its deciding vector is nearest
    to; where that is the person full matching finds, the decisions are the same, also
    when the known faces are read a few persons at a time."""
    ids = identities(6, seed=21)
    persons = np.repeat([10, 20, 30, 40, 50, 60], 4)
    known = _known(np.vstack([faces_around(ids[i], 4, 0.95, 30 + i) for i in range(6)]), persons, np.arange(24))
    truth = np.array([10, 20, 30, 40, 50, 60, 10, 20, -1, -1])
    new = np.vstack([faces_around(ids[i % 6], 1, 0.93, 40 + i) for i in range(8)] + [identities(2, seed=77)])
    media = np.array([100, 101, 102, 103, 104, 105, 3, 106, 107, 108])  # face 6 is in a photo of person 10
    full = match_faces(new, media, known, 0.8)
    assert full.tolist() == [10, 20, 30, 40, 50, 60, -1, 20, -1, -1]
    counts = np.where(truth >= 0, 4, 0)
    asked = []
    assert match_to_persons(new, media, truth, counts, _faces_of(known, asked), 0.8).tolist() == full.tolist()
    assert asked == [[10, 20, 30, 40, 50, 60]]  # persons nobody is near are never read
    monkeypatch.setattr(match_mod, "PERSON_FACES_CHUNK", 9)  # two persons' faces at a time
    asked = []
    assert match_to_persons(new, media, truth, counts, _faces_of(known, asked), 0.8).tolist() == full.tolist()
    assert asked == [[10, 20], [30, 40], [50, 60]]
    wrong = truth.copy()
    wrong[0] = 20  # nearest to another person on the deciding vectors: no match at all
    assert match_to_persons(new, media, wrong, counts, _faces_of(known, []), 0.8)[0] == -1


def test_matching_to_one_person_chains_and_keeps_the_photo_and_rejection_rules():
    anchor, a, b = _on_arc(0), _on_arc(35), _on_arc(70)
    known = _known(anchor, [7], [1])
    one = np.array([7, 7])
    assert match_to_persons(np.vstack([b, a]), np.array([2, 3]), one, one, _faces_of(known, []), 0.8).tolist() \
        == [7, 7]
    assert match_to_persons(np.vstack([b, a]), np.array([2, 3]), one, one, _faces_of(known, []), 0.8,
                            forbidden={1: {7}}).tolist() == [-1, -1]  # the chain's link may not take 7
    centre = identities(1, seed=8)[0]
    known = _known(faces_around(centre, 2, 0.95, 1), [5, 5], [1, 2])
    new = np.vstack([faces_around(centre, 1, 0.93, 3), faces_around(centre, 1, 0.97, 2)])
    five = np.array([5, 5])
    assert match_to_persons(new, np.array([50, 50]), five, five, _faces_of(known, []), 0.8).tolist() == [-1, 5]
    assert match_to_persons(new, np.array([2, 60]), five, five, _faces_of(known, []), 0.8).tolist() == [-1, 5]
