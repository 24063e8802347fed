"""The queue discipline every stage follows (detection, embedding), in one place.

Per batch: claim in a short transaction (lease, worker id, attempts; see
app/repositories/queue.py); work with no transaction open while a heartbeat renews the
lease; store in a short transaction, each row's result only if this worker still holds
it; record failures with their reason and attempt count; hand back what was not started.
A lost database connection is one warning line and the transaction is retried on a new
connection; only when it keeps failing does the run end with DatabaseUnavailable, and
nothing is charged to the items (this worker releases them when it gets the database back).
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Generic, Iterable, Iterator, Protocol, Sequence, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.types import utcnow
from app.errors import DatabaseUnavailable, first_line
from app.repositories import queue as q_repo
from app.repositories.queue import Claim, Failed, Queue
from app.services import environment
from app.services.environment import Suspicion
from app.stopping import StopFlag

T = TypeVar("T")  # what the work step needs of one claimed row
R = TypeVar("R")  # the work step's result for one row
DB_RETRIES = 5  # tries of one transaction when the connection drops (0.5 + 1 + 2 + 4 s apart)
DB_RETRY_PAUSE = 0.5


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, PendingRollbackError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    )


def in_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T], what: str,
                   log: logging.Logger, retries: int = DB_RETRIES) -> T:
    """`work(session)` in one short transaction. When the connection is lost, one warning
    line, then the whole transaction again on a new connection; DatabaseUnavailable after
    `retries` tries."""
    for attempt in range(1, retries + 1):
        try:
            with sessions.begin() as session:
                return work(session)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if attempt == retries:
                raise DatabaseUnavailable(
                    f"database connection lost while {what} ({retries} tries): {first_line(exc)}"
                ) from None
            if attempt == 1:
                log.warning("database connection lost while %s; retrying on a new connection: %s",
                            what, first_line(exc))
            time.sleep(DB_RETRY_PAUSE * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


class Heartbeat:
    """Renews the lease of the claimed rows every third of LEASE_SECONDS while the work
    runs, so a long item (a huge photo, a slow disk) is not taken by another worker. Rows
    may be added and removed while it runs (a stage that works on several batches at once
    keeps one heartbeat for all of them)."""

    def __init__(self, sessions: sessionmaker[Session], q: Queue, ids: Sequence[int],
                 settings: Settings, log: logging.Logger):
        self._args = (sessions, q, settings, log)
        self._ids = set(ids)
        self._ids_lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{q.name}", daemon=True)

    def add(self, ids: Iterable[int]) -> None:
        with self._ids_lock:
            self._ids.update(ids)

    def remove(self, ids: Iterable[int]) -> None:
        with self._ids_lock:
            self._ids.difference_update(ids)

    def _run(self) -> None:
        sessions, q, settings, log = self._args
        period = max(settings.lease_seconds / 3.0, 0.2)
        while not self._done.wait(period):
            with self._ids_lock:
                ids = sorted(self._ids)
            if not ids:
                continue
            until = utcnow() + timedelta(seconds=settings.lease_seconds)
            try:
                in_transaction(sessions, lambda s: q_repo.extend(s, q, ids, settings.worker_id, until),
                               "renewing a lease", log, retries=1)
            except Exception as exc:  # the store step finds out whether the rows are still ours
                log.warning("could not renew the lease of %d %s rows: %s", len(ids), q.name, first_line(exc))

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


@dataclass(frozen=True)
class Problem:
    """A row whose work failed: the reason is stored on it; `permanent` uses up every
    attempt at once (an error that cannot change, such as an empty file)."""

    id: int
    error: str
    permanent: bool = False
    # Why the environment may be at fault rather than the row (a folder missing, a disk
    # full): app/services/environment.py decides whether the run stops, charging nothing.
    suspicion: Suspicion | None = None


class Stage(Protocol, Generic[T, R]):
    queue: Queue
    log: logging.Logger

    def fetch(self, session: Session, ids: list[int]) -> list[T]:
        """What the work needs of each of these rows, read in the claim transaction (and
        remembered, so `describe` can name them)."""

    def work(self, items: list[T], stop: StopFlag | None) -> tuple[list[R], list[Problem]]:
        """No transaction open. May stop early; rows in neither list are handed back."""

    def result_id(self, result: R) -> int: ...

    def store(self, session: Session, results: list[R]) -> None:
        """Store these results (all rows held by this worker) inside the caller's transaction."""

    def after_commit(self, stored: list[R], dropped: list[R]) -> None:
        """File clean-up once the transaction is committed; `dropped`: results that could
        not be stored (their files belong to nobody)."""

    def describe(self, item_id: int) -> str:
        """Names the row in logs (its file)."""


