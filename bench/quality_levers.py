"""Quality levers measured on cached embeddings (bench/quality_cache.py), no database.

    python bench/quality_levers.py CACHE.npz [--folds 5]

1. Separation of each embedding (FaceNet CASIA, mirrored average, SFace, mirrored
   SFace): true-match rate at false-match rates 1e-3..1e-6 over main faces, strangers
   included.
2. Clustering (average linkage with an absolute bound, app/pipeline/linkage.py) on every
   usable face, scored on the main faces: pairwise and BCubed P/R/F1, unassigned share,
   strangers sharing a person, largest mix; a grid of thresholds, and cross-validation
   over identities (settings chosen on 4 folds, scored on the 5th).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.pipeline import metrics  # noqa: E402
from app.pipeline.crop import l2_normalise  # noqa: E402
from app.pipeline.linkage import LinkageParams, Seeds, cluster  # noqa: E402


def load(path: Path) -> dict:
    d = dict(np.load(path, allow_pickle=False))
    d["facenet_mirror"] = l2_normalise(d["facenet"] + d["facenet_flip"])
    d["sface_mirror"] = l2_normalise(d["sface"] + d["sface_flip"])
    for k in ("facenet", "sface"):
        d[k] = l2_normalise(d[k])
    return d


def separation(d: dict, key: str) -> dict:
    main = d["main"] & (d["identity"] != "")
    v = d[key][main]
    _, truth = np.unique(d["identity"][main], return_inverse=True)
    s = v @ v.T
    iu = np.triu_indices(len(truth), 1)
    s = s[iu]
    same = (truth[:, None] == truth[None, :])[iu]
    pos, neg = s[same], np.sort(s[~same])
    out = {}
    for rate in (1e-3, 1e-4, 1e-5, 1e-6):
        k = int(np.ceil(rate * neg.size))
        t = float(neg[-k])
        out[rate] = (t, float((pos > t).mean()))
    return out


def score(d: dict, keep: np.ndarray, labels_all: np.ndarray) -> dict:
    """Scores on the main faces among `keep` (a mask over all faces)."""
    main = d["main"] & keep & (d["identity"] != "")
    labels = labels_all[main]
    names = d["identity"][main]
    _, truth = np.unique(names, return_inverse=True)
    pw, b3 = metrics.pairwise(truth, labels), metrics.bcubed(truth, labels)
    stranger = np.char.startswith(names.astype(str), "stranger:")
    sizes = {}
    for lab in labels.tolist():
        sizes[lab] = sizes.get(lab, 0) + 1
    merged_strangers = int(sum(1 for i in np.flatnonzero(stranger) if labels[i] >= 0 and sizes[labels[i]] > 1))
    return {"P": pw.precision, "R": pw.recall, "F": pw.f1, "B3F": b3.f1, "B3P": b3.precision,
            "unassigned": float((labels[~stranger] < 0).mean()), "strangers_merged": merged_strangers,
            "mix": metrics.largest_mixed(truth, labels)}


def run_linkage(d: dict, key: str, keep: np.ndarray, params: LinkageParams, min_size: int) -> np.ndarray:
    """Labels over all faces (-1 outside `keep`, unusable, or in a group below min_size)."""
    rows = np.flatnonzero(keep & d["usable"])
    vectors = d[key][rows]
    media = np.unique(d["path"][rows], return_inverse=True)[1]
    raw, _ = cluster(vectors, media, Seeds.empty(vectors.shape[1]), params)
    labels = np.full(keep.size, -1, np.int64)
    ids, counts = np.unique(raw, return_counts=True)
    big = set(ids[counts >= min_size].tolist())
    for r, lab in zip(rows.tolist(), raw.tolist()):
        if lab in big:
            labels[r] = lab
    return labels


def folds_of(d: dict, k: int, seed: int = 0) -> np.ndarray:
    names = np.unique(d["identity"][d["identity"] != ""])
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(names).tolist(), np.arange(names.size) % k))
    # faces of group photos (no identity) go with no fold: they are in every run
    return np.array([fold_of.get(n, -1) for n in d["identity"].tolist()])


def objective(s: dict) -> float:
    # pairwise F1, with precision under 0.995 and strangers merged penalised
    return s["F"] - 10 * max(0.0, 0.995 - s["P"]) - 0.002 * s["strangers_merged"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--keys", default="facenet,facenet_mirror,sface,sface_mirror")
    ap.add_argument("--no-strangers", action="store_true")
    args = ap.parse_args()
    d = load(args.cache)
    base = np.ones(d["identity"].size, bool)
    if args.no_strangers:
        base &= ~np.char.startswith(d["identity"].astype(str), "stranger:")
    print(f"{d['identity'].size} faces, {int((d['main'] & base).sum())} main faces")
    for key in args.keys.split(","):
        sep = separation(d, key)
        print(key, "  ".join(f"FMR {r:g}: t={t:.3f} TMR={m:.4f}" for r, (t, m) in sep.items()))
    for key in args.keys.split(","):
        sep = separation(d, key)
        grid = []
        for rate_t in (1e-3, 3e-4, 1e-4):
            for rate_p in (1e-4, 1e-5, 1e-6):
                if rate_p > rate_t:
                    continue
                for min_size in (2, 3):
                    t = float(np.interp(np.log10(rate_t), [-6, -5, -4, -3], [sep[r][0] for r in (1e-6, 1e-5, 1e-4, 1e-3)]))
                    tp = float(np.interp(np.log10(rate_p), [-6, -5, -4, -3], [sep[r][0] for r in (1e-6, 1e-5, 1e-4, 1e-3)]))
                    grid.append((LinkageParams(t, tp), min_size, f"t@{rate_t:g} pair@{rate_p:g} min{min_size}"))
        print(f"\n== {key}: whole set")
        for params, min_size, name in grid:
            t0 = time.perf_counter()
            s = score(d, base, run_linkage(d, key, base, params, min_size))
            print(f"{name:28s} t={params.threshold:.3f} pt={params.pair_threshold:.3f} "
                  + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items())
                  + f"  {time.perf_counter() - t0:.1f}s")
        fold = folds_of(d, args.folds)
        chosen = []
        for f in range(args.folds):
            train = base & (fold != f)
            test = base & (fold == f)
            best = max(grid, key=lambda g: objective(score(d, train, run_linkage(d, key, train, g[0], g[1]))))
            s = score(d, test, run_linkage(d, key, test, best[0], best[1]))
            chosen.append((best[2], s))
        print(f"-- {key}: {args.folds}-fold CV")
        for name, s in chosen:
            print(f"  chose {name:28s} " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in s.items()))
        fs = [s["F"] for _, s in chosen]
        print(f"  mean F {np.mean(fs):.4f} worst F {min(fs):.4f} mean P {np.mean([s['P'] for _, s in chosen]):.4f}")


if __name__ == "__main__":
    main()
