"""SQLite has no row locks to share work: one worker process per database file."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import make_url

from app.errors import WorkerBusy


@contextmanager
def single_worker(database_url: str) -> Iterator[None]:
    """Hold an exclusive lock file beside a SQLite database; no-op for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(url.database + ".worker.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkerBusy(
                f"another worker is already running on the SQLite database {url.database}; "
                "SQLite supports one worker at a time (use PostgreSQL for several)"
            ) from None
        yield
    finally:
        os.close(fd)
