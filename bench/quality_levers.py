"""Quality levers measured on cached embeddings (bench/quality_cache.py), no database.

    python bench/quality_levers.py CACHE.npz [--folds 5]

1. Separation of each embedding (FaceNet CASIA, mirrored average, SFace, mirrored
   SFace): true-match rate at false-match rates 1e-3..1e-6 over main faces, strangers
   included.
2. Clustering (the first-run planner: average linkage under an absolute bound) on every
   usable face, scored on the main faces with the evaluation's own scoring
   (app/services/crossval.py): pairwise and BCubed P/R/F1, unassigned share, strangers
   sharing a person, mixed persons; a grid of bounds at false-match rates, and the
   evaluation's cross-validation over identities.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.pipeline.crop import l2_normalise  # noqa: E402
from app.services import crossval  # noqa: E402

MATCH_THRESHOLD = 0.8  # the contract's; with no known person (a first run) it matches nothing
NEIGHBOURS = 10


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


def fold_faces(d: dict, key: str, keep: np.ndarray) -> crossval.FoldFaces:
    """The usable faces among `keep`, as the evaluation's cross-validation takes them."""
    rows = keep & d["usable"]
    media = np.unique(d["path"], return_inverse=True)[1]
    return crossval.FoldFaces(d["identity"][rows], d["main"][rows], media[rows], d[key][rows], d["facenet"][rows])


def _line(s: dict) -> str:
    return (f"P={s['pairwise']['precision']:.4f} R={s['pairwise']['recall']:.4f} F={s['pairwise']['f1']:.4f} "
            f"B3F={s['bcubed']['f1']:.4f} unassigned={s['unassigned_share']:.4f} "
            f"strangers_merged={s['strangers_merged']} mixed_persons={s['mixed_persons']}")


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
        faces = fold_faces(d, key, base)
        everyone = np.ones(faces.identity.size, bool)

        def at(rate: float) -> float:
            return float(np.interp(np.log10(rate), [-6, -5, -4, -3], [sep[r][0] for r in (1e-6, 1e-5, 1e-4, 1e-3)]))

        print(f"\n== {key}: whole set")
        for rate_t in (1e-3, 3e-4, 1e-4):
            for rate_p in (1e-4, 1e-5, 1e-6):
                for min_size in (2, 3):
                    if rate_p > rate_t:
                        continue
                    s = crossval.Setting(at(rate_t), at(rate_p), min_size)
                    t0 = time.perf_counter()
                    labels = crossval.labels_for(faces, everyone, s, MATCH_THRESHOLD, NEIGHBOURS)
                    print(f"t@{rate_t:g} pair@{rate_p:g} min{min_size}  {s.describe()}  "
                          f"{_line(crossval.score(faces, everyone, labels))}  {time.perf_counter() - t0:.1f}s")
        cv = crossval.cross_validate(faces, args.folds, crossval.Setting(at(1e-4), at(1e-5), 3), MATCH_THRESHOLD,
                                     NEIGHBOURS, centre=(round(at(1e-4), 3), round(at(1e-5), 3)))
        print(f"-- {key}: {args.folds}-fold CV (app/services/crossval.py, grid around its FMR 1e-4 / 1e-5 bounds)")
        for f in cv["folds"]:
            print(f"  chose {f['chosen']}  {_line(f)}")
        print(f"  mean F {cv['mean']['pairwise_f1']:.4f} worst F {cv['worst_pairwise_f1']:.4f} "
              f"mean P {cv['mean']['pairwise_precision']:.4f}; chosen most: {cv['chosen_most']}")


if __name__ == "__main__":
    main()
