"""Re-check of a user's face refreshed from new pixels (its photo was replaced or edited
under its name): is the face now there still the person the user put it in?

Pure: vectors in, a verdict out. The face's new deciding vector is compared with the
deciding vectors of the person's other faces; it stays when their average cosine
similarity reaches `bound`, the assignment's bound for a face joining a person known
before the run (the same evidence the worker asks of any face joining a person).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Verdict:
    keep: bool
    similarity: float | None  # average cosine with the others; None: nothing to compare
    others: int  # faces compared with

    @property
    def checked(self) -> bool:
        return self.similarity is not None


def recheck(vector: np.ndarray | None, others: np.ndarray | None, bound: float) -> Verdict:
    """`vector`: the face's deciding vector (None: it has none, e.g. not usable); `others`:
    (n, d) the person's other faces' vectors, L2-normalised like every stored vector. With
    nothing to compare, the decision cannot be checked and is kept."""
    if vector is None or others is None or len(others) == 0:
        return Verdict(True, None, 0 if others is None else len(others))
    similarity = float(np.mean(others @ vector))
    return Verdict(similarity >= bound, similarity, len(others))  # NaN: not shown to be the same
