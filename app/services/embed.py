"""Embedding use case: every usable face without an embedding gets one.

The stage follows the shared queue discipline (app/services/work_queue.py): faces are
claimed in a short transaction (a photo's faces together, so each photo is decoded once
per batch), cropped and embedded with no transaction open, and stored in a short
transaction. A face that fails (its photo unreadable, a crop or model error) is retried
at most MAX_ATTEMPTS times and then left with its reason in EmbedError; the others go on.
When the model fails on a batch, the batch is embedded face by face so only the face at
fault fails.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import first_line
from app.pipeline.encode import FaceEncoder, Prepared, parse_landmarks
from app.pipeline.decode import DecodeError, load_rgb
from app.pipeline.video import frame_at
from app.repositories import queue as q_repo
from app.repositories import recognition as repo
from app.services import work_queue
from app.services.work_queue import Problem
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
                problems.extend(Problem(f.face_id, f"cannot read the photo: {exc}", exc.permanent) for f in group)
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
    with work_queue.handing_back_on_error(sessions, stage.queue, settings, log):
        while not (stop is not None and stop.is_set()):
            batch = work_queue.run_batch(sessions, stage, settings, settings.embed_batch_size, stop)
            if batch is None:
                break
            report.faces += len(batch.results)
            report.failures.update(batch.failures)
            for r in batch.results:  # failed earlier in this run, embedded on a retry
                report.failures.pop(r.face_id, None)
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_EVERY_SECONDS:
                done = report.faces + len(report.failures)
                log.info("embedded %d / %d faces (%.1f faces/s)", done, total, done / (now - started))
                last_progress = now
    report.seconds = time.perf_counter() - started
    if report.faces or report.failed:
        log.info("embedded %d faces (%d failed) in %.1f s (%.1f faces/s)", report.faces, report.failed,
                 report.seconds, report.faces / report.seconds if report.seconds else 0.0)
    return report
