"""Embedding use case: every usable face without an embedding gets one.

Faces are taken in batches with row locks (SKIP LOCKED), so several workers can embed
at once without doing the same face twice; each batch is one transaction. A face whose
photo cannot be read any more gets EmbedError and is not retried.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.inference.embedder import Embedder
from app.pipeline.crop import face_crop, l2_normalise, standardise
from app.pipeline.decode import DecodeError, load_rgb
from app.pipeline.faces import Box
from app.repositories import recognition as repo

log = logging.getLogger("app.recognition")
PROGRESS_EVERY_SECONDS = 10.0


@dataclass
class EmbedReport:
    faces: int = 0
    failed: int = 0
    seconds: float = 0.0


def embed_crops(embedder: Embedder, crops: np.ndarray, flip: bool) -> np.ndarray:
    """uint8 crops (n, 160, 160, 3) -> L2-normalised float32 vectors."""
    vectors = embedder.embed(standardise(crops))
    if flip:
        vectors = vectors + embedder.embed(standardise(crops[:, :, ::-1]))
    return l2_normalise(vectors)


def _crops(batch: list[repo.FaceToEmbed], settings: Settings):
    """Crops of the faces whose photo could be read, and errors for the others."""
    crops, ok, errors = [], [], []
    for media_id, faces in groupby(batch, key=lambda f: f.media_file_id):
        faces = list(faces)
        try:
            image = load_rgb(Path(faces[0].file_path), settings.max_image_pixels)
        except DecodeError as exc:
            errors.extend((f.face_id, f"cannot read the photo: {exc}") for f in faces)
            continue
        for f in faces:
            box = Box.from_json(f.bounding_box)
            crops.append(face_crop(image, box, settings.embed_crop_margin, square=False))
            ok.append(f.face_id)
    return crops, ok, errors


def embed_pending(sessions: sessionmaker[Session], embedder: Embedder, settings: Settings) -> EmbedReport:
    report = EmbedReport()
    started = last_progress = time.perf_counter()
    with sessions() as session:
        total = repo.count_faces_to_embed(session)
    if total:
        log.info("embedding %d faces with %s", total, embedder.name)
        embedder.load()
    while True:
        with sessions.begin() as session:
            batch = repo.claim_faces_to_embed(session, settings.embed_batch_size)
            if not batch:
                break
            crops, ok, errors = _crops(batch, settings)
            if crops:
                vectors = embed_crops(embedder, np.stack(crops), settings.embed_flip)
                repo.save_embeddings(session, [(fid, v.tobytes()) for fid, v in zip(ok, vectors)], embedder.name)
            repo.save_embed_errors(session, errors)
        for face_id, error in errors:
            log.error("face %d: %s", face_id, error)
        report.faces += len(ok)
        report.failed += len(errors)
        now = time.perf_counter()
        if now - last_progress >= PROGRESS_EVERY_SECONDS:
            done = report.faces + report.failed
            log.info("embedded %d / %d faces (%.1f faces/s)", done, total, done / (now - started))
            last_progress = now
    report.seconds = time.perf_counter() - started
    if report.faces or report.failed:
        log.info("embedded %d faces (%d failed) in %.1f s (%.1f faces/s)", report.faces, report.failed,
                 report.seconds, report.faces / report.seconds if report.seconds else 0.0)
    return report
