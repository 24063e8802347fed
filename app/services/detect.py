"""Detection use case: claim pending media in batches, find faces, store them.

Per batch: one short transaction claims the items (lease), the images are analysed
with no transaction open, then one transaction stores every result, each item inside
its own savepoint so one bad row never rolls back the others.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.types import utcnow
from app.inference.detector import Detector
from app.pipeline.analyze import AnalyzeOptions, FoundFace, analyze_image
from app.pipeline.decode import DecodeError, Decoded, load
from app.pipeline.faces import Box
from app.pipeline.quality import Gates
from app.pipeline.thumbnail import stale_thumbnails, thumbnail_path, write_atomic
from app.repositories import faces as faces_repo
from app.repositories import media as media_repo
from app.worker.stop import StopFlag

log = logging.getLogger("app.detection")
# A new detection this close to a face a user assigned is that same face.
SAME_FACE_IOU = 0.5


@dataclass
class DetectReport:
    images: int = 0
    faces: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (item id, reason)

    def add(self, other: "DetectReport") -> None:
        self.images += other.images
        self.faces += other.faces
        self.failed += other.failed
        self.seconds += other.seconds
        self.failures.extend(other.failures)


@dataclass(frozen=True)
class Outcome:
    item: media_repo.ClaimedItem
    faces: list[FoundFace] | None  # None: failed
    error: str = ""


def analyze_options(settings: Settings) -> AnalyzeOptions:
    return AnalyzeOptions(
        max_pixels=settings.max_image_pixels,
        max_side=settings.detect_max_side,
        detect_min_score=settings.detect_min_score,
        gates=Gates(settings.min_face_score, settings.min_face_size, settings.min_blur),
        thumbnail_size=settings.thumbnail_size,
        thumbnail_margin=settings.thumbnail_margin,
    )


def _prefetch(items: list[media_repo.ClaimedItem], max_pixels: int, max_side: int, depth: int = 2
              ) -> Iterator[tuple[media_repo.ClaimedItem, Callable[[], Decoded]]]:
    """Decode the next images in a background thread while the model runs on this one.

    Yields (item, get_image); get_image re-raises the decoding error, if any. At most
    `depth` decoded images wait in memory.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
    pending: deque = deque()
    upcoming = iter(items)

    def submit_next() -> None:
        item = next(upcoming, None)
        if item is not None:
            # JPEGs are decoded at the smallest scale still at least as large as detection uses
            pending.append((item, pool.submit(load, Path(item.file_path), max_pixels, max_side)))

    try:
        for _ in range(depth + 1):
            submit_next()
        while pending:
            item, future = pending.popleft()
            submit_next()
            yield item, future.result
    finally:
        # Leaving early (a stop request) drops what has not started.
        pool.shutdown(wait=True, cancel_futures=True)


def _analyze_item(item: media_repo.ClaimedItem, get_image: Callable[[], Decoded],
                  detector: Detector, opts: AnalyzeOptions) -> Outcome:
    try:
        decoded = get_image()
        return Outcome(item, analyze_image(decoded.rgb, detector, opts, (decoded.width, decoded.height)))
    except DecodeError as exc:
        return Outcome(item, None, str(exc))
    except MemoryError:
        return Outcome(item, None, "out of memory while processing the image")
    except Exception as exc:  # a model or library failure on one image must not stop the batch
        log.exception("item %d (%s): unexpected error", item.item_id, item.file_path)
        return Outcome(item, None, f"unexpected error: {type(exc).__name__}: {exc}")


def _store_items(session: Session, outcomes: list[Outcome], thumbs_root: Path, now) -> dict[int, int]:
    """Store the faces of these items and mark them done, in a few statements for all of
    them. Returns the face count per item id."""
    media_ids = [o.item.media_file_id for o in outcomes]
    existing = faces_repo.faces_of_media(session, media_ids)
    kept: dict[int, list[faces_repo.StoredFace]] = defaultdict(list)
    for f in existing:
        if f.set_by_user:
            kept[f.media_file_id].append(f)
    faces_repo.delete_faces(session, [f.face_id for f in existing if not f.set_by_user])

    new: list[tuple[Outcome, FoundFace]] = []
    for o in outcomes:
        kept_boxes = [Box.from_json(k.bounding_box) for k in kept[o.item.media_file_id] if k.bounding_box]
        new.extend((o, f) for f in o.faces or [] if all(f.face.box.iou(b) < SAME_FACE_IOU for b in kept_boxes))
    ids = faces_repo.insert_faces(session, [
        faces_repo.NewFace(
            media_file_id=o.item.media_file_id, bounding_box=f.face.box.to_json(), confidence=f.face.score,
            landmarks=f.face.landmarks_json(), blur=f.blur, is_usable=f.usable,
        )
        for o, f in new
    ])
    paths: list[tuple[int, str]] = []
    files: dict[int, set[Path]] = {m: {Path(k.thumbnail_path) for k in kept[m] if k.thumbnail_path} for m in media_ids}
    counts = {o.item.item_id: len(kept[o.item.media_file_id]) for o in outcomes}
    for face_id, (o, found) in zip(ids, new):
        path = thumbnail_path(thumbs_root, o.item.media_file_id, face_id)
        write_atomic(path, found.thumbnail)
        paths.append((face_id, str(path)))
        files[o.item.media_file_id].add(path)
        counts[o.item.item_id] += 1
    faces_repo.set_thumbnails(session, paths)
    for media_id in media_ids:
        for stale in stale_thumbnails(thumbs_root, media_id, files[media_id]):
            stale.unlink(missing_ok=True)
    media_repo.mark_done(session, list(counts.items()), now)
    return counts


