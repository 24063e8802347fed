"""The assignment step at library scale, through the real service and a real database.

    python bench/assignment_scale.py --database-url postgresql://postgres@127.0.0.1:5432/scale
        [--sizes 100000,300000,1000000] [--new 10000] [--strangers 0.3] [--recluster 300000]

For each size N the database is emptied and filled (COPY) with N synthetic faces with
both vectors the default models store: FaceNet-like 512-d vectors made as
bench/recognition_scale.py makes them (10 faces per identity, same-identity cosine about
--spread) and SFace-like 128-d vectors of the same identities (about --spread2), plus
--strangers of them people seen once. Then, each in its own process (peak memory is
that process's ru_maxrss):
- first run: `--recognize` over N unassigned faces (the vector index is built here);
- incremental run: --new more faces (70 % of identities already known, 30 % strangers)
  against the N known ones;
- optionally --recluster at the sizes given.
Pairwise precision / recall are against the synthetic identities (a face left
unassigned is its own cluster). The default LARGE_LIBRARY_FACES applies (50,000), so
every size here runs the large-library path.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_IDENTITY = 10
FACENET_DIM, SFACE_DIM = 512, 128


def _around(centres: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """One unit vector per centre row at cosine sqrt(spread) from it: two of one centre
    have cosine about `spread` (as bench/recognition_scale.synthetic)."""
    s0 = np.sqrt(spread)
    noise = rng.standard_normal(size=centres.shape, dtype=np.float32)
    noise -= (noise * centres).sum(1, keepdims=True) * centres
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = s0 * centres + np.sqrt(1 - s0 ** 2) * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class Library:
    """Identity centres in both spaces, drawn lazily and reproducibly per identity."""

    def __init__(self, spread: float, spread2: float, seed: int = 7) -> None:
        self.spread, self.spread2, self.seed = spread, spread2, seed

    def centres(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.empty((ids.size, FACENET_DIM), np.float32)
        s = np.empty((ids.size, SFACE_DIM), np.float32)
        for j, i in enumerate(ids.tolist()):
            rng = np.random.default_rng([self.seed, i])
            f[j] = rng.standard_normal(FACENET_DIM, dtype=np.float32)
            s[j] = rng.standard_normal(SFACE_DIM, dtype=np.float32)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        return f, s

    def faces(self, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        f_out = np.empty((labels.size, FACENET_DIM), np.float32)
        s_out = np.empty((labels.size, SFACE_DIM), np.float32)
        for start in range(0, labels.size, 65536):
            part = labels[start:start + 65536]
            uniq, inv = np.unique(part, return_inverse=True)
            f, s = self.centres(uniq)
            f_out[start:start + part.size] = _around(f[inv], self.spread, rng)
            s_out[start:start + part.size] = _around(s[inv], self.spread2, rng)
        return f_out, s_out


def first_labels(n: int, strangers: float) -> np.ndarray:
    """Identity per face: (1 - strangers) of them in identities of PER_IDENTITY, the rest
    one face each (identities numbered after those)."""
    grouped = int(round(n * (1 - strangers))) // PER_IDENTITY * PER_IDENTITY
    groups = np.repeat(np.arange(grouped // PER_IDENTITY), PER_IDENTITY)
    lone = grouped // PER_IDENTITY + np.arange(n - grouped)
    return np.concatenate([groups, lone]).astype(np.int64)


def new_labels(first: np.ndarray, new: int, strangers: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grouped = np.unique(first[np.bincount(first)[first] > 1])
    known = rng.choice(grouped, int(round(new * (1 - strangers))))
    lone = first.max() + 1 + np.arange(new - known.size)
    return np.concatenate([known, lone]).astype(np.int64)


def _copy(cur, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    for r in rows:
        buf.write("\t".join(r))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f'COPY "{table}" ({", ".join(chr(34) + c + chr(34) for c in columns)}) FROM STDIN', buf)


def fill(url: str, library: Library, labels: np.ndarray, first_id: int, seed: int) -> None:
    """Faces first_id.. with these identities, one photo each, embedded, unassigned."""
    import psycopg2

    from app.inference.names import model_name

    facenet, sface = model_name("facenet-casia"), model_name("sface")
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    with conn, conn.cursor() as cur:
        for start in range(0, labels.size, 20000):
            part = labels[start:start + 20000]
            f, s = library.faces(part, seed + start)
            ids = np.arange(first_id + start, first_id + start + part.size)
            _copy(cur, "MediaFile", ["Id", "FilePath", "FileName", "Extensions"],
                  ((str(i), f"/synthetic/{i}.jpg", f"{i}.jpg", ".jpg") for i in ids.tolist()))
            _copy(cur, "Faces", ["Id", "MediaFileId", "BoundingBox", "Embedding", "EmbeddingModel",
                                 "Embedding2", "Embedding2Model", "IsUsable"],
                  ((str(i), str(i), '{"x": 10, "y": 10, "w": 100, "h": 100}', "\\\\x" + f[j].tobytes().hex(),
                    facenet, "\\\\x" + s[j].tobytes().hex(), sface, "t") for j, i in enumerate(ids.tolist())))
        for table in ("MediaFile", "Faces", "Persons"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'Id'), "
                        f"(SELECT COALESCE(MAX(\"Id\"), 1) FROM \"{table}\"))")
        cur.execute('ANALYZE "Faces"')
    conn.close()


def reset(url: str) -> None:
    from sqlalchemy import text

    from app.db.engine import make_engine
    from app.db.schema import upgrade

    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text('TRUNCATE "AssignmentLog", "Operations", "FaceRejections", "Faces", "Persons", '
                       '"MediaItems", "MediaFile" RESTART IDENTITY CASCADE'))
    engine.dispose()


def _run(url: str, data_dir: str, mode: str, out) -> None:
    os.environ.update(DATABASE_URL=url, DATA_DIR=data_dir, LOG_LEVEL="WARNING")
    from app.config import load_settings
    from app.db.engine import make_engine, session_factory
    from app.services.assign import assign_unassigned, recluster

    settings = load_settings(env_file=None)
    sessions = session_factory(make_engine(url))
    started = time.perf_counter()
    report = (recluster if mode == "recluster" else assign_unassigned)(sessions, settings)
    out.put({"seconds": time.perf_counter() - started, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "phases": report.phases, "faces": report.faces, "matched": report.matched, "joined": report.joined,
             "clustered": report.clustered, "persons": report.persons_created})


def run(url: str, data_dir: str, mode: str, timeout: float) -> dict:
    from bench.recognition_scale import measure

    return measure(_run, (url, data_dir, mode), timeout)


def quality(url: str, labels: np.ndarray) -> tuple[float, float]:
    import psycopg2

    from app.pipeline.metrics import pairwise

    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    with conn.cursor() as cur:
        cur.execute('SELECT "Id", COALESCE("PersonId", -1) FROM "Faces" ORDER BY "Id"')
        rows = np.array(cur.fetchall(), np.int64)
    conn.close()
    pw = pairwise(labels[rows[:, 0] - 1], rows[:, 1])
    return pw.precision, pw.recall


def fmt(r: dict) -> str:
    if "timeout" in r or "error" in r:
        return json.dumps(r)
    phases = " ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
    return (f"{r['seconds']:7.1f} s  peak {r['peak_mb'] / 1024:5.2f} GB  ({phases}; {r['faces']} faces: "
            f"{r['matched']} matched, {r['joined']} joined, {r['clustered']} in {r['persons']} new persons)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True, help="a PostgreSQL database this bench may empty")
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--new", type=int, default=10000)
    ap.add_argument("--strangers", type=float, default=0.3)
    ap.add_argument("--spread", type=float, default=0.70)
    ap.add_argument("--spread2", type=float, default=0.60)
    ap.add_argument("--recluster", default="", help="sizes at which to time --recluster too")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"# {date.today()} {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB; PostgreSQL; "
          f"{args.strangers:.0%} strangers, spreads {args.spread} / {args.spread2}", flush=True)
    library = Library(args.spread, args.spread2)
    results = {}
    recluster_at = {int(x) for x in args.recluster.split(",") if x}
    for n in (int(x) for x in args.sizes.split(",") if x):
        data_dir = tempfile.mkdtemp(prefix=f"scale-{n}-")
        reset(args.database_url)
        labels = first_labels(n, args.strangers)
        t = time.perf_counter()
        fill(args.database_url, library, labels, 1, seed=11)
        print(f"{n:>9} faces: filled in {time.perf_counter() - t:.0f} s", flush=True)
        r = run(args.database_url, data_dir, "recognize", args.timeout)
        if "seconds" in r:
            r["precision"], r["recall"] = quality(args.database_url, labels)
        print(f"  first run     {fmt(r)}  P {r.get('precision', 0):.4f} R {r.get('recall', 0):.4f}", flush=True)
        results[f"first:{n}"] = r
        more = new_labels(labels, args.new, args.strangers, seed=n)
        fill(args.database_url, library, more, n + 1, seed=13)
        both = np.concatenate([labels, more])
        r = run(args.database_url, data_dir, "recognize", args.timeout)
        if "seconds" in r:
            r["precision"], r["recall"] = quality(args.database_url, both)
        print(f"  +{args.new} new   {fmt(r)}  P {r.get('precision', 0):.4f} R {r.get('recall', 0):.4f}", flush=True)
        results[f"incremental:{n}"] = r
        if n in recluster_at:
            r = run(args.database_url, data_dir, "recluster", args.timeout)
            if "seconds" in r:
                r["precision"], r["recall"] = quality(args.database_url, both)
            print(f"  recluster     {fmt(r)}  P {r.get('precision', 0):.4f} R {r.get('recall', 0):.4f}",
                  flush=True)
            results[f"recluster:{n}"] = r
    sizes = sorted({int(k.split(":")[1]) for k in results if k.startswith("first:")})
    if len(sizes) > 1:
        print("growth exponent (time ~ size^b) between consecutive sizes:")
        for kind in ("first", "incremental"):
            for a, b in zip(sizes, sizes[1:]):
                ra, rb = results.get(f"{kind}:{a}", {}), results.get(f"{kind}:{b}", {})
                if "seconds" in ra and "seconds" in rb:
                    parts = {p: np.log(rb["phases"][p] / ra["phases"][p]) / np.log(b / a)
                             for p in ra["phases"] if p in rb["phases"] and ra["phases"][p] > 0.05}
                    total = np.log(rb["seconds"] / ra["seconds"]) / np.log(b / a)
                    print(f"  {kind:11} {a}->{b}: total {total:.2f}; " +
                          " ".join(f"{p} {v:.2f}" for p, v in parts.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