@dataclass
class BatchReport:
    failures: list[tuple[int, str]] = field(default_factory=list)  # (row id, reason)
    results: list = field(default_factory=list)  # what was stored


def start(sessions: sessionmaker[Session], q: Queue, settings: Settings, log: logging.Logger) -> None:
    """Before a stage runs: hand back what this process still holds (a batch whose store
    lost the database), and on SQLite, where the lock file proves no other worker is
    alive, end every lease at once (a crashed run's batch)."""
    def work(session: Session) -> tuple[int, int]:
        own = q_repo.release_own(session, q, settings.worker_id)
        expired = q_repo.expire_leases(session, q, utcnow()) if settings.is_sqlite else 0
        return own, expired

    own, expired = in_transaction(sessions, work, f"preparing the {q.name} queue", log)
    if own:
        log.info("%s: %d rows this worker could not store before were handed back", q.name, own)
    if expired:
        log.warning("%s: %d rows were held by a worker that stopped (crash or kill); they are retried "
                    "one at a time", q.name, expired)


@contextmanager
def handing_back_on_error(sessions: sessionmaker[Session], q: Queue, settings: Settings,
                          log: logging.Logger) -> Iterator[None]:
    """If the run ends with an error (the database stayed away, a second Ctrl+C), try once
    to hand back what this worker holds, so no item waits for its lease or is charged."""
    try:
        yield
    except BaseException:
        try:
            with sessions.begin() as session:
                released = q_repo.release_own(session, q, settings.worker_id)
            if released:
                log.info("%s: handed back %d claimed rows on the way out", q.name, released)
        except Exception:
            pass  # the database is still away: the rows come back when their lease ends
        raise


def _failed(p: Problem, claim: Claim, settings: Settings, now) -> Failed:
    if environment.uncharged(p.suspicion):  # its folder is gone: tried again later, never given up
        wait = max(settings.retry_delay_seconds, environment.MISSING_RETRY_MIN_SECONDS)
        return Failed(p.id, f"{p.error} (folder {p.suspicion.place} is missing: not charged, tried again later)",
                      claim.attempts, now + timedelta(seconds=wait))
    attempts = claim.attempts if claim.charged else claim.attempts + 1
    if p.permanent:
        attempts = max(attempts, settings.max_attempts)
    retry = now + timedelta(seconds=settings.retry_delay_seconds) if attempts < settings.max_attempts else None
    return Failed(p.id, p.error, attempts, retry)


def _store(session: Session, stage: Stage, claims: dict[int, Claim], results: list, problems: list[Problem],
           settings: Settings) -> tuple[list, list, list[Failed]]:
    """(stored, dropped, failed) in the caller's transaction."""
    held = q_repo.held_by(session, stage.queue, list(claims), settings.worker_id)
    for lost in sorted(set(claims) - held):
        stage.log.warning("%s: lease lost to another worker; result dropped", stage.describe(lost))
    mine = [r for r in results if stage.result_id(r) in held]
    # Results of rows no longer held are not cleaned up here: when the connection dropped
    # during a COMMIT that did succeed, the retry finds them stored already, and their
    # files are in use. Anything truly left over is removed by the thumbnail sweep.
    dropped: list = []
    problems = [p for p in problems if p.id in held]
    stored: list = []
    try:
        with session.begin_nested():
            stage.store(session, mine)
        stored = mine
    except Exception as exc:
        if is_connection_error(exc):
            raise
        # Find the row at fault: one savepoint each.
        stage.log.warning("storing the %s batch failed (%s); storing its rows one by one",
                          stage.queue.name, first_line(exc))
        for r in mine:
            try:
                with session.begin_nested():
                    stage.store(session, [r])
                stored.append(r)
            except Exception as item_exc:
                if is_connection_error(item_exc):
                    raise
                stage.log.error("%s: could not store the result: %s", stage.describe(stage.result_id(r)),
                                first_line(item_exc))
                problems.append(Problem(stage.result_id(r), f"could not store the result: {first_line(item_exc)}"))
                dropped.append(r)
    now = utcnow()
    failed = [_failed(p, claims[p.id], settings, now) for p in problems]
    q_repo.mark_failed(session, stage.queue, failed, settings.worker_id)
    return stored, dropped, failed


@dataclass
class Claimed(Generic[T]):
    """One claimed batch: its rows (with their attempts), what the work needs of each, and
    the rows that used up their attempts while their worker was gone (failed for good)."""

    claims: list[Claim]
    items: list[T]
    given_up: list[tuple[int, str]]
    suspects_waiting: bool = False  # claimed with suspects=False while a suspect was claimable


