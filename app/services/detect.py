"""Detection use case: claim pending media, find faces, store them.

The stage follows the shared queue discipline (app/services/work_queue.py): short
transactions to claim and to store, a lease renewed while a batch is worked on, failures
recorded per item. With no transaction open the images go through lanes
(app/services/detect_flow.py), side by side, each taking one image through decoding, the
detector and the pixel work (blur, quality, thumbnails, embedding crops: PhotoSteps). By
default a lane hands each photo whole to a process of its own
(app/services/detect_procs.py); with DETECT_PROCESSES off, or a detector a process cannot
make again, the lane's thread does the steps itself. A video is done whole by a lane's
thread, one video at a time. The lanes run across batches: the next batch is claimed
when they read past the current one, and a batch is stored (its new faces reconciled
with the stored ones, app/pipeline/reconcile.py) as soon as all its items are through,
so no lane waits for a batch's tail and its store. Old thumbnail files are deleted after
the commit. Each step is timed.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import EnvironmentFault, first_line
from app.db.types import utcnow
from app.inference.detector import Detector
from app.pipeline.encode import Cropper, FaceEncoder, Prepared, Vectors, parse_landmarks
from app.pipeline.analyze import (
    AnalyzeOptions,
    FoundFace,
    describe_faces,
    detect_prepared,
    detection_input,
)
from app.pipeline.decode import DecodeError, Decoded, load, load_rgb
from app.pipeline.file_stamp import FileStamp, content_changed, read_stamp
from app.pipeline.photo_meta import PhotoMeta, device_id
from app.pipeline.tracks import Candidate, Tracker
from app.pipeline.video import VideoReader, ahead, is_video
from app.pipeline.quality import Gates
from app.pipeline.reconcile import reconcile
from app.pipeline.resize import Scale
from app.repositories import faces as faces_repo
from app.repositories import media as media_repo
from app.repositories import outbox
from app.repositories import persons as prepo
from app.repositories import queue as q_repo
from app.services import detect_flow, detect_procs, environment, file_changes, work_queue
from app.services.work_queue import Problem
from app.stopping import StopFlag
from app.storage import thumbnails
from app.types import Box, DetectedFace

log = logging.getLogger("app.detection")

MAX_LANES = 8


def lanes_for(settings: Settings) -> int:
    """How many images the detection stage works on side by side (app/services/detect_flow.py):
    one per core the process may use, or cores / MODEL_THREADS when that is set; at
    least two, so that decoding always overlaps the model."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(MAX_LANES, cores // max(1, settings.model_threads)))


def lane_detector(detector: Detector, settings: Settings) -> Detector:
    """The detector the lanes call: the same weights on a session with MODEL_THREADS threads
    (one by default), as the lanes already use every core; the given detector itself when
    its backend has no such choice (then one lane at a time calls it)."""
    with_threads = getattr(detector, "with_threads", None)
    return with_threads(settings.model_threads or 1) if with_threads is not None else detector


