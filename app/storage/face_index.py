"""The vector index of a large library: every embedded face's vectors on disk, with an
inverted-file index (faiss IVF, 8-bit codes) over the FaceNet vectors for matching.

Derived data, never the only copy of anything: the database holds every vector, and the
index is rebuilt from it when missing, unreadable, of another model or another database,
or grown too far from what its cells were trained on. It holds vectors only, keyed by
face id (a face's vectors never change; detecting a photo again makes new faces), so
assignments, person operations and other applications' edits never make it stale:
which faces are known, and as whom, is read from the database on every run.

Layout under DATA_DIR/vectors/<key>/ (key: database and models):
- `manifest.json`: the segments in row order, the index file and how many rows it covers.
  Replaced atomically, last: a crash leaves the old manifest and stray files, which the
  next run removes.
- `<segment>.ids.npy`, `<segment>.facenet.npy` and (when another model decides)
  `<segment>.decide.npy`: faces appended per run, never rewritten. A face's row is its
  position in the concatenated segments.
- `<index>.faiss`: IVF with 8-bit scalar codes over rows [0, indexed); rows after that
  (fewer than `delta_rows`) are searched exactly. Candidates are re-ranked with the exact
  float32 vectors, so similarities are exact; only the candidate set is approximate.

Faces deleted from the database stay as dead rows, never returned (a selector masks them),
until they are more than a third of the rows; then the index is rebuilt. Writers hold a
file lock; the assignment step that uses the index also holds the database's assignment
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
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from app.pipeline.match import top_k
from app.pipeline.neighbours import IvfParams, cells_for

log = logging.getLogger("app.recognition")

FORMAT = 1
FETCH_CHUNK = 20_000  # faces whose vectors are read from the database at once
ADD_CHUNK = 131_072  # rows added to the IVF index at once
CANDIDATES = 4  # candidates per wanted neighbour before exact re-ranking
CHECK_ROWS = 16  # stored rows compared with the database on every open

# face ids -> (the same ids, FaceNet vectors, deciding vectors or None), from the database
Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class IndexKey:
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


class FaceIndex:
    """Open with `FaceIndex.synced(...)`; then search and read vectors by row."""

    def __init__(self, root: Path, key: IndexKey, min_rows: int, delta_rows: int,
                 params: IvfParams = IvfParams()) -> None:
        self.dir = root / key.folder()
        self.key = key
        self.min_rows = min_rows  # fewer rows than this: no IVF index, exact search
        self.delta_rows = max(1, delta_rows)
        self.params = params
        self.segments: list[_Segment] = []
        self.index = None
        self.indexed = 0  # rows covered by self.index
        self.trained_rows = 0
        self.index_file: str | None = None
        self.ids = np.zeros(0, np.int64)  # face id per row
        self.alive = np.zeros(0, bool)  # row's face still in the database
        self._order = np.zeros(0, np.int64)
        self._offsets = np.zeros(1, np.int64)

    # --- opening and keeping in step ----------------------------------------------

    @classmethod
    def synced(cls, root: Path, key: IndexKey, db_ids: np.ndarray, fetch: Fetch, min_rows: int,
               delta_rows: int, params: IvfParams = IvfParams()) -> "FaceIndex":
        """The index for `key`, holding exactly the faces `db_ids` (sorted face ids of
        every face with its vectors in the database); missing faces are read with `fetch`."""
        index = cls(root, key, min_rows, delta_rows, params)
        index.dir.mkdir(parents=True, exist_ok=True)
        with open(index.dir / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index._sync(np.asarray(db_ids, np.int64), fetch)
        return index

    def _sync(self, db_ids: np.ndarray, fetch: Fetch) -> None:
        started = time.perf_counter()
        if not self._load():
            self._reset()
        elif not self._agrees(db_ids, fetch):
            log.warning("vector index %s does not match the database: rebuilding it", self.dir)
            self._reset()
        self._index_rows()
        self.alive = np.isin(self.ids, db_ids)
        dead = int(self.ids.size - self.alive.sum())
        if self.ids.size and dead * 3 > self.ids.size:
            log.info("vector index: %d of %d faces were deleted from the database: rebuilding", dead, self.ids.size)
            self._reset()
        missing = np.setdiff1d(db_ids, self.ids, assume_unique=True)
        added = self._append(missing, fetch) if missing.size else 0
        self.alive = np.isin(self.ids, db_ids)
        self._update_ivf()
        self._write_manifest()
        self._remove_strays()
        if added or time.perf_counter() - started > 1:
            log.info("vector index: %d faces (%d added, %d in the IVF index), in sync in %.1f s",
                     int(self.alive.sum()), added, self.indexed, time.perf_counter() - started)

    def _load(self) -> bool:
        path = self.dir / "manifest.json"
        if not path.exists():
            return False
        try:
            m = json.loads(path.read_text())
            if m.get("format") != FORMAT or m.get("key") != [self.key.database, self.key.facenet, self.key.model]:
                return False
            self.segments = [self._open_segment(name) for name in m["segments"]]
            self.indexed, self.trained_rows, self.index_file = m["indexed"], m["trained_rows"], m["index"]
            self._index_rows()
            if self.index_file is not None:
                import faiss

                self.index = faiss.read_index(str(self.dir / self.index_file))
                if self.index.ntotal != self.indexed or self.indexed > self.ids.size:
                    raise ValueError(f"index holds {self.index.ntotal} rows, manifest says {self.indexed}")
            elif self.indexed:
                raise ValueError("rows indexed but no index file")
            return True
        except Exception as e:  # noqa: BLE001 - any damage: rebuild from the database
            log.warning("vector index %s is unreadable (%s): rebuilding it from the database", self.dir, e)
            self.segments, self.index, self.indexed, self.index_file = [], None, 0, None
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
        """A few stored rows, chosen at random, have the database's vectors (an index
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

    def _reset(self) -> None:
        for path in self.dir.iterdir():
            if path.name != "lock":
                path.unlink() if path.is_file() else shutil.rmtree(path)
        self.segments, self.index, self.indexed, self.trained_rows, self.index_file = [], None, 0, 0, None
        self._index_rows()

    def _append(self, ids: np.ndarray, fetch: Fetch) -> int:
        """A new segment with these faces, written chunk by chunk from the database."""
        name = f"seg-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        tmp = self.dir / f"tmp-{name}"
        facenet = decide = None
        kept = np.zeros(ids.size, bool)
        n = 0
        for start in range(0, ids.size, FETCH_CHUNK):
            got_ids, f, d = fetch(ids[start:start + FETCH_CHUNK])
            order = np.argsort(got_ids)
            got_ids, f, d = got_ids[order], f[order], (d[order] if d is not None else None)
            if facenet is None:
                facenet = np.lib.format.open_memmap(f"{tmp}.facenet.npy", "w+", np.float32, (ids.size, f.shape[1]))
                if d is not None:
                    decide = np.lib.format.open_memmap(f"{tmp}.decide.npy", "w+", np.float32, (ids.size, d.shape[1]))
            facenet[n:n + got_ids.size] = f
            if decide is not None:
                decide[n:n + got_ids.size] = d
            kept[np.searchsorted(ids, got_ids)] = True  # a face deleted meanwhile is simply absent
            n += got_ids.size
        if facenet is None or n == 0:
            return 0
        for arr in (facenet, decide):
            if arr is not None:
                arr.flush()
        del facenet, decide
        np.save(f"{tmp}.ids.npy", ids[kept])
        for part in ("ids", "facenet", "decide"):
            src = Path(f"{tmp}.{part}.npy")
            if src.exists():
                if n < ids.size and part != "ids":  # trim rows of faces deleted while reading
                    arr = np.load(src, mmap_mode="r")[:n]
                    np.save(self.dir / f"{name}.{part}.npy", arr)
                    src.unlink()
                else:
                    os.replace(src, self.dir / f"{name}.{part}.npy")
        self.segments.append(self._open_segment(name))
        self._index_rows()
        return n

    def _index_rows(self) -> None:
        sizes = [s.ids.size for s in self.segments]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.ids = np.concatenate([s.ids for s in self.segments]) if self.segments else np.zeros(0, np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        if self.alive.size != self.ids.size:
            self.alive = np.ones(self.ids.size, bool)

    def _update_ivf(self) -> None:
        rows = self.ids.size
        if rows < self.min_rows:
            return
        retrain = self.index is None or cells_for(rows, self.params) >= 4 * max(1, self.index.nlist)
        if not retrain and rows - self.indexed < self.delta_rows:
            return
        import faiss

        started = time.perf_counter()
        if retrain:
            self.index = self._trained(faiss)
            self.indexed = 0
            self.trained_rows = rows
        for start in range(self.indexed, rows, ADD_CHUNK):
            stop = min(rows, start + ADD_CHUNK)
            self.index.add_with_ids(self.facenet(np.arange(start, stop)), np.arange(start, stop, dtype=np.int64))
        self.indexed = rows
        name = f"index-{uuid.uuid4().hex[:12]}.faiss"
        faiss.write_index(self.index, str(self.dir / f"tmp-{name}"))
        os.replace(self.dir / f"tmp-{name}", self.dir / name)
        self.index_file = name
        log.info("vector index: IVF index over %d faces (%d cells) %s in %.1f s", rows, self.index.nlist,
                 "trained and built" if retrain else "extended", time.perf_counter() - started)

    def _trained(self, faiss):
        rows = self.ids.size
        cells = cells_for(rows, self.params)
        rng = np.random.default_rng(self.params.seed)
        sample = np.sort(rng.choice(rows, min(rows, cells * self.params.train_per_cell), replace=False))
        d = self.segments[0].facenet.shape[1]
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, cells, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.params.seed
        index.cp.niter = 10
        index.cp.min_points_per_centroid = self.params.train_per_cell
        index.train(self.facenet(sample))
        return index

    def _write_manifest(self) -> None:
        manifest = {"format": FORMAT, "key": [self.key.database, self.key.facenet, self.key.model],
                    "segments": [s.name for s in self.segments], "indexed": self.indexed,
                    "trained_rows": self.trained_rows, "index": self.index_file}
        tmp = self.dir / f"tmp-manifest-{uuid.uuid4().hex[:8]}.json"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.dir / "manifest.json")

    def _remove_strays(self) -> None:
        """Files no manifest names: a crash's leftovers, replaced index files."""
        keep = {"manifest.json", "lock", self.index_file}
        keep |= {f"{s.name}.{part}.npy" for s in self.segments for part in ("ids", "facenet", "decide")}
        for path in self.dir.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return int(self.ids.size)

    def rows_of(self, face_ids: np.ndarray) -> np.ndarray:
        """Row of each face id (-1 when the index does not hold it)."""
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

    def decide_chunks(self, chunk: int = 262_144) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, deciding vectors) over every row, a slice at a time."""
        for start in range(0, self.rows, chunk):
            yield start, self.decide(np.arange(start, min(self.rows, start + chunk)))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k rows most similar on the FaceNet vectors per query, among rows where
        `allowed` (bool per row) and alive; exact similarities, best first; -1 pads."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = queries.shape[0]
        allowed = np.asarray(allowed, bool) & self.alive
        want = k * CANDIDATES
        parts_idx, parts_sim = [], []
        if self.index is not None and self.indexed and allowed[:self.indexed].any():
            bitmap = np.packbits(allowed[:self.indexed], bitorder="little")
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBitmap(self.indexed, faiss.swig_ptr(bitmap)),
                                               nprobe=min(self.params.probe, self.index.nlist))
            d, i = self.index.search(queries, min(want, self.indexed), params=params)
            parts_idx.append(i)
            parts_sim.append(np.where(i >= 0, d, -np.inf))
        tail = np.flatnonzero(allowed[self.indexed:]) + self.indexed
        if tail.size:
            i, s = top_k(queries, self.facenet(tail), min(want, tail.size))
            parts_idx.append(np.where(i >= 0, tail[np.maximum(i, 0)], -1))
            parts_sim.append(s)
        if not parts_idx:
            return np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32)
        cand = np.concatenate(parts_idx, axis=1)
        return self._rerank(queries, cand, min(k, cand.shape[1]))

    def _rerank(self, queries: np.ndarray, cand: np.ndarray, k: int, block: int = 1024):
        n = queries.shape[0]
        idx = np.full((n, k), -1, np.int64)
        sim = np.full((n, k), -np.inf, np.float32)
        for start in range(0, n, block):
            c = cand[start:start + block]
            valid = c >= 0
            vecs = self.facenet(np.where(valid, c, 0).ravel()).reshape(*c.shape, -1)
            exact = np.einsum("qd,qkd->qk", queries[start:start + block], vecs)
            exact = np.where(valid, exact, -np.inf)
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            idx[start:start + block] = np.where(np.take_along_axis(valid, order, 1),
                                                np.take_along_axis(c, order, 1), -1)
            sim[start:start + block] = np.take_along_axis(exact, order, 1)
        return idx, sim