def _store(sessions: sessionmaker[Session], outcomes: list[Outcome], settings: Settings,
           report: DetectReport) -> None:
    now = utcnow()
    retry_at = now + timedelta(seconds=settings.retry_delay_seconds)
    worker = settings.worker_id
    with sessions.begin() as session:
        held = media_repo.held_by(session, [o.item.item_id for o in outcomes], worker)
        for o in outcomes:
            if o.item.item_id not in held:
                log.warning("item %d: lease lost to another worker; result dropped", o.item.item_id)
        found = [o for o in outcomes if o.faces is not None and o.item.item_id in held]
        failed = [o for o in outcomes if o.faces is None and o.item.item_id in held]
        counts: dict[int, int] = {}
        try:
            with session.begin_nested():
                counts = _store_items(session, found, settings.thumbnail_path, now)
        except Exception:
            # Find the item at fault: store one by one, each in its own savepoint.
            log.warning("storing the batch failed; storing its items one by one", exc_info=True)
            for o in found:
                try:
                    with session.begin_nested():
                        counts.update(_store_items(session, [o], settings.thumbnail_path, now))
                except Exception as exc:
                    log.exception("item %d (%s): could not store faces", o.item.item_id, o.item.file_path)
                    failed.append(Outcome(o.item, None, f"could not store faces: {type(exc).__name__}: {exc}"))
        report.images += len(counts)
        report.faces += sum(counts.values())
        for o in failed:
            media_repo.mark_failed(session, o.item.item_id, worker, o.error, retry_at)
            attempts_left = settings.max_attempts - o.item.attempt
            log.error(
                "item %d (%s) failed (attempt %d of %d%s): %s",
                o.item.item_id, o.item.file_path, o.item.attempt, settings.max_attempts,
                "" if attempts_left > 0 else ", giving up", o.error,
            )
            report.images += 1
            report.failed += 1
            report.failures.append((o.item.item_id, o.error))


def run_batch(sessions: sessionmaker[Session], detector: Detector, settings: Settings,
              stop: StopFlag | None = None) -> DetectReport | None:
    """Claim and process one batch. None when nothing was claimable."""
    started = time.perf_counter()
    now = utcnow()
    with sessions.begin() as session:
        abandoned = media_repo.give_up_abandoned(session, now, settings.max_attempts)
        claimed = media_repo.claim_batch(
            session, settings.worker_id, settings.detect_batch_size, now,
            now + timedelta(seconds=settings.lease_seconds), settings.max_attempts,
        )
    if abandoned:
        log.warning("%d item(s) were abandoned by a stopped worker on their last attempt; marked failed", abandoned)
    if not claimed:
        return None
    opts = analyze_options(settings)
    outcomes: list[Outcome] = []
    for item, get_image in _prefetch(claimed, opts.max_pixels, opts.max_side):
        if stop is not None and stop.is_set():
            break
        outcomes.append(_analyze_item(item, get_image, detector, opts))
    report = DetectReport()
    _store(sessions, outcomes, settings, report)
    unstarted = [c.item_id for c in claimed[len(outcomes):]]
    if unstarted:
        with sessions.begin() as session:
            media_repo.release(session, unstarted, settings.worker_id)
        log.info("released %d claimed item(s) not started", len(unstarted))
    report.seconds = time.perf_counter() - started
    log.info(
        "batch: %d images, %d faces, %d failed in %.1f s",
        report.images, report.faces, report.failed, report.seconds,
    )
    return report


def detect_pending(sessions: sessionmaker[Session], detector: Detector, settings: Settings,
                   stop: StopFlag | None = None) -> DetectReport:
    """Process batches until nothing is claimable (or a stop is requested)."""
    total = DetectReport()
    detector.load()
    while not (stop is not None and stop.is_set()):
        report = run_batch(sessions, detector, settings, stop)
        if report is None:
            break
        total.add(report)
    if total.images:
        rate = total.images / total.seconds if total.seconds else 0.0
        log.info(
            "detected %d faces in %d images (%d failed) in %.1f s: %.1f images/s, %.1f faces/s",
            total.faces, total.images, total.failed, total.seconds, rate,
            total.faces / total.seconds if total.seconds else 0.0,
        )
    else:
        log.info("no pending media items")
    return total
