"""The vector store of large libraries (app/storage/vector_store.py): kept in step with the
database it is derived from, rebuilt when it cannot be trusted, merged as it grows. The
database is stood in for by arrays and a fetch function here;
tests/integration/test_large_library.py runs it through PostgreSQL and the real models."""
import json
import multiprocessing as mp
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.storage.vector_store import Changes, StoreKey, VectorStore

KEY = StoreKey("postgresql://u@h/db", "facenet-x", "sface-y")


class FakeDb:
    """Face id -> (FaceNet vector, deciding vector) and the time its row last changed (the
    database's ModifiedAt, by a clock that moves an hour per sync); counts the faces read."""

    def __init__(self, n: int, seed: int = 0, groups: int = 40) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((groups, 64)).astype(np.float32)
        labels = rng.integers(0, groups, n)
        f = centres[labels] + 0.35 * rng.standard_normal((n, 64)).astype(np.float32)
        self.facenet = {i + 1: v / np.linalg.norm(v) for i, v in enumerate(f)}
        d = rng.standard_normal((n, 16)).astype(np.float32)
        self.decide = {i + 1: v / np.linalg.norm(v) for i, v in enumerate(d)}
        self.clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.modified = {i: self.clock for i in self.facenet}
        self.read = 0

    def changes(self) -> Changes:
        def since(when):
            return np.array(sorted(i for i in self.facenet if when is None or self.modified[i] >= when), np.int64)
        return Changes(self.now, since)

    def now(self) -> datetime:
        self.clock += timedelta(hours=1)  # an hour passes between syncs
        return self.clock

    def change(self, face_id: int, seed: int, at: datetime | None = None) -> None:
        """New vectors for a face under the same id (a refreshed face embedded again)."""
        rng = np.random.default_rng(seed)
        for vectors in (self.facenet, self.decide):
            v = rng.standard_normal(vectors[face_id].size).astype(np.float32)
            vectors[face_id] = v / np.linalg.norm(v)
        self.modified[face_id] = at or self.clock

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
            self.modified[start + j] = self.clock


def _open(tmp_path, db: FakeDb, key: StoreKey = KEY) -> VectorStore:
    return VectorStore.synced(tmp_path, key, db.ids(), db.fetch, db.changes())


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


def test_vectors_changed_under_the_same_id_are_noticed(tmp_path):
    db = FakeDb(300)
    _open(tmp_path, db)
    db.modified[10] = db.clock  # an assignment changed the row, not the vectors
    db.read = 0
    store = _open(tmp_path, db)
    _stored(store, db)
    assert db.read <= 16 + 1  # the spot check and the one changed row
    db.change(42, seed=5)  # a photo replaced under its name: new vectors, same face id
    db.read = 0
    store = _open(tmp_path, db)
    _stored(store, db)
    assert db.read >= 300  # rebuilt from the database
    # committed after the mark was read, stamped before it (within the margin)
    mark = datetime.fromisoformat(json.loads((store.dir / "manifest.json").read_text())["modified"])
    db.change(7, seed=6, at=mark - timedelta(minutes=10))
    _stored(_open(tmp_path, db), db)


def test_a_store_without_a_mark_checks_every_face_once(tmp_path):
    db = FakeDb(300)
    store = _open(tmp_path, db)
    manifest = json.loads((store.dir / "manifest.json").read_text())
    del manifest["modified"]  # written before the mark was recorded
    (store.dir / "manifest.json").write_text(json.dumps(manifest))
    db.change(42, seed=5, at=db.clock - timedelta(days=1))  # changed long ago, before the store
    db.read = 0
    store = _open(tmp_path, db)
    _stored(store, db)
    assert json.loads((store.dir / "manifest.json").read_text())["modified"] is not None
    db.read = 0
    _stored(_open(tmp_path, db), db)
    assert db.read <= 16  # checked once: the mark is recorded now


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
