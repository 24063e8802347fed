"""Embedding use case: every usable face without an embedding gets one.

The stage follows the shared queue discipline (app/services/work_queue.py): faces are
claimed in a short transaction (a photo's faces together, so each photo is decoded once
per batch), cropped and embedded with no transaction open, and stored in a short
transaction. A face that fails (its photo unreadable, a crop or model error) is retried
at most MAX_ATTEMPTS times and then left with its reason in EmbedError; the others go on.
When the model fails on a batch, the batch is embedded face by face so only the face at
fault fails. Photos that cannot be read because of the machine (their folder missing:
a library unmounted) charge nothing: the run's environment watch
(app/services/environment.py) holds back batches while photos fail that way in a row,
and when it finds the machine at fault they are handed back and the run stops with an
EnvironmentFault.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import EnvironmentFault, first_line
from app.pipeline.encode import FaceEncoder, Prepared, parse_landmarks
from app.pipeline.decode import DecodeError, load_rgb
from app.pipeline.video import frame_at
from app.repositories import queue as q_repo
from app.repositories import recognition as repo
from app.services import environment, work_queue
from app.services.environment import Suspicion
from app.services.work_queue import BatchReport, Claimed, Problem
from app.stopping import StopFlag
from app.types import Box

log = logging.getLogger("app.recognition")
PROGRESS_EVERY_SECONDS = 10.0


@dataclass
class EmbedReport:
    faces: int = 0
    seconds: float = 0.0
    # face id -> why it failed, for faces still without an embedding at the end of the run
    # (a face tried again in the same run counts once)
    failures: dict[int, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)


@dataclass(frozen=True)
class Embedded:
    face_id: int
    vector: bytes
    vector2: bytes | None


class EmbeddingStage:
    log = log

    def __init__(self, encoder: FaceEncoder, settings: Settings):
        self.encoder = encoder
        self.settings = settings
        self.queue = q_repo.embedding_queue(second=encoder.second is not None)
        self.paths: dict[int, str] = {}

    def describe(self, face_id: int) -> str:
        return f"face {face_id} ({self.paths.get(face_id, '?')})"

    def result_id(self, result: Embedded) -> int:
        return result.face_id

    def fetch(self, session: Session, ids: list[int]) -> list[repo.FaceToEmbed]:
        faces = repo.faces_to_embed(session, ids)
        self.paths.update((f.face_id, f.file_path) for f in faces)
        return faces

    def _crops(self, faces: list[repo.FaceToEmbed], stop: StopFlag | None):
        """(face ids, crops) of the faces that could be cropped, and problems for the others."""
        ids, crops, problems = [], [], []
        for _, group in groupby(faces, key=lambda f: (f.media_file_id, f.frame_time_ms)):
            if stop is not None and stop.is_set():
                break
            group = list(group)
            try:
                path, at = Path(group[0].file_path), group[0].frame_time_ms
                if at is not None:  # a face found in a video: cut from its frame
                    image = frame_at(path, at, self.settings.max_image_pixels)
                else:
                    image = load_rgb(path, self.settings.max_image_pixels)
            except DecodeError as exc:
                suspicion = environment.photo_suspicion(path, exc)
                problems.extend(Problem(f.face_id, f"cannot read the photo: {exc}", exc.permanent, suspicion)
                                for f in group)
                continue
            except MemoryError:
                problems.extend(Problem(f.face_id, "out of memory while reading the photo") for f in group)
                continue
            for f in group:
                try:
                    landmarks = parse_landmarks(f.landmarks) if self.encoder.second else None
                    crops.append(self.encoder.prepare(image, Box.from_json(f.bounding_box), landmarks))
                    ids.append(f.face_id)
                except Exception as exc:  # one bad box (written by another application?) fails alone
                    problems.append(Problem(f.face_id, f"cannot crop the face: {type(exc).__name__}: {exc}"))
        return ids, crops, problems

    def _embed(self, ids: list[int], crops: list[Prepared]) -> tuple[list[Embedded], list[Problem]]:
        try:
            vectors = self.encoder.encode(crops)
            return [Embedded(i, v.embedding, v.embedding2) for i, v in zip(ids, vectors)], []
        except Exception as exc:
            if len(ids) == 1:
                return [], [Problem(ids[0], f"the embedding model failed: {type(exc).__name__}: {exc}")]
            log.warning("the embedding model failed on a batch of %d faces (%s); embedding them one by one",
                        len(ids), first_line(exc))
            done, problems = [], []
            for i, crop in zip(ids, crops):
                d, p = self._embed([i], [crop])
                done.extend(d)
                problems.extend(p)
            return done, problems

    def work(self, faces: list[repo.FaceToEmbed], stop: StopFlag | None):
        ids, crops, problems = self._crops(faces, stop)
        if not crops:
            return [], problems
        done, failed = self._embed(ids, crops)
        return done, problems + failed

    def store(self, session: Session, results: list[Embedded]) -> None:
        repo.save_embeddings(session, [(r.face_id, r.vector, r.vector2) for r in results],
                             self.encoder.model, self.encoder.model2)

    def after_commit(self, stored, dropped) -> None:
        pass


def _photo_outcomes(faces: list[repo.FaceToEmbed], results: list[Embedded], problems: list[Problem]
                    ) -> list[tuple[str, Suspicion | None]]:
    """Per photo of a batch, in claim order: its file, and the suspicion its faces' failure
    raised (None: embedded, or failed for a reason of its own); photos not started are
    left out."""
    done = {r.face_id for r in results}
    suspicions = {p.id: p.suspicion for p in problems}
    out: list[tuple[str, Suspicion | None]] = []
    for path, group in groupby(faces, key=lambda f: f.file_path):
        ids = [f.face_id for f in group]
        if any(i in done or i in suspicions for i in ids):
            out.append((path, next((suspicions[i] for i in ids if suspicions.get(i)), None)))
    return out


def embed_pending(sessions: sessionmaker[Session], encoder: FaceEncoder, settings: Settings,
                  stop: StopFlag | None = None) -> EmbedReport:
    report = EmbedReport()
    started = last_progress = time.perf_counter()
    stage = EmbeddingStage(encoder, settings)
    work_queue.start(sessions, stage.queue, settings, log)
    total = work_queue.in_transaction(
        sessions, lambda s: q_repo.count_open(s, stage.queue, settings.max_attempts), "counting faces to embed", log)
    if total:
        log.info("embedding %d faces with %s", total, encoder.name)
        encoder.load()
    watch = environment.Watch("face")
    held: list[tuple[Claimed, list[Embedded], list[Problem]]] = []  # worked on, not stored yet

    def store_held() -> None:
        for claimed, results, problems in held:
            heartbeat.remove(c.id for c in claimed.claims)
            _count(report, work_queue.finish_batch(sessions, stage, settings, claimed, results, problems))
        held.clear()

    with work_queue.handing_back_on_error(sessions, stage.queue, settings, log), \
            work_queue.Heartbeat(sessions, stage.queue, [], settings, log) as heartbeat:
        try:
            while not (stop is not None and stop.is_set()):
                # a suspect (its worker died) is tried alone, so not while batches are held
                claimed = work_queue.claim_batch(sessions, stage, settings, settings.embed_batch_size,
                                                 suspects=not held)
                if claimed is None:
                    watch.end()
                    break
                heartbeat.add(c.id for c in claimed.claims)
                results, problems = stage.work(claimed.items, stop) if claimed.claims else ([], [])
                for path, suspicion in _photo_outcomes(claimed.items, results, problems):
                    watch.see(path, suspicion)
                held.append((claimed, results, problems))
                if not watch.holding:  # a streak of suspect failures waits: it may prove the machine at fault
                    store_held()
                now = time.perf_counter()
                if now - last_progress >= PROGRESS_EVERY_SECONDS:
                    done = report.faces + len(report.failures)
                    log.info("embedded %d / %d faces (%.1f faces/s)", done, total, done / (now - started))
                    last_progress = now
        except EnvironmentFault:
            work_queue.hand_back(sessions, stage, settings, [b[0] for b in held], [])
            raise
        store_held()  # stopped, or nothing left to claim
    report.seconds = time.perf_counter() - started
    if report.faces or report.failed:
        log.info("embedded %d faces (%d failed) in %.1f s (%.1f faces/s)", report.faces, report.failed,
                 report.seconds, report.faces / report.seconds if report.seconds else 0.0)
    return report


def _count(report: EmbedReport, batch: BatchReport) -> None:
    report.faces += len(batch.results)
    report.failures.update(batch.failures)
    for r in batch.results:  # failed earlier in this run, embedded on a retry
        report.failures.pop(r.face_id, None)
