"""Average linkage under an absolute bound (app/pipeline/linkage.py) and the planner and
candidate choice built on it, on synthetic unit vectors."""
import numpy as np

from app.pipeline.align import TEMPLATE, aligned_crop, similarity
from app.pipeline.assign import Faces, plan_linkage
from app.pipeline.linkage import LinkageParams, Seeds, cluster
from app.repositories.recognition import FaceVectors
from app.services.assign import candidates
from tests.unit.synthetic import faces_around, identities, normalise

P = LinkageParams(threshold=0.5, pair_threshold=0.6, neighbours=10)


def _groups(labels: np.ndarray) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        out.setdefault(lab, []).append(i)
    return sorted(out.values())


def test_identities_become_groups_and_strangers_stay_alone():
    ids = identities(5, dim=128, seed=1)
    # 3 people with 6 faces each (pairwise similarity about 0.72), 2 strangers
    vectors = np.vstack([faces_around(ids[i], 6, 0.85, 10 + i) for i in range(3)] + [ids[3:5]])
    labels, _ = cluster(vectors, np.arange(20), Seeds.empty(128), P)
    assert _groups(labels) == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18)), [18], [19]]


def test_a_chain_of_close_neighbours_does_not_merge_its_far_ends():
    """Single linkage would join a chain whose neighbours are close; average linkage keeps
    every group's members close to the group as a whole."""
    a, b = identities(2, dim=64, seed=2)
    steps = np.linspace(0, 1, 12)
    chain = normalise(np.array([(1 - t) * a + t * b for t in steps]))
    assert min(float(chain[i] @ chain[i + 1]) for i in range(11)) > 0.9  # each link is strong
    labels, _ = cluster(chain, np.arange(12), Seeds.empty(64), LinkageParams(0.75, 0.75, 4))
    for group in _groups(labels):
        members = chain[group]
        centre = members.sum(axis=0)
        # the bound holds for every group: the average similarity within it
        n = len(group)
        if n > 1:
            assert (float(centre @ centre) - n) / (n * (n - 1)) >= 0.75
    assert len(_groups(labels)) > 1


def test_two_lone_faces_pair_only_at_the_pair_threshold():
    a = identities(1, dim=64, seed=3)[0]
    two = faces_around(a, 2, 0.75, 4)  # similarity between them about 0.56
    s = float(two[0] @ two[1])
    assert P.threshold < s < P.pair_threshold
    assert _groups(cluster(two, np.arange(2), Seeds.empty(64), P)[0]) == [[0], [1]]
    assert _groups(cluster(two, np.arange(2), Seeds.empty(64), LinkageParams(0.5, 0.5))[0]) == [[0, 1]]


def test_one_photo_never_holds_two_faces_of_one_group():
    a = identities(1, dim=64, seed=5)[0]
    vectors = faces_around(a, 4, 0.95, 6)
    labels, _ = cluster(vectors, np.array([1, 1, 2, 3]), Seeds.empty(64), P)
    assert labels[0] != labels[1]
    assert len(_groups(labels)) == 2


def test_faces_join_known_persons_and_known_persons_never_merge():
    ids = identities(2, dim=64, seed=7)
    # two known persons that look alike: one identity's faces split in two persons
    known = faces_around(ids[0], 6, 0.9, 8)
    seeds, persons = Seeds.of(known, np.array([100, 100, 100, 200, 200, 200]), np.arange(6))
    new = np.vstack([faces_around(ids[0], 2, 0.9, 9), faces_around(ids[1], 3, 0.9, 10)])
    labels, _ = cluster(new, np.arange(10, 15), seeds, P)
    assert set(labels[:2].tolist()) <= {0, 1}  # joined one of the known persons
    assert (labels[2:] >= 2).all() and len(set(labels[2:].tolist())) == 1  # a new group
    assert persons.tolist() == [100, 200]


def test_plan_matches_first_then_joins_and_groups():
    ids = identities(3, dim=64, seed=12)
    kv = faces_around(ids[0], 5, 0.9, 13)
    known = Faces(kv, kv, np.arange(5), np.full(5, 100))
    nv = np.vstack([faces_around(ids[0], 2, 0.9, 14), faces_around(ids[1], 4, 0.9, 15), ids[2:3]])
    # matching on other vectors: face 0 matches (identical vector), the rest cluster
    match = nv.copy()
    match[0] = kv[0]
    new = Faces(match, nv, np.arange(100, 107), np.full(7, -1))
    result = plan_linkage(new, known, 0.99, P, min_size=3)
    assert result.matched == {0: 100}
    assert result.joined == {1: 100}
    assert result.new_groups == [[2, 3, 4, 5]]


def test_groups_below_the_minimum_size_stay_unassigned():
    a = identities(1, dim=64, seed=16)[0]
    nv = faces_around(a, 2, 0.95, 17)
    empty = Faces(np.zeros((0, 64), np.float32), np.zeros((0, 64), np.float32), np.zeros(0, np.int64),
                  np.zeros(0, np.int64))
    new = Faces(nv, nv, np.arange(2), np.full(2, -1))
    assert plan_linkage(new, empty, 0.99, P, min_size=3).new_groups == []
    assert plan_linkage(new, empty, 0.99, P, min_size=2).new_groups == [[0, 1]]


def _pool(vectors: np.ndarray, considered: list[bool]) -> FaceVectors:
    n = vectors.shape[0]
    return FaceVectors(np.arange(n), np.arange(n), np.full(n, -1), vectors, vectors, np.array(considered))


