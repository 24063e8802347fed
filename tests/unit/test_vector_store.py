"""The vector store of large libraries (app/storage/vector_store.py): kept in step with the
database it is derived from, rebuilt when it cannot be trusted, merged as it grows. The
database is stood in for by arrays and a fetch function here;
tests/integration/test_large_library.py runs it through PostgreSQL and the real models."""
import json
import multiprocessing as mp

import numpy as np
import pytest

from app.storage.vector_store import StoreKey, VectorStore

KEY = StoreKey("postgresql://u@h/db", "facenet-x", "sface-y")


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


def _open(tmp_path, db: FakeDb, key: StoreKey = KEY) -> VectorStore:
    return VectorStore.synced(tmp_path, key, db.ids(), db.fetch)


def _stored(store: VectorStore, db: FakeDb) -> None:
    ids = db.ids()
    rows = store.rows_of(ids)
    assert (rows >= 0).all()
    assert store.alive[rows].all() and store.alive.sum() == ids.size
    assert np.allclose(store.facenet(rows), np.array([db.facenet[i] for i in ids.tolist()]))
    assert np.allclose(store.decide(rows), np.array([db.decide[i] for i in ids.tolist()]))


def test_built_from_the_database_then_reused(tmp_path):
    db = FakeDb(400)
    store = _open(tmp_path, db)
    _stored(store, db)
    read = db.read
    again = _open(tmp_path, db)
    _stored(again, db)
    assert db.read - read <= 16  # only the spot check: nothing read again


def test_new_and_deleted_faces_are_followed_and_segments_merge_as_they_grow(tmp_path):
    db = FakeDb(400)
    _open(tmp_path, db)
    for gone in (3, 50, 399):
        del db.facenet[gone], db.decide[gone]
    db.read = 0
    store = _open(tmp_path, db)
    assert db.read <= 16  # nothing new to read
    dead = store.rows_of(np.array([3, 50, 399]))
    assert (dead >= 0).all() and not store.alive[dead].any()  # still rows, never alive
    sizes = []
    for run in range(12):  # runs adding a few faces each
        db.add(30, seed=run + 1)
        db.read = 0
        store = _open(tmp_path, db)
        assert db.read <= 16 + 30  # only the new faces were read
        _stored(store, db)
        sizes.append([s.ids.size for s in store.segments])
    assert all(len(s) <= 4 for s in sizes), sizes  # merged as a binary counter: log-many segments
    assert all(a > b for s in sizes for a, b in zip(s, s[1:])), sizes
    assert (store.rows_of(np.array([3, 50, 399])) == -1).all()  # a merge left the deleted faces out
    names = {f"{s.name}.{part}.npy" for s in store.segments for part in ("ids", "facenet", "decide")}
    assert {p.name for p in store.dir.iterdir()} == names | {"manifest.json", "lock"}  # merged ones removed
    for gone in list(db.facenet)[:300]:  # most faces deleted: the store is rebuilt
        del db.facenet[gone], db.decide[gone]
    db.read = 0
    store = _open(tmp_path, db)
    _stored(store, db)
    assert db.read >= len(db.facenet) and store.rows == len(db.facenet)


@pytest.mark.parametrize("damage", ["manifest", "segment", "old format"])
def test_a_damaged_store_is_rebuilt(tmp_path, damage):
    db = FakeDb(300)
    store = _open(tmp_path, db)
    folder = store.dir
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "segment":
        next(folder.glob("*.facenet.npy")).write_bytes(b"garbage")
    else:  # the format with an IVF index over the FaceNet vectors (before 2026-11-24)
        m = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**m, "format": 1, "indexed": 300, "index": "x.faiss"}))
    db.read = 0
    rebuilt = _open(tmp_path, db)
    _stored(rebuilt, db)
    assert db.read >= 300


def test_another_database_or_model_gets_its_own_store_and_a_foreign_one_is_rebuilt(tmp_path):
    db = FakeDb(300)
    first = _open(tmp_path, db)
    other_model = _open(tmp_path, db, key=StoreKey(KEY.database, KEY.facenet, "other-model"))
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
        store = _open(path, db)
        out.put(store.rows)
    except Exception as e:  # noqa: BLE001
        out.put(repr(e))


def test_two_processes_syncing_at_once_leave_one_sound_store(tmp_path):
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
    store = _open(tmp_path, db)
    _stored(store, db)
    assert db.read <= 16
    assert len(store.segments) == 1 and not list(store.dir.glob("tmp-*"))
