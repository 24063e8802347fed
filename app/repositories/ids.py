"""Id lists cut into pieces for `IN (...)`: no statement carries more than CHUNK ids."""
from __future__ import annotations

from typing import Iterable, Iterator

CHUNK = 1000


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ids in ascending order, CHUNK at a time."""
    ordered = sorted(set(int(i) for i in ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]