def test_nothing_new_means_nothing_to_decide():
    ids = identities(2, dim=64, seed=18)
    vectors = np.vstack([faces_around(ids[0], 3, 0.9, 19), faces_around(ids[1], 3, 0.9, 20)])
    assert candidates(_pool(vectors, [True] * 6), near=0.3).size == 0
    # a new face brings back the old faces close to it, not the others
    with_new = np.vstack([vectors, faces_around(ids[0], 1, 0.9, 21)])
    assert candidates(_pool(with_new, [True] * 6 + [False]), near=0.5).tolist() == [0, 1, 2, 6]


def test_alignment_recovers_a_known_similarity_transform():
    angle, scale, shift = 0.3, 1.7, np.array([40.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE - shift) @ np.linalg.inv(scale * rot).T  # template = scale*rot*points + shift
    m = similarity(points, TEMPLATE)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9)
    assert np.allclose(points @ m[:, :2].T + m[:, 2], TEMPLATE, atol=1e-9)
    image = np.zeros((300, 300, 3), np.uint8)
    assert aligned_crop(image, TEMPLATE + 50).shape == (112, 112, 3)


def test_free_persons_split_in_two_merge_when_a_new_face_is_near_both():
    a = identities(1, dim=64, seed=22)[0]
    known = faces_around(a, 6, 0.9, 23)
    persons, media = np.array([100, 100, 100, 200, 200, 200]), np.arange(6)
    new = faces_around(a, 1, 0.9, 24)
    locked, _ = Seeds.of(known, persons, media)
    free, ids = Seeds.of(known, persons, media, free={100, 200})
    _, roots = cluster(new, np.array([50]), locked, P)
    assert roots.tolist() == [0, 1]  # not free: never merged
    labels, roots = cluster(new, np.array([50]), free, P)
    assert sorted(roots.tolist()) == [0, 0] or sorted(roots.tolist()) == [1, 1]
    assert labels[0] == roots[0]
    # nothing new, nothing merged
    assert cluster(np.zeros((0, 64), np.float32), np.zeros(0), free, P)[1].tolist() == [0, 1]


def test_plan_reports_merged_persons():
    a = identities(1, dim=64, seed=25)[0]
    kv = faces_around(a, 6, 0.9, 26)
    known = Faces(kv, kv, np.arange(6), np.array([100, 100, 100, 100, 200, 200]))
    nv = faces_around(a, 1, 0.9, 27)
    new = Faces(nv, nv, np.array([50]), np.array([-1]))
    result = plan_linkage(new, known, 0.99, P, 3, free={100, 200})
    assert result.merged == {200: 100}  # the smaller person goes into the larger
    assert result.joined == {0: 100}
    assert plan_linkage(new, known, 0.99, P, 3, free={100}).merged == {}


def test_a_rejected_person_is_never_joined_by_the_face_or_its_group():
    """"Not this person": face 0 may not end in person 7, however close, and neither may a
    group it belongs to; the other faces of that identity still join the person."""
    (a,) = identities(1, dim=128, seed=5)
    faces = faces_around(a, 6, 0.85, 6)
    known = faces_around(a, 4, 0.85, 7)
    new = Faces(faces, faces, np.arange(100, 106), np.full(6, -1))
    old = Faces(known, known, np.arange(4), np.full(4, 7))
    free = plan_linkage(new, old, 0.99, P, 3)
    assert free.joined == {i: 7 for i in range(6)}
    vetoed = plan_linkage(new, old, 0.99, P, 3, forbidden={0: {7}})
    # the face, and any face grouped with it before the groups met the person, stay out
    assert 0 not in vetoed.joined and len(vetoed.joined) >= 4 and set(vetoed.joined.values()) == {7}
    # through the FaceNet match too (threshold low enough that every face matches)
    matched = plan_linkage(new, old, 0.3, P, 3, forbidden={0: {7}})
    assert 0 not in matched.matched and 0 not in matched.joined


def test_a_group_carrying_a_rejection_does_not_join_that_seed():
    (a,) = identities(1, dim=128, seed=8)
    faces = faces_around(a, 5, 0.85, 9)
    seeds, _ = Seeds.of(faces_around(a, 3, 0.85, 10), np.full(3, 7), np.arange(3))
    labels, _ = cluster(faces, np.arange(100, 105), seeds, P, forbidden={2: {0}})
    assert labels[2] != 0
    plain, _ = cluster(faces, np.arange(100, 105), seeds, P)
    assert set(plain.tolist()) == {0}


def test_a_face_joins_a_known_person_at_the_join_bound_and_new_faces_do_not():
    """Joining a person made earlier needs only the join bound; two new groups, the threshold."""
    a = identities(1, dim=64, seed=21)[0]
    known = faces_around(a, 8, 0.8, 22)
    seeds, _ = Seeds.of(known, np.full(8, 100), np.arange(8))
    # a face whose average similarity to the person sits between the two bounds
    rng = np.random.default_rng(23)
    for _ in range(200):
        face = normalise((0.55 * a + rng.normal(size=64) * 0.12)[None])[0]
        avg = float((known @ face).mean())
        if 0.42 < avg < 0.48:
            break
    assert 0.42 < avg < 0.48
    strict = LinkageParams(threshold=0.5, pair_threshold=0.6)
    joining = LinkageParams(threshold=0.5, pair_threshold=0.6, join_threshold=0.4)
    assert cluster(face[None], np.array([50]), seeds, strict)[0].tolist() == [1]  # alone
    assert cluster(face[None], np.array([50]), seeds, joining)[0].tolist() == [0]  # joins person 100
    # a face an earlier run left alone faces the bar it failed then, not the lower one
    assert cluster(face[None], np.array([50]), seeds, joining, leftover=np.array([True]))[0].tolist() == [1]
    # the same similarity between new faces forms no group: the threshold holds there
    labels, _ = cluster(np.vstack([known, face[None]]), np.arange(9), Seeds.empty(64), joining)
    assert labels[8] not in labels[:8].tolist()
