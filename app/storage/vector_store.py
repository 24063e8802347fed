"""The vector store of a large library: every embedded face's vectors on disk, read by
row through memory maps, so a run reads from the database only the faces it has not seen.

Derived data, never the only copy of anything: the database holds every vector, and the
store is rebuilt from it when missing, unreadable, of another model or another database,
or when a spot check finds vectors that differ from the database's. It holds vectors
only, keyed by face id, so assignments, person operations and other applications' edits
never make it stale: which faces are known, and as whom, is read from the database on
every run.

A face's vectors can change under the same id: a photo replaced under its name refreshes
a user's face in place (new box, vectors cleared and embedded again from the new pixels).
Every UPDATE of a face bumps its ModifiedAt (ORM and database triggers), so each sync asks
the database for the faces it already holds whose row changed since the store's
high-water mark (the database's clock at the previous sync, less a safety margin), compares their vectors with the stored ones, and rebuilds the store when
any differ (rare: a replaced photo with a user's face). A store written before the mark
existed has every face checked once.

Layout under DATA_DIR/vectors/<key>/ (key: database and models):
- `manifest.json`: the segments in row order and the high-water mark (`modified`). Replaced atomically, last: a crash leaves
  the old manifest and stray files, which the next run removes.
- `<segment>.ids.npy`, `<segment>.facenet.npy` and (when another model decides)
  `<segment>.decide.npy`: faces appended per run, never rewritten. A face's row is its
  position in the concatenated segments, valid for one opening (merging renumbers).
- Segments are merged as a binary counter does (the last two when the older is at most
  twice the newer): a run adds one small segment, and the store keeps O(log n) of them.

Faces deleted from the database stay as dead rows (`alive` is False) until they are more
than a third of the rows; then the store is rebuilt; merges drop them too. Writers hold a
file lock; the assignment step that uses the store also holds the database's assignment
lock, so several workers never interleave.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger("app.recognition")

FORMAT = 2  # 1: with a faiss IVF index over the FaceNet vectors (rebuilt as 2)
FETCH_CHUNK = 20_000  # faces whose vectors are read from the database at once
COPY_CHUNK = 131_072  # rows copied at once when segments merge
CHECK_ROWS = 16  # stored rows compared with the database on every open
# A transaction stamps ModifiedAt with its start time (now()) but becomes visible when it
# commits: a face changed by a transaction that started before the mark was read and
# committed after it has a ModifiedAt older than the mark. Faces changed this long before
# the mark are looked at again (the worker's transactions are far shorter). The mark is
# the database's clock, not the latest ModifiedAt: in a quiet database that would stay
# put, and every sync would re-read the faces of the margin before it.
MARK_MARGIN = timedelta(minutes=15)

# face ids -> (the same ids, FaceNet vectors, deciding vectors or None), from the database
Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class Changes:
    """What the database says about faces that changed, by its own clock."""

    mark: Callable[[], datetime]  # the database's clock now (what stamps ModifiedAt)
    since: Callable[[datetime | None], np.ndarray]  # ids of faces with vectors changed at or after it (None: all)


@dataclass(frozen=True)
class StoreKey:
    database: str  # the database URL without its password
    facenet: str
    model: str  # the deciding model (== facenet when FaceNet decides)

    def folder(self) -> str:
        digest = hashlib.sha256(json.dumps([self.database, self.facenet, self.model]).encode()).hexdigest()
        return digest[:16]


@dataclass
class _Segment:
    name: str
    ids: np.ndarray
    facenet: np.ndarray  # memory-mapped
    decide: np.ndarray | None

    @property
    def parts(self) -> tuple[str, ...]:
        return ("ids", "facenet") if self.decide is None else ("ids", "facenet", "decide")


class VectorStore:
    """Open with `VectorStore.synced(...)`; then read vectors by row."""

    def __init__(self, root: Path, key: StoreKey) -> None:
        self.dir = root / key.folder()
        self.key = key
        self.segments: list[_Segment] = []
        self.ids = np.zeros(0, np.int64)  # face id per row
        self.alive = np.zeros(0, bool)  # row's face still in the database
        self._order = np.zeros(0, np.int64)
        self._offsets = np.zeros(1, np.int64)
        self.mark: datetime | None = None  # the manifest's high-water mark (None: not recorded)

    # --- opening and keeping in step ----------------------------------------------

    @classmethod
    def synced(cls, root: Path, key: StoreKey, db_ids: np.ndarray, fetch: Fetch, changes: Changes
               ) -> "VectorStore":
        """The store for `key`, holding exactly the faces `db_ids` (sorted face ids of
        every face with its vectors in the database); missing faces are read with `fetch`,
        faces changed since the last sync are found with `changes`."""
        store = cls(root, key)
        store.dir.mkdir(parents=True, exist_ok=True)
        with open(store.dir / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            store._sync(np.asarray(db_ids, np.int64), fetch, changes)
        return store

    def _sync(self, db_ids: np.ndarray, fetch: Fetch, changes: Changes) -> None:
        started = time.perf_counter()
        # read before anything else: a later change has a newer ModifiedAt, or one within the margin
        mark = changes.mark()
        if not self._load():
            self._reset()
        elif not self._agrees(db_ids, fetch):
            log.warning("vector store %s does not match the database: rebuilding it", self.dir)
            self._reset()
        elif (changed := self._changed(db_ids, fetch, changes)) is not None:
            log.info("vector store %s: the vectors of face %d changed in the database (a photo replaced "
                     "under its name): rebuilding it", self.dir, changed)
            self._reset()
        self.mark = mark
        self.alive = np.isin(self.ids, db_ids)
        dead = int(self.ids.size - self.alive.sum())
        if self.ids.size and dead * 3 > self.ids.size:
            log.info("vector store: %d of %d faces were deleted from the database: rebuilding", dead, self.ids.size)
            self._reset()
        missing = np.setdiff1d(db_ids, self.ids, assume_unique=True)
        added = self._append(missing, fetch) if missing.size else 0
        if added:
            self._merge(db_ids)
        self.alive = np.isin(self.ids, db_ids)
        self._write_manifest()
        self._remove_strays()
        if added or time.perf_counter() - started > 1:
            log.info("vector store: %d faces (%d added, %d segments), in sync in %.1f s",
                     int(self.alive.sum()), added, len(self.segments), time.perf_counter() - started)

    def _load(self) -> bool:
        path = self.dir / "manifest.json"
        if not path.exists():
            return False
        try:
            m = json.loads(path.read_text())
            if m.get("format") != FORMAT or m.get("key") != [self.key.database, self.key.facenet, self.key.model]:
                return False
            self.segments = [self._open_segment(name) for name in m["segments"]]
            self.mark = datetime.fromisoformat(m["modified"]) if m.get("modified") else None
            self._index_rows()
            return True
        except Exception as e:  # noqa: BLE001 - any damage: rebuild from the database
            log.warning("vector store %s is unreadable (%s): rebuilding it from the database", self.dir, e)
            self.segments = []
            return False

    def _open_segment(self, name: str) -> _Segment:
        ids = np.load(self.dir / f"{name}.ids.npy")
        facenet = np.load(self.dir / f"{name}.facenet.npy", mmap_mode="r")
        decide_path = self.dir / f"{name}.decide.npy"
        decide = np.load(decide_path, mmap_mode="r") if self.key.model != self.key.facenet else None
        if facenet.shape[0] != ids.size or (decide is not None and decide.shape[0] != ids.size):
            raise ValueError(f"segment {name}: {ids.size} ids but {facenet.shape[0]} vectors")
        return _Segment(name, ids, facenet, decide)

    def _agrees(self, db_ids: np.ndarray, fetch: Fetch) -> bool:
        """A few stored rows, chosen at random, have the database's vectors (a store
        copied from another database, or restored beside an older backup, has not)."""
        rows = np.flatnonzero(np.isin(self.ids, db_ids))
        if rows.size == 0:
            return True
        rows = np.random.default_rng().choice(rows, min(CHECK_ROWS, rows.size), replace=False)
        ids, facenet, decide = fetch(self.ids[rows])
        if ids.size != rows.size:
            return False
        back = self.rows_of(ids)
        ok = np.allclose(self.facenet(back), facenet, atol=1e-6)
        if ok and decide is not None:
            ok = np.allclose(self.decide(back), decide, atol=1e-6)
        return bool(ok)

    def _changed(self, db_ids: np.ndarray, fetch: Fetch, changes: Changes) -> int | None:
        """The first held face whose row changed since the mark (every held face when the
        manifest has none) and whose vectors now differ from the stored ones; None: none."""
        since = self.mark - MARK_MARGIN if self.mark is not None else None
        held = np.intersect1d(np.intersect1d(changes.since(since), self.ids), db_ids)
        for start in range(0, held.size, FETCH_CHUNK):
            ids, facenet, decide = fetch(held[start:start + FETCH_CHUNK])
            rows = self.rows_of(ids)
            same = np.isclose(self.facenet(rows), facenet, atol=1e-6).all(axis=1)
            if decide is not None:
                same &= np.isclose(self.decide(rows), decide, atol=1e-6).all(axis=1)
            if not same.all():
                return int(ids[np.flatnonzero(~same)[0]])
        return None

    def _reset(self) -> None:
        for path in self.dir.iterdir():
            if path.name != "lock":
                path.unlink() if path.is_file() else shutil.rmtree(path)
        self.segments = []
        self._index_rows()

    def _append(self, ids: np.ndarray, fetch: Fetch) -> int:
        """A new segment with these faces, written chunk by chunk from the database."""
        def chunks():
            for start in range(0, ids.size, FETCH_CHUNK):
                got_ids, f, d = fetch(ids[start:start + FETCH_CHUNK])
                order = np.argsort(got_ids)  # a face deleted meanwhile is simply absent
                yield got_ids[order], f[order], (d[order] if d is not None else None)

        segment = self._write(chunks(), ids.size)
        if segment is None:
            return 0
        self.segments.append(segment)
        self._index_rows()
        return segment.ids.size

    def _merge(self, db_ids: np.ndarray) -> None:
        """Merge the newest segments while the older of the last two is at most twice the
        newer (faces deleted from the database are left out)."""
        while len(self.segments) >= 2 and self.segments[-2].ids.size <= 2 * self.segments[-1].ids.size:
            pair = self.segments[-2:]

            def chunks():
                for s in pair:
                    for start in range(0, s.ids.size, COPY_CHUNK):
                        ids = s.ids[start:start + COPY_CHUNK]
                        keep = np.isin(ids, db_ids)
                        yield (ids[keep], np.asarray(s.facenet[start:start + COPY_CHUNK])[keep],
                               None if s.decide is None else np.asarray(s.decide[start:start + COPY_CHUNK])[keep])

            merged = self._write(chunks(), sum(s.ids.size for s in pair))
            self.segments[-2:] = [merged] if merged is not None else []
            self._index_rows()

    def _write(self, chunks, capacity: int) -> _Segment | None:
        """A segment from (ids, FaceNet vectors, deciding vectors or None) chunks, at most
        `capacity` rows; files written as tmp-* and renamed (None: no rows)."""
        name = f"seg-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        tmp = self.dir / f"tmp-{name}"
        arrays: dict[str, np.ndarray] = {}
        ids_parts = []
        n = 0
        for ids, f, d in chunks:
            if not arrays:
                for part, v in (("facenet", f), ("decide", d)):
                    if v is not None:
                        arrays[part] = np.lib.format.open_memmap(f"{tmp}.{part}.npy", "w+", np.float32,
                                                                 (capacity, v.shape[1]))
            arrays["facenet"][n:n + ids.size] = f
            if d is not None:
                arrays["decide"][n:n + ids.size] = d
            ids_parts.append(np.asarray(ids, np.int64))
            n += ids.size
        if not arrays:
            return None
        for arr in arrays.values():
            arr.flush()
        parts = ["ids", *arrays]
        arrays.clear()
        if n == 0:
            for part in parts[1:]:
                Path(f"{tmp}.{part}.npy").unlink()
            return None
        np.save(f"{tmp}.ids.npy", np.concatenate(ids_parts))
        for part in parts:
            src = Path(f"{tmp}.{part}.npy")
            if n < capacity and part != "ids":  # trim the rows of faces that were not there
                np.save(self.dir / f"{name}.{part}.npy", np.load(src, mmap_mode="r")[:n])
                src.unlink()
            else:
                os.replace(src, self.dir / f"{name}.{part}.npy")
        return self._open_segment(name)

    def _index_rows(self) -> None:
        sizes = [s.ids.size for s in self.segments]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.ids = np.concatenate([s.ids for s in self.segments]) if self.segments else np.zeros(0, np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        if self.alive.size != self.ids.size:
            self.alive = np.ones(self.ids.size, bool)

    def _write_manifest(self) -> None:
        manifest = {"format": FORMAT, "key": [self.key.database, self.key.facenet, self.key.model],
                    "segments": [s.name for s in self.segments],
                    "modified": self.mark.isoformat() if self.mark is not None else None}
        tmp = self.dir / f"tmp-manifest-{uuid.uuid4().hex[:8]}.json"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.dir / "manifest.json")

    def _remove_strays(self) -> None:
        """Files no manifest names: a crash's leftovers, merged segments."""
        keep = {"manifest.json", "lock"} | {f"{s.name}.{part}.npy" for s in self.segments for part in s.parts}
        for path in self.dir.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return int(self.ids.size)

    def rows_of(self, face_ids: np.ndarray) -> np.ndarray:
        """Row of each face id (-1 when the store does not hold it)."""
        face_ids = np.asarray(face_ids, np.int64)
        if self.ids.size == 0:
            return np.full(face_ids.size, -1, np.int64)
        pos = np.clip(np.searchsorted(self.ids, face_ids, sorter=self._order), 0, self.ids.size - 1)
        rows = self._order[pos]
        return np.where(self.ids[rows] == face_ids, rows, -1)

    def _gather(self, rows: np.ndarray, part: str) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        seg = np.searchsorted(self._offsets, rows, side="right") - 1
        first = getattr(self.segments[0], part) if self.segments else None
        dim = first.shape[1] if first is not None else 0
        out = np.empty((rows.size, dim), np.float32)
        for s in np.unique(seg).tolist():
            where = np.flatnonzero(seg == s)
            out[where] = getattr(self.segments[s], part)[rows[where] - self._offsets[s]]
        return out

    def facenet(self, rows: np.ndarray) -> np.ndarray:
        return self._gather(rows, "facenet")

    def decide(self, rows: np.ndarray) -> np.ndarray:
        return self._gather(rows, "decide" if self.key.model != self.key.facenet else "facenet")
