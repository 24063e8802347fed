"""--publish: post the outbox's events (app/repositories/outbox.py) to PUBLISH_URL.

Per event: claim it (short transaction; the claim fixes its idempotency key and counts as
an attempt), fix its body once (read the media file's faces and persons, hash the file),
POST it with no transaction open, then record the answer (short transaction):
- 2xx: sent, never posted again;
- network error, timeout, 408, 429, 5xx: tried again after PUBLISH_BACKOFF_SECONDS x 2^(n-1),
  until PUBLISH_MAX_ATTEMPTS, then failed (kept, shown by --status);
- any other answer: failed at once (the receiver refuses this event; retrying cannot help).
A worker killed between the receiver's 2xx and the commit leaves its event pending; after
its lease runs out the event is posted again with the same Idempotency-Key and body, so a
receiver that honours the key sees each event once.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.types import utcnow
from app.errors import first_line
from app.pipeline import derived_asset
from app.repositories import outbox
from app.stopping import StopFlag

log = logging.getLogger("app.publish")

MAX_BACKOFF_SECONDS = 3600.0
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Answer:
    ok: bool
    retry: bool  # worth trying again later
    reason: str


@dataclass
class PublishReport:
    sent: int = 0
    retried: int = 0  # failed tries that will be tried again
    failed: int = 0  # given up
    seconds: float = 0.0


Post = Callable[[str, bytes, str, str | None, float], Answer]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: urllib would turn the POST into a GET without
    its body and carry the Authorization header to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_event(url: str, body: bytes, key: str, token: str | None, timeout: float) -> Answer:
    """POST one event; never raises for what the network or the receiver does."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "facegroup-publisher"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(1 << 16)
            return Answer(True, False, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in (408, 429)
        where = f" to {exc.headers.get('Location')}" if 300 <= exc.code < 400 and exc.headers else ""
        return Answer(False, retry, f"HTTP {exc.code} {exc.reason}{where}".strip())
    except (TimeoutError, socket.timeout):
        return Answer(False, True, f"timed out after {timeout:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Answer(False, True, f"timed out after {timeout:g} s")
        return Answer(False, True, f"network error: {reason}")
    except (http.client.HTTPException, OSError) as exc:  # connection reset, bad status line, ...
        return Answer(False, True, f"network error: {type(exc).__name__}: {first_line(exc)}")


def backoff(settings: Settings, attempts: int) -> float:
    return min(MAX_BACKOFF_SECONDS, settings.publish_backoff_seconds * 2 ** max(0, attempts - 1))


def _sha256(path: str) -> tuple[str | None, str | None]:
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
    return digest.hexdigest(), None


def _body(sessions: sessionmaker[Session], c: outbox.Claimed, settings: Settings) -> str | None:
    """The event's fixed body: the stored one, or built now (after the claim committed,
    so it holds every change that joined the event) and stored before the first POST.
    None when another worker took the event over meanwhile."""
    if c.payload is not None:
        return c.payload
    with sessions() as session:
        facts = outbox.media_facts(session, c.media_file_id)
        faces = outbox.faces_of(session, c.media_file_id) if facts is not None else []
    sha, problem = _sha256(facts.file_path) if facts is not None else (None, None)
    body = json.dumps(derived_asset.build(c.event_id, c.key, c.media_file_id, facts, faces, sha, problem,
                                          settings.export_author), sort_keys=True, separators=(",", ":"))
    with sessions.begin() as session:
        if not outbox.set_payload(session, c.event_id, body, settings.worker_id):
            return None
    return body


def _record(sessions: sessionmaker[Session], c: outbox.Claimed, answer: Answer, settings: Settings,
            report: PublishReport) -> None:
    now = utcnow()
    with sessions.begin() as session:
        if answer.ok:
            outbox.mark_sent(session, c.event_id, now)
            report.sent += 1
            log.info("event %d (media file %d) published: %s", c.event_id, c.media_file_id, answer.reason)
        elif answer.retry and c.attempts < settings.publish_max_attempts:
            delay = backoff(settings, c.attempts)
            outbox.mark_retry(session, c.event_id, settings.worker_id, answer.reason, now + timedelta(seconds=delay))
            report.retried += 1
            log.warning("event %d (media file %d): %s; attempt %d of %d, next in %.1f s", c.event_id,
                        c.media_file_id, answer.reason, c.attempts, settings.publish_max_attempts, delay)
        else:
            why = (f"{answer.reason} (gave up after {c.attempts} attempts)" if answer.retry
                   else f"{answer.reason} (refused by the receiver; not retried)")
            outbox.mark_failed(session, c.event_id, settings.worker_id, why)
            report.failed += 1
            log.error("event %d (media file %d) failed: %s", c.event_id, c.media_file_id, why)


def publish(sessions: sessionmaker[Session], settings: Settings, stop: StopFlag | None = None, wait: bool = True,
            post: Post = post_event) -> PublishReport:
    """Post every due event. With `wait`, also wait out the retry delays until no event
    is open (all sent or failed) or a stop is requested; without, one pass (--automate)."""
    if not settings.publish_url:
        raise ValueError("PUBLISH_URL is not set")
    started = time.perf_counter()
    report = PublishReport()
    worker = settings.worker_id
    while not (stop is not None and stop.is_set()):
        now = utcnow()
        with sessions.begin() as session:
            for event_id in outbox.exhausted(session, now, settings.publish_max_attempts):
                report.failed += 1
                log.error("event %d failed: its publisher stopped while sending, on its last attempt", event_id)
            claimed = outbox.claim(session, worker, now, now + timedelta(seconds=settings.lease_seconds),
                                   settings.publish_batch_size, settings.publish_max_attempts)
        if not claimed:
            if not wait:
                break
            with sessions() as session:
                due = outbox.next_due(session, settings.publish_max_attempts)
            if due is False:
                break
            delay = 0.2 if due is None else min(5.0, max(0.05, (due - utcnow()).total_seconds()))
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            continue
        for n, c in enumerate(claimed):
            if stop is not None and stop.is_set():
                with sessions.begin() as session:
                    outbox.release(session, [x.event_id for x in claimed[n:]], worker)
                break
            try:
                body = _body(sessions, c, settings)
                if body is None:
                    continue
                answer = post(settings.publish_url, body.encode("utf-8"), c.key, settings.publish_token,
                              settings.publish_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - this event's failure, not the run's
                log.error("event %d (media file %d): unexpected error: %s", c.event_id, c.media_file_id,
                          type(exc).__name__)  # the message could carry a header: never logged
                answer = Answer(False, True, f"unexpected error while sending: {type(exc).__name__}")
            _record(sessions, c, answer, settings, report)
    report.seconds = time.perf_counter() - started
    if report.sent or report.retried or report.failed:
        log.info("published %d events, %d to be retried, %d failed in %.1f s",
                 report.sent, report.retried, report.failed, report.seconds)
    return report
