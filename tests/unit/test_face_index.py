"""The vector index of large libraries (app/storage/face_index.py): kept in step with the
database it is derived from, rebuilt when it cannot be trusted, and its searches agree
with exact search. The database is stood in for by arrays and a fetch function here;
tests/integration/test_large_library.py runs it through PostgreSQL and the real models."""
import json
import multiprocessing as mp

import numpy as np
import pytest

from app.pipeline.match import top_k
from app.pipeline.neighbours import IvfParams
from app.storage.face_index import FaceIndex, IndexKey

KEY = IndexKey("postgresql://u@h/db", "facenet-x", "sface-y")


class FakeDb:
    """Face id -> (FaceNet vector, deciding vector); counts the faces read."""

    def __init__(self, n: int, seed: int = 0, groups: int = 40) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((groups, 64)).astype(np.float32)
        labels = rng.integers(0, groups, n)
        f = centres[labels] + 0.35 * rng.standard_normal((n, 64)).astype(np.float32)
        self.facenet = {i + 1: v / np.linalg.norm(v) for i, v in enumerate(f)}
        d = rng.standard_normal((n, 16)).astype(np.float32)
        self.decide = {i + 1: v / np.linalg.norm(v) for i, v in enumerate(d)}
        self.read = 0

    def ids(self) -> np.ndarray:
        return np.array(sorted(self.facenet), np.int64)

    def fetch(self, ids: np.ndarray):
        got = [int(i) for i in ids if int(i) in self.facenet]
        self.read += len(got)
        return (np.array(got, np.int64), np.array([self.facenet[i] for i in got], np.float32).reshape(-1, 64),
                np.array([self.decide[i] for i in got], np.float32).reshape(-1, 16))

    def add(self, n: int, seed: int) -> None:
        more = FakeDb(n, seed)
        start = max(self.facenet) + 1
        for j, i in enumerate(sorted(more.facenet)):
            self.facenet[start + j] = more.facenet[i]
            self.decide[start + j] = more.decide[i]


def _open(tmp_path, db: FakeDb, key: IndexKey = KEY, min_rows: int = 100, delta_rows: int = 50) -> FaceIndex:
    return FaceIndex.synced(tmp_path, key, db.ids(), db.fetch, min_rows=min_rows, delta_rows=delta_rows,
                            params=IvfParams(cells_per_sqrt=1.0, probe=4, train_per_cell=10))


def _stored(index: FaceIndex, db: FakeDb) -> None:
    ids = db.ids()
    rows = index.rows_of(ids)
    assert (rows >= 0).all()
    assert np.allclose(index.facenet(rows), np.array([db.facenet[i] for i in ids.tolist()]))
    assert np.allclose(index.decide(rows), np.array([db.decide[i] for i in ids.tolist()]))


def test_built_from_the_database_then_reused(tmp_path):
    db = FakeDb(400)
    index = _open(tmp_path, db)
    _stored(index, db)
    assert index.index is not None and index.indexed == 400
    read = db.read
    again = _open(tmp_path, db)
    _stored(again, db)
    assert db.read - read <= 16  # only the spot check: nothing read again


def test_new_and_deleted_faces_are_followed(tmp_path):
    db = FakeDb(400)
    _open(tmp_path, db)
    db.add(30, seed=1)  # below delta_rows: searched exactly, outside the IVF index
    for gone in (3, 50, 399):
        del db.facenet[gone], db.decide[gone]
    index = _open(tmp_path, db)
    _stored(index, db)
    assert index.rows_of(np.array([3, 50, 399])).tolist() != [-1, -1, -1]  # still rows...
    dead = index.rows_of(np.array([3, 50, 399]))
    assert not index.alive[dead].any()  # ...but never found
    everyone = np.ones(index.rows, bool)
    idx, _ = index.search(index.facenet(dead), 5, everyone)
    assert not np.isin(idx, dead).any()
    db.add(60, seed=2)  # past delta_rows: the IVF index is extended
    index = _open(tmp_path, db)
    _stored(index, db)
    assert index.indexed == index.rows


def test_search_agrees_with_exact_search_and_honours_the_allowed_rows(tmp_path):
    db = FakeDb(1500, groups=60)
    db_index = _open(tmp_path, db, delta_rows=1000)
    db.add(200, seed=3)  # a tail searched exactly beside the IVF index
    index = _open(tmp_path, db, delta_rows=1000)
    assert 0 < index.indexed < index.rows
    allowed = np.zeros(index.rows, bool)
    allowed[::3] = True
    queries = index.facenet(np.arange(1, index.rows, 7))
    idx, sim = index.search(queries, 5, allowed)
    base_rows = np.flatnonzero(allowed)
    e_idx, e_sim = top_k(queries, index.facenet(base_rows), 5)
    assert allowed[idx[idx >= 0]].all()
    found = np.mean([len(set(idx[q].tolist()) & set(base_rows[e_idx[q]].tolist())) / 5 for q in range(len(queries))])
    assert found >= 0.95, found
    both = idx == base_rows[e_idx]
    assert np.allclose(sim[both], e_sim[both], atol=1e-5)  # exact similarities, not the 8-bit codes'
    assert db_index.key == index.key


@pytest.mark.parametrize("damage", ["manifest", "segment", "index"])
def test_a_damaged_index_is_rebuilt(tmp_path, damage):
    db = FakeDb(300)
    index = _open(tmp_path, db)
    folder = index.dir
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "segment":
        next(folder.glob("*.facenet.npy")).write_bytes(b"garbage")
    else:
        (folder / index.index_file).write_bytes(b"garbage")
    db.read = 0
    rebuilt = _open(tmp_path, db)
    _stored(rebuilt, db)
    assert db.read >= 300


def test_another_database_or_model_gets_its_own_index_and_a_foreign_one_is_rebuilt(tmp_path):
    db = FakeDb(300)
    first = _open(tmp_path, db)
    other_model = _open(tmp_path, db, key=IndexKey(KEY.database, KEY.facenet, "other-model"))
    assert other_model.dir != first.dir
    # the same ids with other vectors (a restored backup, a copied folder): the spot check sees it
    other = FakeDb(300, seed=9)
    db.read = other.read = 0
    rebuilt = _open(tmp_path, other)
    _stored(rebuilt, other)
    assert other.read >= 300
    manifest = json.loads((rebuilt.dir / "manifest.json").read_text())
    assert manifest["key"] == [KEY.database, KEY.facenet, KEY.model]


def _sync_in_child(path, n, seed, out):
    db = FakeDb(n, seed)
    try:
        index = _open(path, db)
        out.put(index.rows)
    except Exception as e:  # noqa: BLE001
        out.put(repr(e))


def test_two_processes_syncing_at_once_leave_one_sound_index(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_sync_in_child, args=(tmp_path, 500, 0, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted([out.get(timeout=5), out.get(timeout=5)]) == [500, 500]
    db = FakeDb(500, 0)
    db.read = 0
    index = _open(tmp_path, db)
    _stored(index, db)
    assert db.read <= 16
    assert len(list(index.dir.glob("*.faiss"))) == 1 and not list(index.dir.glob("tmp-*"))