@dataclass
class DetectReport:
    faces: int = 0
    seconds: float = 0.0
    embedded: int = 0  # faces embedded from the image decoded for detection
    # item id -> None when done, else the reason it failed; an item tried again in the same
    # run (RETRY_DELAY_SECONDS=0) counts once, with its last outcome
    outcomes: dict[int, str | None] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds

    @property
    def images(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[tuple[int, str]]:
        return [(i, reason) for i, reason in self.outcomes.items() if reason is not None]

    @property
    def failed(self) -> int:
        return len(self.failures)

    def add(self, other: "DetectReport") -> None:
        self.faces += other.faces
        self.seconds += other.seconds
        self.embedded += other.embedded
        self.outcomes.update(other.outcomes)
        for k, v in other.timings.items():
            self.timings[k] = self.timings.get(k, 0.0) + v


def analyze_options(settings: Settings) -> AnalyzeOptions:
    return AnalyzeOptions(
        max_pixels=settings.max_image_pixels,
        max_side=settings.detect_max_side,
        detect_min_score=settings.detect_min_score,
        gates=Gates(settings.min_face_score, settings.min_face_size, settings.min_blur),
        thumbnail_size=settings.thumbnail_size,
        thumbnail_margin=settings.thumbnail_margin,
    )


@dataclass
class Detection:
    found: FoundFace
    thumbnail: str  # its file, written already
    crop: Prepared | None = None  # for the embedder, cut from the image decoded for detection
    vectors: Vectors | None = None
    frame: Frame | None = None  # a video's face: where in the video


@dataclass(frozen=True)
class Frame:
    number: int
    time_ms: int
    track: int


@dataclass(frozen=True)
class VideoFace:
    """A face of a sampled frame, while its track decides whether it is kept."""

    found: FoundFace
    number: int
    time_ms: int
    vectors: Vectors | None


@dataclass(frozen=True)
class ItemResult:
    item: media_repo.ClaimedItem
    faces: list[Detection]
    meta: PhotoMeta | None = None
    stamp: FileStamp | None = None  # the file as read for this detection


def embedding_crops(decoded: Decoded, found: list[FoundFace], cropper: Cropper, min_px: int
                    ) -> list[Prepared | None]:
    """Crops for the embedders from the image decoded for detection, for the usable faces
    large enough in its pixels (all of them when it was decoded at full size)."""
    scale = decoded.rgb.shape[1] / decoded.width
    crops: list[Prepared | None] = []
    for f in found:
        b = f.face.box
        small = Box(b.x * scale, b.y * scale, b.w * scale, b.h * scale)
        big_enough = scale >= 1.0 or small.short_side >= min_px
        points = [(x * scale, y * scale) for x, y in f.face.landmarks]
        crops.append(cropper.prepare(decoded.rgb, small, points) if f.usable and big_enough else None)
    return crops


def full_size_crops(path: Path, found: list[FoundFace], crops: list[Prepared | None], cropper: Cropper,
                    max_pixels: int) -> None:
    """Fill in the crops of usable faces too small in a reduced decode from one full-size
    decode, cut exactly as the embedding stage would cut them (from the stored, rounded
    box and landmarks), so the vectors are the ones `--recognize` would store."""
    missing = [k for k, (f, c) in enumerate(zip(found, crops)) if f.usable and c is None]
    if not missing:
        return
    image = load_rgb(path, max_pixels)
    for k in missing:
        face = found[k].face
        points = parse_landmarks(face.landmarks_json()) if cropper.aligned else None
        crops[k] = cropper.prepare(image, Box.from_json(face.box.to_json()), points)


@dataclass(frozen=True)
class Ready:
    """An image prepared for the model: as decoded, and as the detector sees it."""

    decoded: Decoded
    small: np.ndarray
    scale: Scale
    stamp: FileStamp | None = None


def stamp_of(item: media_repo.ClaimedItem) -> FileStamp | None:
    """The file as this detection reads it (app/pipeline/file_stamp.py); None when it cannot
    be read (decoding then says why)."""
    try:
        return read_stamp(item.file_path)
    except OSError:
        return None


def failure(item: media_repo.ClaimedItem, exc: Exception, what: str = "image") -> Problem:
    """The item's failure: the file's own fault (a DecodeError, with whether retrying can
    help, and whether the machine may be at fault instead: app/services/environment.py),
    memory, or anything else (logged with its traceback: a model or library failure on
    one image must not stop the batch)."""
    if isinstance(exc, DecodeError):
        return Problem(item.item_id, str(exc), permanent=exc.permanent,
                       suspicion=environment.photo_suspicion(Path(item.file_path), exc))
    if isinstance(exc, MemoryError):
        return Problem(item.item_id, f"out of memory while processing the {what}")
    log.error("item %d (%s): unexpected error", item.item_id, item.file_path, exc_info=exc)
    return Problem(item.item_id, f"unexpected error: {type(exc).__name__}: {exc}")


class Timings:
    """Seconds per step, summed over the lanes (which add to it side by side)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def since(self, step: str, started: float) -> None:
        self.add({step: time.perf_counter() - started})

    def add(self, seconds: dict[str, float]) -> None:
        with self._lock:
            for step, v in seconds.items():
                self.seconds[step] = self.seconds.get(step, 0.0) + v


class PhotoSteps:
    """A photo's three steps (app/services/detect_flow.py): decode, the detector, the pixel
    work. Run by the lanes' threads, or whole in a lane process (app/services/detect_procs.py)."""

    def __init__(self, detector: Detector, settings: Settings, cropper: Cropper | None = None):
        self.detector = lane_detector(detector, settings)
        # A backend that cannot give each lane a session of its own is called by one lane
        # at a time (decoding and pixel work still overlap it).
        self._model_turn = threading.Lock() if self.detector is detector else nullcontext()
        # With a cropper (--all, --automate, when EMBED_AT_DETECTION_MIN_PX is above 0: the
        # stage decides), the crops for the embedders are cut from the image decoded here,
        # which saves the embedding stage a second decode.
        self.cropper = cropper
        self.settings = settings
        self.thumbnail_path = settings.thumbnail_path
        self.opts = analyze_options(settings)
        self.device_pattern = re.compile(settings.device_id_pattern) if settings.device_id_pattern else None
        self.timings = Timings()

    def prepare(self, item: media_repo.ClaimedItem) -> Ready | Problem:
        """Decode (JPEGs at the smallest scale still at least as large as detection uses)
        and shrink for the detector."""
        started = time.perf_counter()
        try:
            stamp = stamp_of(item)  # before decoding: a change meanwhile is seen by the next check
            decoded = load(Path(item.file_path), self.opts.max_pixels, self.opts.max_side, self.device_pattern)
            return Ready(decoded, *detection_input(decoded.rgb, self.opts), stamp)
        except Exception as exc:
            return failure(item, exc)
        finally:
            self.timings.since("decode", started)

    def model(self, item: media_repo.ClaimedItem, ready: Ready) -> list[DetectedFace] | Problem:
        started = time.perf_counter()
        try:
            with self._model_turn:
                return detect_prepared(ready.small, ready.scale, self.detector, self.opts)
        except Exception as exc:
            return failure(item, exc)
        finally:
            self.timings.since("detect", started)

    def finish(self, item: media_repo.ClaimedItem, ready: Ready, faces: list[DetectedFace]
               ) -> ItemResult | Problem:
        """Blur, quality, thumbnails (written to their files), embedding crops."""
        decoded = ready.decoded
        started = time.perf_counter()
        try:
            found = describe_faces(decoded.rgb, faces, self.opts, (decoded.width, decoded.height))
        except Exception as exc:
            return failure(item, exc)
        finally:
            self.timings.since("faces", started)
        started = time.perf_counter()
        files: list[str] = []
        try:
            for f in found:
                files.append(str(thumbnails.write(self.thumbnail_path, item.media_file_id, f.thumbnail)))
        except OSError as exc:  # the folder's fault, never the photo's: the run stops
            thumbnails.delete(files)
            return Problem(item.item_id, f"cannot write face thumbnails under {self.thumbnail_path}: {exc}",
                           suspicion=environment.thumbnail_suspicion(self.thumbnail_path, exc))
        finally:
            self.timings.since("thumbnails", started)
        crops: list = [None] * len(found)
        if self.cropper is not None:
            started = time.perf_counter()
            try:
                crops = embedding_crops(decoded, found, self.cropper, self.settings.embed_at_detection_min_px)
                full_size_crops(Path(item.file_path), found, crops, self.cropper, self.opts.max_pixels)
            except Exception as exc:  # noqa: BLE001 - the embedding stage crops them later (and says why)
                log.info("item %d (%s): faces left to the embedding stage: %s", item.item_id, item.file_path,
                         first_line(exc))
            finally:
                self.timings.since("crops", started)
        return ItemResult(item, [Detection(f, path, crop) for f, path, crop in zip(found, files, crops)],
                          decoded.meta, ready.stamp)

    def whole(self, item: media_repo.ClaimedItem) -> ItemResult | Problem:
        """All three steps, one after the other (a lane process's work on one photo)."""
        ready = self.prepare(item)
        if isinstance(ready, Problem):
            return ready
        faces = self.model(item, ready)
        if isinstance(faces, Problem):
            return faces
        return self.finish(item, ready, faces)


REMOTE = "remote"  # what `prepare` hands on for a photo that a lane process does whole


class DetectionStage:
    queue = q_repo.DETECTION
    log = log

    def __init__(self, detector: Detector, settings: Settings, encoder: FaceEncoder | None = None,
                 stop: StopFlag | None = None):
        self.detector = detector  # for videos, one at a time, with all its threads
        self.lanes = lanes_for(settings)
        # with an encoder (--all, --automate), faces are embedded from the crops cut at detection
        self.encoder = encoder if settings.embed_at_detection_min_px > 0 else None
        cropper = self.encoder.cropper if self.encoder is not None else None
        self.photos = PhotoSteps(detector, settings, cropper)  # photos on the lanes' threads
        # photos whole in lane processes, when the detector can be made again in one
        self.processes = detect_procs.pool_for(detector, settings, self.lanes)
        self._video_turn = threading.Lock()  # a video takes all the models' threads and memory
        self.stop = stop  # a video checks it between frames
        self.video_encoder = encoder  # loaded on the first video when None (app/pipeline/video.py)
        self.settings = settings
        self.opts = self.photos.opts
        self.device_pattern = self.photos.device_pattern
        self.paths: dict[int, str] = {}
        self.obsolete: dict[int, list[str | None]] = {}  # item id -> files to delete once committed
        self.timings = self.photos.timings  # step -> seconds, summed over the lanes
        self._lock = threading.Lock()  # the lanes share the video encoder

    def describe(self, item_id: int) -> str:
        return f"item {item_id} ({self.paths.get(item_id, '?')})"

    def result_id(self, result: ItemResult) -> int:
        return result.item.item_id

    def fetch(self, session: Session, ids: list[int]) -> list[media_repo.ClaimedItem]:
        items = media_repo.claimed_items(session, ids)
        self.paths.update((i.item_id, i.file_path) for i in items)
        return items

    # --- the three steps of app/services/detect_flow.py ---------------------------------

    def prepare(self, item: media_repo.ClaimedItem) -> Ready | Problem | str | None:
        """A lane: a photo decoded and shrunk for the detector (PhotoSteps), or REMOTE when
        a lane process does it whole; None for a video: the model step does all of it."""
        if is_video(item.file_path):
            return None
        if self.processes is not None:
            return REMOTE
        return self.photos.prepare(item)

    def model(self, item: media_repo.ClaimedItem, ready: Ready | str | None
              ) -> list[DetectedFace] | ItemResult | Problem | None:
        """A lane: the detector on a photo; a photo whole in a lane process; a video whole
        (None when a stop came halfway)."""
        if ready is REMOTE:
            return self.processes.run(item, self.settings.thumbnail_path, self.photos.cropper, self.timings,
                                      self.stop)
        if ready is None:
            started = time.perf_counter()
            with self._video_turn:
                outcome = self._video(item, self.stop)
            self.timings.since("video", started)
            return outcome
        return self.photos.model(item, ready)

    def finish(self, item: media_repo.ClaimedItem, ready: Ready | str | None,
               faces: list[DetectedFace] | ItemResult | None) -> ItemResult | Problem | None:
        """A lane: a photo's pixel work (PhotoSteps). The outcome of a video or of a photo
        done in a lane process is complete already."""
        if ready is None or ready is REMOTE:
            return faces
        return self.photos.finish(item, ready, faces)

    def embed(self, results: list[ItemResult]) -> None:
        todo = [d for r in results for d in r.faces if d.crop is not None]
        if not todo or self.encoder is None:
            return
        started = time.perf_counter()
        try:
            vectors = self.encoder.encode([d.crop for d in todo])
        except Exception as exc:  # the embedding stage embeds them later, one by one if need be
            log.warning("embedding at detection failed (%s); left to the embedding stage", first_line(exc))
            return
        finally:
            self.timings.since("embed", started)
        for d, v in zip(todo, vectors):
            d.vectors, d.crop = v, None

    # --- videos ----------------------------------------------------------------------------
    def _video_encoder(self) -> FaceEncoder:
        """Tracks need vectors, so a video's faces are always embedded here (`--db` too)."""
        with self._lock:
            if self.video_encoder is None:
                from app.inference.registry import make_encoder

                s = self.settings
                self.video_encoder = make_encoder(s.embedder, s.facenet, s.model_threads, s.embed_batch_size,
                                                  s.embed_crop_margin, s.embed_flip)
        self.video_encoder.load()  # once; later calls return at once
        return self.video_encoder

    def _frame_faces(self, rgb: np.ndarray, encoder: FaceEncoder) -> list[tuple[FoundFace, Vectors | None]]:
        """One sampled frame: its faces found, measured, thumbnailed, and the usable ones embedded."""
        small, scale = detection_input(rgb, self.opts)
        found = describe_faces(rgb, detect_prepared(small, scale, self.detector, self.opts), self.opts)
        crops: list[Prepared | None] = []
        for f in found:
            try:
                crops.append(encoder.prepare(rgb, f.face.box, list(f.face.landmarks)) if f.usable else None)
            except ValueError:  # no landmarks to align it: kept for display, not embedded
                crops.append(None)
        vectors = iter(encoder.encode([c for c in crops if c is not None]))
        return [(f, next(vectors) if c is not None else None) for f, c in zip(found, crops)]

    def _video(self, item: media_repo.ClaimedItem, stop: StopFlag | None) -> ItemResult | Problem | None:
        """A whole video: sampled frames through the detector and the embedders, faces
        grouped into tracks, each track's best faces kept (thumbnails written for those
        only). None when stopped halfway (the item is handed back and done again)."""
        s = self.settings
        stamp = stamp_of(item)
        try:
            encoder = self._video_encoder()
            tracker: Tracker[VideoFace] = Tracker(s.video_faces_per_track, s.video_track_iou,
                                                  s.video_track_similarity, s.match_threshold)
            with VideoReader(Path(item.file_path), self.opts.max_pixels) as video:
                info = video.info
                frames = 0
                size = (info.width, info.height)
                # closed (its decoding thread joined) before the video is
                with closing(ahead(video.sample(s.video_frame_interval_seconds, s.video_max_frames))) as sampled:
                    for sample, frame in enumerate(sampled):
                        if stop is not None and stop.is_set():
                            return None
                        frames += 1
                        size = (frame.rgb.shape[1], frame.rgb.shape[0])  # upright (a phone's portrait video)
                        tracker.add(sample, [
                            Candidate(f.face.box, np.frombuffer(v.embedding, np.float32) if v is not None else None,
                                      (f.usable, f.quality or 0.0), VideoFace(f, frame.number, frame.time_ms, v))
                            for f, v in self._frame_faces(frame.rgb, encoder)
                        ])
        except Exception as exc:
            return failure(item, exc, "video")
        kept = tracker.kept()
        files: list[str] = []
        try:
            for _, c in kept:
                files.append(str(thumbnails.write(s.thumbnail_path, item.media_file_id, c.item.found.thumbnail)))
        except OSError as exc:  # the folder's fault, never the video's: the run stops
            thumbnails.delete(files)
            return Problem(item.item_id, f"cannot write face thumbnails under {s.thumbnail_path}: {exc}",
                           suspicion=environment.thumbnail_suspicion(s.thumbnail_path, exc))
        log.info("%s: %d frames sampled, %d faces in %d tracks, %d kept", self.describe(item.item_id), frames,
                 sum(t.faces for t in tracker.tracks), len(tracker.tracks), len(kept))
        name = Path(item.file_path).name
        meta = PhotoMeta(*size, taken_at=info.created, camera_make=info.make,
                         camera_model=info.model,
                         device_id=device_id(info.make, info.model, name, self.device_pattern),
                         media_type="video", duration_ms=info.duration_ms, codec=info.codec,
                         frame_rate=info.frame_rate)
        return ItemResult(item, [Detection(c.item.found, path, None, c.item.vectors,
                                           Frame(c.item.number, c.item.time_ms, track))
                                 for (track, c), path in zip(kept, files)], meta, stamp)

    def store(self, session: Session, results: list[ItemResult]) -> None:
        started = time.perf_counter()
        stored = faces_repo.faces_of_media(session, [r.item.media_file_id for r in results])
        new: list[faces_repo.NewFace] = []
        refreshed: list[tuple[int, faces_repo.NewFace]] = []
        done: list[tuple[int, int, FileStamp | None]] = []
        doomed: list[int] = []
        changed: list[int] = []  # media files whose faces changed: an event each (app/services/publish.py)
        for r in results:
            # a photo replaced or edited under its name: its stored faces are of other pixels
            replaced = content_changed(r.item.recorded, r.stamp)
            plan = reconcile(stored.get(r.item.media_file_id, []), r.faces, [d.found.face.box for d in r.faces],
                             frames=[d.frame.number if d.frame else None for d in r.faces], changed=replaced)
            if replaced:
                self._log_replaced(r, plan)
            doomed.extend(s.face_id for s in plan.delete)
            if plan.delete or plan.insert or plan.refresh:
                changed.append(r.item.media_file_id)
            self.obsolete[r.item.item_id] = ([s.thumbnail_path for s in plan.delete] + [d.thumbnail for d in plan.skip]
                                             + [s.thumbnail_path for s, _ in plan.refresh])
            new.extend(self._new_face(r, d) for d in plan.insert)
            refreshed.extend((s.face_id, self._new_face(r, d)) for s, d in plan.refresh)
            done.append((r.item.item_id, len(plan.keep) + len(plan.insert) + len(plan.refresh), r.stamp))
        faces_repo.delete_faces(session, doomed)
        faces_repo.refresh_faces(session, refreshed)
        # a deleted face may have been a person's cover, a refreshed one has a new score:
        # the person gets its best face again
        touched = set(doomed) | {face_id for face_id, _ in refreshed}
        prepo.refresh_covers(session, {s.person_id for faces in stored.values() for s in faces
                                       if s.face_id in touched and s.person_id is not None})
        faces_repo.insert_faces(session, new)
        media_repo.store_meta(session, {r.item.media_file_id: r.meta for r in results if r.meta is not None})
        media_repo.mark_done(session, done, utcnow())
        outbox.enqueue_media(session, changed)
        self.timings.since("store", started)

    def _new_face(self, r: ItemResult, d: Detection) -> faces_repo.NewFace:
        return faces_repo.NewFace(
            media_file_id=r.item.media_file_id, bounding_box=d.found.face.box.to_json(),
            confidence=d.found.face.score, landmarks=d.found.face.landmarks_json(), blur=d.found.blur,
            is_usable=d.found.usable, thumbnail_path=d.thumbnail, quality=d.found.quality,
            embedding=d.vectors.embedding if d.vectors else None,
            embedding_model=self._encoder_of(d).model if d.vectors else None,
            embedding2=d.vectors.embedding2 if d.vectors else None,
            embedding2_model=self._encoder_of(d).model2 if d.vectors else None,
            frame_number=d.frame.number if d.frame else None,
            frame_time_ms=d.frame.time_ms if d.frame else None,
            track_number=d.frame.track if d.frame else None,
        )

    def _log_replaced(self, r: ItemResult, plan) -> None:
        lost = [s for s in plan.delete if s.set_by_user]
        log.info("%s: the file changed since it was detected; %d faces now, %d of them a user's decided "
                 "faces at the same place (embedded again, then re-checked against their person)",
                 self.describe(r.item.item_id), len(plan.insert) + len(plan.refresh), len(plan.refresh))
        if lost:
            log.warning("%s: %d faces a user had decided are no longer in the changed file and were removed "
                        "(faces %s, persons %s)", self.describe(r.item.item_id), len(lost),
                        ", ".join(str(s.face_id) for s in lost),
                        ", ".join(sorted({str(s.person_id) for s in lost if s.person_id is not None})) or "none")

    def _encoder_of(self, d: Detection) -> FaceEncoder:
        return self.video_encoder if d.frame is not None else self.encoder

    def after_commit(self, stored: list[ItemResult], dropped: list[ItemResult]) -> None:
        for r in stored:
            thumbnails.delete(self.obsolete.pop(r.item.item_id, []))
        for r in dropped:  # not recorded: their new thumbnails belong to nobody
            self.obsolete.pop(r.item.item_id, None)
            thumbnails.delete(d.thumbnail for d in r.faces)


def sweep_thumbnails(sessions: sessionmaker[Session], settings: Settings) -> thumbnails.SweepReport:
    """Remove face thumbnails no face row points to (photos deleted by another application,
    a crash between writing a thumbnail and storing its face); bounded work per run."""
    def referenced(first: int, last: int) -> set[str]:
        with sessions() as session:
            return faces_repo.thumbnails_of_media_range(session, first, last)

    try:
        report = thumbnails.sweep(settings.thumbnail_path, referenced, settings.lease_seconds,
                                  settings.thumbnail_sweep_files)
    except Exception as exc:  # housekeeping: never the reason a run fails; the next run sweeps
        log.warning("thumbnail sweep skipped: %s", first_line(exc))
        return thumbnails.SweepReport()
    if report.removed:
        log.info("removed %d orphaned face thumbnails (%d files in %d folders checked)",
                 report.removed, report.files, report.folders)
    return report


@dataclass
class _Open:
    """A claimed batch on its way through the lanes: the rows still without an outcome,
    and the outcomes so far."""

    claimed: work_queue.Claimed
    started: float
    waiting: set[int]
    results: list[ItemResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Batches:
    """The items of batch after batch, each batch claimed only when the lanes read past
    the previous one, so they go on from one batch to the next while the previous one is
    finished and stored. One heartbeat renews the lease of every row claimed and not
    stored yet.

    A row whose worker died while holding it (a suspect) is tried alone: only the first
    claim of a pass may take one, and nothing is claimed after it; when a later claim sees
    a suspect waiting, the pass ends after that batch, so the next pass takes it. If the
    database goes away at a claim, the batches not stored yet are lost (their rows are
    handed back, their thumbnails swept later) and done again by the next run.

    Outcomes go through the run's environment watch (app/services/environment.py): while
    photos fail in a row in a way that may be the machine's (their folder missing), their
    batches wait unstored; when the watch finds the machine at fault, every batch not
    stored is handed back uncharged and the EnvironmentFault ends the run."""

    def __init__(self, sessions: sessionmaker[Session], stage: DetectionStage, settings: Settings,
                 stop: StopFlag | None, watch: environment.Watch):
        self.sessions, self.stage, self.settings, self.stop = sessions, stage, settings, stop
        self.watch = watch
        self.opened: deque[_Open] = deque()  # claimed, not stored yet, in order
        self.claimed = 0  # batches claimed
        self.exhausted = False  # the pass ended because nothing more was claimable
        self.heartbeat = work_queue.Heartbeat(sessions, stage.queue, [], settings, log)

    def items(self) -> Iterator[media_repo.ClaimedItem]:
        s = self.settings
        while not (self.stop is not None and self.stop.is_set()):
            claimed = work_queue.claim_batch(self.sessions, self.stage, s, s.detect_batch_size,
                                             suspects=not self.claimed)
            if claimed is None:
                self.exhausted = True
                return
            self.claimed += 1
            ids = [c.id for c in claimed.claims]
            self.heartbeat.add(ids)
            self.opened.append(_Open(claimed, time.perf_counter(), set(ids)))
            yield from claimed.items
            if (claimed.claims and claimed.claims[0].charged) or claimed.suspects_waiting:
                return

    def run(self) -> Iterator[DetectReport]:
        """Every claimable item through the lanes; a report per batch stored. A failure
        to be retried at once (RETRY_DELAY_SECONDS=0) may become claimable only after the
        last claim: the caller runs again until nothing was claimed."""
        opened = self.opened
        with self.heartbeat:
            try:
                # closed (the lanes done) before a fault hands the rows back
                with closing(detect_flow.stream(self.items(), self.stage, self.stop, self.stage.lanes)) as flow:
                    for item, outcome in flow:
                        batch = next(b for b in opened if item.item_id in b.waiting)
                        batch.waiting.discard(item.item_id)
                        if isinstance(outcome, Problem):
                            batch.problems.append(outcome)
                        elif outcome is not None:  # None: a video stopped halfway, handed back
                            batch.results.append(outcome)
                        if outcome is not None:
                            self.watch.see(item.file_path, getattr(outcome, "suspicion", None))
                        while opened and not opened[0].waiting and not self.watch.holding:
                            yield self._store(opened.popleft())
                if self.exhausted:
                    self.watch.end()
            except EnvironmentFault:
                work_queue.hand_back(self.sessions, self.stage, self.settings, [b.claimed for b in opened],
                                     [r for b in opened for r in b.results])
                opened.clear()
                raise
            while opened:  # stopped: what has an outcome is stored, the rest handed back
                yield self._store(opened.popleft())

    def _store(self, batch: _Open) -> DetectReport:
        """A batch whose rows all have an outcome (or, after a stop, those that have one):
        faces embedded when an encoder was given, then stored; the rest handed back."""
        self.stage.embed(batch.results)  # while the lease is still renewed
        self.heartbeat.remove(c.id for c in batch.claimed.claims)
        stored = work_queue.finish_batch(self.sessions, self.stage, self.settings, batch.claimed,
                                         batch.results, batch.problems)
        report = DetectReport(
            faces=sum(len(r.faces) for r in stored.results), seconds=time.perf_counter() - batch.started,
            embedded=sum(d.vectors is not None for r in stored.results for d in r.faces),
            outcomes={**dict(stored.failures), **{r.item.item_id: None for r in stored.results}},
        )
        log.info("batch: %d images, %d faces, %d failed in %.1f s",
                 report.images, report.faces, report.failed, report.seconds)
        return report


def detect_pending(sessions: sessionmaker[Session], detector: Detector, settings: Settings,
                   stop: StopFlag | None = None, encoder: FaceEncoder | None = None) -> DetectReport:
    """Check a slice of the detected files for changes (app/services/file_changes.py), process
    batches until nothing is claimable (or a stop is requested), then sweep orphaned
    thumbnails. With an encoder, large enough faces are embedded on the way."""
    environment.check_thumbnail_folder(settings.thumbnail_path)  # before any photo is claimed
    total = DetectReport()
    watch = environment.Watch("photo")
    detector.load()
    stage = DetectionStage(detector, settings, encoder, stop)
    if stage.processes is None:
        stage.photos.detector.load()
    work_queue.start(sessions, stage.queue, settings, log)
    file_changes.check_some(sessions, settings)  # photos replaced since detected: pending again, done below
    started = time.perf_counter()
    with work_queue.handing_back_on_error(sessions, stage.queue, settings, log):
        while not (stop is not None and stop.is_set()):
            batches = _Batches(sessions, stage, settings, stop, watch)
            for report in batches.run():
                total.add(report)
            if not batches.claimed:
                break
    total.seconds = time.perf_counter() - started
    sweep_thumbnails(sessions, settings)
    total.timings = dict(stage.timings.seconds)
    if total.images:
        rate = total.images / total.seconds if total.seconds else 0.0
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in total.timings.items())
        log.info(
            "detected %d faces in %d images (%d failed) in %.1f s: %.1f images/s, %.1f faces/s%s",
            total.faces, total.images, total.failed, total.seconds, rate,
            total.faces / total.seconds if total.seconds else 0.0, f" ({steps})" if steps else "",
        )
    else:
        log.info("no pending media items")
    return total
