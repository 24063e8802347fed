"""Clustering and verification metrics against known identities.

A face left unassigned (label -1) counts as its own singleton cluster.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def singletons(labels: np.ndarray) -> np.ndarray:
    """Noise (-1) becomes a unique label per face."""
    out = np.asarray(labels, dtype=np.int64).copy()
    noise = np.flatnonzero(out < 0)
    out[noise] = out.max(initial=0) + 1 + np.arange(noise.size)
    return out


def _pairs(counts) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def pairwise(truth: np.ndarray, labels: np.ndarray) -> PRF:
    """Precision: share of same-cluster pairs that are the same identity; recall: share of
    same-identity pairs put in the same cluster."""
    pred = singletons(labels)
    together = _pairs(Counter(pred.tolist()).values())
    same = _pairs(Counter(truth.tolist()).values())
    both = _pairs(Counter(zip(truth.tolist(), pred.tolist())).values())
    return PRF(both / together if together else 1.0, both / same if same else 1.0)


def bcubed(truth: np.ndarray, labels: np.ndarray) -> PRF:
    pred = singletons(labels)
    joint = Counter(zip(truth.tolist(), pred.tolist()))
    in_cluster = Counter(pred.tolist())
    in_class = Counter(truth.tolist())
    p = sum(joint[(t, c)] / in_cluster[c] for t, c in zip(truth.tolist(), pred.tolist()))
    r = sum(joint[(t, c)] / in_class[t] for t, c in zip(truth.tolist(), pred.tolist()))
    n = len(truth)
    return PRF(p / n if n else 1.0, r / n if n else 1.0)


def largest_mixed(truth: np.ndarray, labels: np.ndarray) -> int:
    """Most identities held by one cluster (1 = no cluster mixes people)."""
    worst = 0
    for label in set(labels.tolist()) - {-1}:
        worst = max(worst, len(set(truth[labels == label].tolist())))
    return worst


def verification(vectors: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC of same vs different identity cosine similarity, the similarity at
    false-match rates 1e-3 and 1e-4, and the share of same pairs at >= threshold."""
    sims = vectors @ vectors.T
    iu = np.triu_indices(len(truth), k=1)
    s = sims[iu]
    same = (truth[:, None] == truth[None, :])[iu]
    pos, neg = np.sort(s[same]), np.sort(s[~same])
    # AUC by ranks (Mann-Whitney U), ties counted half
    ranks = np.searchsorted(neg, pos, side="left") + np.searchsorted(neg, pos, side="right")
    auc = float(ranks.sum() / 2 / (pos.size * neg.size)) if pos.size and neg.size else float("nan")

    def at_fmr(rate: float) -> float:
        k = int(np.ceil(rate * neg.size))
        return float(neg[-k]) if 0 < k <= neg.size else float("nan")

    return {
        "auc": auc,
        "similarity_at_fmr_1e-3": at_fmr(1e-3),
        "similarity_at_fmr_1e-4": at_fmr(1e-4),
        "same_pairs_at_threshold": float((pos >= threshold).mean()) if pos.size else float("nan"),
        "same_pairs": int(pos.size),
        "different_pairs": int(neg.size),
    }
