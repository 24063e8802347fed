"""Id lists cut into pieces for one statement each: no `IN (...)` carries more than CHUNK
ids; on PostgreSQL `id_batches` sends ARRAY_CHUNK ids at a time as one array parameter
(`= ANY(...)`), so a million faces take tens of statements, not a thousand."""
from __future__ import annotations

from typing import Iterable, Iterator

from sqlalchemy import func
from sqlalchemy.orm import Session

CHUNK = 1000
ARRAY_CHUNK = 50_000


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ids in ascending order, CHUNK at a time."""
    ordered = sorted(set(int(i) for i in ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


def id_batches(session: Session, column, ids: Iterable[int]) -> Iterator:
    """WHERE clauses `column` in a piece of `ids` (distinct, ascending), one per statement."""
    ordered = sorted(set(int(i) for i in ids))
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(ordered), ARRAY_CHUNK):
            yield column == func.any(ordered[start:start + ARRAY_CHUNK])
        return
    for start in range(0, len(ordered), CHUNK):
        yield column.in_(ordered[start:start + CHUNK])