def claim_batch(sessions: sessionmaker[Session], stage: Stage, settings: Settings,
                batch_size: int, suspects: bool = True) -> Claimed | None:
    """Claim up to `batch_size` rows in one short transaction (rows abandoned for good are
    given up first and logged), or a suspect alone (not with `suspects` False: see
    q_repo.claim). None when there was nothing to claim or give up."""
    q, log = stage.queue, stage.log
    now = utcnow()

    def claim(session: Session):
        given_up = q_repo.give_up_abandoned(session, q, now, settings.max_attempts)
        claims = q_repo.claim(session, q, settings.worker_id, batch_size, now,
                              now + timedelta(seconds=settings.lease_seconds), settings.max_attempts, suspects)
        if given_up:
            stage.fetch(session, [row_id for row_id, _ in given_up])  # to name them in the log
        waiting = not suspects and q_repo.suspect_waiting(session, q, now, settings.max_attempts)
        return Claimed(claims, stage.fetch(session, [c.id for c in claims]), given_up, waiting)

    claimed = in_transaction(sessions, claim, f"claiming {q.name} work", log)
    for row_id, reason in claimed.given_up:
        log.error("%s failed for good: %s", stage.describe(row_id), reason)
    if not claimed.claims and not claimed.given_up:
        return None
    if claimed.claims and claimed.claims[0].charged:
        first = claimed.claims[0]
        log.info("%s: retrying alone, attempt %d of %d (its worker stopped while holding it)",
                 stage.describe(first.id), first.attempts, settings.max_attempts)
    return claimed


def finish_batch(sessions: sessionmaker[Session], stage: Stage, settings: Settings, claimed: Claimed,
                 results: list, problems: list[Problem]) -> BatchReport:
    """Store a claimed batch's results and failures in one short transaction, clean up
    files after the commit, and hand back the rows with neither (not started)."""
    q, log = stage.queue, stage.log
    report = BatchReport(failures=list(claimed.given_up))
    if not claimed.claims:
        return report
    by_id = {c.id: c for c in claimed.claims}
    stored, dropped, failed = in_transaction(
        sessions, lambda s: _store(s, stage, by_id, list(results), list(problems), settings),
        f"storing a {q.name} batch", log,
    )
    stage.after_commit(stored, dropped)
    for f in failed:
        log.error("%s failed (attempt %d of %d%s): %s", stage.describe(f.id), f.attempts, settings.max_attempts,
                  "" if f.retry_at else ", giving up", f.error)
    report.failures.extend((f.id, f.error) for f in failed)
    report.results = stored
    finished = {stage.result_id(r) for r in results} | {p.id for p in problems}
    unstarted = [c for c in claimed.claims if c.id not in finished]
    if unstarted:
        in_transaction(sessions, lambda s: q_repo.release(s, q, unstarted, settings.worker_id),
                       f"handing back {q.name} work", log)
        log.info("%s: handed back %d claimed rows not started", q.name, len(unstarted))
    return report


def hand_back(sessions: sessionmaker[Session], stage: Stage, settings: Settings, batches: Sequence[Claimed],
              results: Sequence) -> None:
    """Claimed batches whose work must not be charged (the environment is at fault): every
    row back to the queue with the attempts it had before this claim, as on a stop, and
    the files of their results deleted (they belong to nobody)."""
    claims = [c for b in batches for c in b.claims]
    if claims:
        in_transaction(sessions, lambda s: q_repo.release(s, stage.queue, claims, settings.worker_id),
                       f"handing back {stage.queue.name} work", stage.log)
        stage.log.info("%s: handed back %d claimed rows, no attempt charged", stage.queue.name, len(claims))
    stage.after_commit([], list(results))


def retry_given_up(sessions: sessionmaker[Session], settings: Settings, since: datetime | None = None
                   ) -> tuple[int, int]:
    """`--retry-failed`: media items and faces (embedding) given up after MAX_ATTEMPTS go
    back to their queues with no attempt used (with `since`, only those whose last
    attempt was at or after it); (media items, faces) handed back."""
    def work(session: Session) -> tuple[int, int]:
        return (q_repo.retry_given_up(session, q_repo.DETECTION, settings.max_attempts, since),
                q_repo.retry_given_up(session, q_repo.EMBEDDING_BOTH, settings.max_attempts, since))

    return in_transaction(sessions, work, "handing back given-up items", logging.getLogger("app.queue"))
