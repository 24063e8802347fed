from dataclasses import replace

import numpy as np
import pytest

from app.config import load_settings
from app.pipeline.assign import pick_exemplars, plan
from app.pipeline.cluster import cluster_vectors, split_same_photo
from app.pipeline.match import Known
from app.services.assign import cluster_params
from tests.unit.synthetic import faces_around, identities


def params(**changes):
    """The product's default HDBSCAN / DBSCAN settings, with some changed."""
    return replace(cluster_params(load_settings({}, env_file=None)), **{"algorithm": "hdbscan", **changes})


def _dataset(n_ids=6, per_id=10, similarity=0.85, seed=0):
    ids = identities(n_ids, seed=seed)
    vectors = np.vstack([faces_around(c, per_id, similarity, seed + i + 1) for i, c in enumerate(ids)])
    truth = np.repeat(np.arange(n_ids), per_id)
    return vectors, truth


def _pure(labels, truth):
    """Every cluster holds one identity, and each identity is mostly in one cluster."""
    for label in set(labels.tolist()) - {-1}:
        assert len(set(truth[labels == label].tolist())) == 1
    clustered = (labels >= 0).mean()
    return clustered


@pytest.mark.parametrize("p", [
    params(algorithm="hdbscan"),
    params(algorithm="hdbscan", use_umap=True),
    # eps 0.14 is tuned on real FaceNet vectors; UMAP lays these synthetic ones out wider.
    params(algorithm="dbscan", use_umap=True, dbscan_eps=0.5),
    params(algorithm="dbscan", use_umap=False),
], ids=["hdbscan", "umap+hdbscan", "umap+dbscan", "dbscan-raw"])
def test_separated_identities_are_recovered(p):
    vectors, truth = _dataset()
    labels = cluster_vectors(vectors, p)
    assert _pure(labels, truth) >= 0.9
    assert len(set(labels.tolist()) - {-1}) == 6


def test_umap_runs_repeat():
    vectors, _ = _dataset(seed=4)
    p = params(algorithm="dbscan", use_umap=True)
    assert (cluster_vectors(vectors, p) == cluster_vectors(vectors, p)).all()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8])
def test_small_inputs_fall_back_and_never_crash(n):
    centre = identities(1, seed=3)[0]
    vectors = faces_around(centre, n, 0.9, 1) if n else np.zeros((0, 512), np.float32)
    for p in (params(use_umap=True), params(algorithm="dbscan", use_umap=True)):
        labels = cluster_vectors(vectors, p)
        assert labels.shape == (n,)
        if n >= 3:
            assert len(set(labels.tolist())) == 1 and labels[0] >= 0  # one tight group


def test_split_same_photo_keeps_the_face_nearest_the_centre():
    centre = identities(1, seed=6)[0]
    vectors = np.vstack([faces_around(centre, 3, 0.9, 1), faces_around(centre, 1, 0.6, 2)])
    labels = np.array([0, 0, 0, 0])
    out = split_same_photo(labels, vectors, np.array([1, 2, 3, 3]))
    assert out.tolist() == [0, 0, 0, -1]


def test_exemplars_are_the_most_central_faces():
    centre = identities(1, seed=7)[0]
    vectors = np.vstack([faces_around(centre, 5, 0.95, 1), faces_around(centre, 5, 0.5, 2)])
    known = Known(vectors, np.full(10, 3), np.arange(10))
    assert sorted(pick_exemplars(known, 5).tolist()) == [0, 1, 2, 3, 4]


def test_plan_joins_known_persons_and_makes_new_ones():
    ids = identities(4, seed=11)
    # Persons 100 and 200 are known from 6 faces each.
    known_vecs = np.vstack([faces_around(ids[0], 6, 0.85, 1), faces_around(ids[1], 6, 0.85, 2)])
    known = Known(known_vecs, np.repeat([100, 200], 6), np.arange(12))
    # New: 4 more of each known identity (too far for matching at 0.8), 5 of a new identity,
    # and one lone stranger.
    new = np.vstack([faces_around(ids[0], 4, 0.85, 3), faces_around(ids[1], 4, 0.85, 4),
                     faces_around(ids[2], 5, 0.85, 5), faces_around(ids[3], 1, 0.85, 6)])
    media = np.arange(100, 100 + new.shape[0])
    result = plan(new, media, known, threshold=0.8, params=params(), exemplars_per_person=10)
    assigned = {**result.matched, **result.joined}
    assert {i: assigned.get(i) for i in range(8)} == {**{i: 100 for i in range(4)}, **{i: 200 for i in range(4, 8)}}
    assert result.new_groups == [[8, 9, 10, 11, 12]]
    assert 13 not in assigned


def test_plan_respects_the_same_photo_rule_when_joining():
    ids = identities(1, seed=12)
    known = Known(faces_around(ids[0], 6, 0.9, 1), np.full(6, 100), np.arange(6))
    new = faces_around(ids[0], 2, 0.9, 2)
    # threshold 0.9: no match, so the clustering path decides
    result = plan(new, np.array([50, 50]), known, 0.9, params(), 10)
    assert not result.matched
    assert len({**result.matched, **result.joined}) == 1


def test_large_inputs_switch_hdbscan_to_umap(monkeypatch):
    from app.pipeline import cluster as cluster_mod

    calls = []
    real = cluster_mod.reduce
    monkeypatch.setattr(cluster_mod, "reduce", lambda v, p: calls.append(len(v)) or real(v, p))
    vectors, truth = _dataset()
    labels = cluster_vectors(vectors, params(raw_limit=1000))
    assert calls == []  # 60 faces: raw vectors
    labels = cluster_vectors(vectors, params(raw_limit=50))
    assert calls == [60]  # above the limit: UMAP first
    assert _pure(labels, truth) >= 0.9
