"""Recognition at scale with synthetic embeddings: time and peak memory of matching and
clustering as the library grows.

    python bench/recognition_scale.py [--match 100000,1000000] [--cluster 10000,100000,300000]
                                      [--new 10000] [--spread 0.70] [--timeout 900]

Identities are random unit vectors in 512-d; faces are scattered around them so that two
faces of one identity have cosine similarity about `--spread` (the dev set's same-identity
mean with FaceNet CASIA is about 0.70), 10 faces per identity. Each measurement runs in a
child process so its peak memory (ru_maxrss) is its own; one that runs past --timeout
seconds is reported as such.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 512
PER_IDENTITY = 10


def synthetic(n: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n faces, PER_IDENTITY per identity; pairwise same-identity cosine ~ spread."""
    rng = np.random.default_rng(seed)
    ids = max(1, -(-n // PER_IDENTITY))
    centres = rng.standard_normal(size=(ids, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(ids), PER_IDENTITY)[:n]
    # similarity to the centre s0 gives pairwise similarity s0^2
    s0 = np.sqrt(spread)
    faces = np.empty((n, DIM), np.float32)
    for start in range(0, n, 65536):  # in chunks: memory stays near the output's size
        c = centres[labels[start:start + 65536]]
        noise = rng.standard_normal(size=c.shape, dtype=np.float32)
        noise -= (noise * c).sum(1, keepdims=True) * c
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        chunk = s0 * c + np.sqrt(1 - s0 ** 2) * noise
        faces[start:start + 65536] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return faces, labels


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _match(known_n: int, new_n: int, spread: float, out) -> None:
    from app.pipeline.match import Known, match_faces

    known, labels = synthetic(known_n, spread, 1)
    new, _ = synthetic(new_n, spread, 2)
    base = _peak_mb()
    t = time.perf_counter()
    match_faces(new, np.arange(new_n) + 10**9, Known(known, labels.astype(np.int64), np.arange(known_n)), 0.8)
    out.put({"seconds": time.perf_counter() - t, "peak_mb": _peak_mb(), "data_mb": base})


def _cluster(n: int, spread: float, algorithm: str, use_umap: bool, out) -> None:
    from dataclasses import replace

    from app.config import load_settings
    from app.pipeline.cluster import cluster_vectors
    from app.pipeline.metrics import pairwise
    from app.services.assign import cluster_params

    vectors, labels = synthetic(n, spread, 3)
    base = _peak_mb()
    t = time.perf_counter()
    settings = cluster_params(load_settings(env_file=None))
    found = cluster_vectors(vectors, replace(settings, algorithm=algorithm, use_umap=use_umap))
    seconds = time.perf_counter() - t
    pw = pairwise(labels, found)
    out.put({"seconds": seconds, "peak_mb": _peak_mb(), "data_mb": base,
             "precision": pw.precision, "recall": pw.recall})


def measure(target, args, timeout: float) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"timeout": timeout}
    return out.get() if not out.empty() else {"error": f"exit code {proc.exitcode}"}


def fmt(r: dict) -> str:
    if "timeout" in r:
        return f"> {r['timeout']:.0f} s (stopped)"
    if "error" in r:
        return r["error"]
    extra = f"  P {r['precision']:.3f} R {r['recall']:.3f}" if "precision" in r else ""
    return f"{r['seconds']:8.1f} s  peak {r['peak_mb']:7.0f} MB (data {r['data_mb']:.0f} MB){extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", type=int, default=10000)
    ap.add_argument("--match", default="100000,1000000")
    ap.add_argument("--cluster", default="10000,100000,300000")
    ap.add_argument("--algorithms", default="hdbscan,umap+dbscan")
    ap.add_argument("--spread", type=float, default=0.70)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {"match": {}, "cluster": {}}
    print(f"matching {args.new} new faces against known faces (threshold 0.8, chaining, same-photo rule)")
    for n in (int(x) for x in args.match.split(",") if x):
        r = measure(_match, (n, args.new, args.spread), args.timeout)
        results["match"][n] = r
        print(f"  {n:>9} known: {fmt(r)}", flush=True)
    for algo in args.algorithms.split(","):
        use_umap = algo.startswith("umap+")
        name = algo.split("+")[-1]
        print(f"clustering leftovers with {algo}")
        for n in (int(x) for x in args.cluster.split(",") if x):
            r = measure(_cluster, (n, args.spread, name, use_umap), args.timeout)
            results["cluster"][f"{algo}:{n}"] = r
            print(f"  {n:>9} faces: {fmt(r)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
