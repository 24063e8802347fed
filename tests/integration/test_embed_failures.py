"""Faults injected into one face's crop and into the model's run on another face: each of
those faces ends failed with its reason after MAX_ATTEMPTS; every other face is embedded
and the run ends."""
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from app.config import load_settings
from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile
from app.inference.registry import make_detector, make_encoder
from app.pipeline import encode as encode_stage
from app.pipeline.crop import face_crop
from app.pipeline.decode import load_rgb
from app.services import embed as embed_service
from app.services.detect import detect_pending
from app.services.ingest import register_files
from app.types import Box


def _digest(crop: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(crop).tobytes()).hexdigest()


class FailingOn:
    """The real embedder, except that it raises when a batch holds one given crop."""

    def __init__(self, real, poisoned: str):
        self.real, self.poisoned, self.name = real, poisoned, real.name

    def load(self):
        self.real.load()

    def embed(self, standardised: np.ndarray) -> np.ndarray:
        crops = np.round(standardised * 128.0 + 127.5).astype(np.uint8)
        if any(_digest(c) == self.poisoned for c in crops):
            raise RuntimeError("injected model failure")
        return self.real.embed(standardised)


def test_a_failing_crop_and_a_failing_embedding_fail_alone(db_url, tmp_path, faces_dev, monkeypatch):
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    register_files(sessions, sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:4]
                   + sorted((faces_dev / "Abdullah_Gul").glob("*.jpg"))[:4])
    settings = replace(load_settings({}, env_file=None), database_url=db_url, thumbnail_path=tmp_path / "t",
                       max_attempts=3, retry_delay_seconds=0, embed_batch_size=4)
    detect_pending(sessions, make_detector("retinaface-mobilenet"), settings)
    with sessions() as s:
        faces = s.execute(select(Faces.Id, Faces.BoundingBox, MediaFile.FilePath).join(MediaFile)
                          .where(Faces.IsUsable.is_(True)).order_by(Faces.Id)).all()
    assert len(faces) >= 8
    bad_crop, bad_model = faces[1], faces[5]
    image = load_rgb(Path(bad_model.FilePath), settings.max_image_pixels)
    poisoned = _digest(face_crop(image, Box.from_json(bad_model.BoundingBox), settings.embed_crop_margin, square=False))

    real_crop = encode_stage.face_crop

    def crop(img, box, margin, square):
        if box == Box.from_json(bad_crop.BoundingBox):
            raise ValueError("injected crop failure")
        return real_crop(img, box, margin, square=square)

    monkeypatch.setattr(encode_stage, "face_crop", crop)
    encoder = make_encoder("sface", "facenet-casia", batch_size=4)
    encoder.facenet = FailingOn(encoder.facenet, poisoned)
    report = embed_service.embed_pending(sessions, encoder, settings)

    with sessions() as s:
        rows = {r.Id: r for r in s.execute(select(Faces).where(Faces.IsUsable.is_(True))).scalars()}
    engine.dispose()
    assert rows[bad_crop.Id].Embedding is None and rows[bad_crop.Id].EmbedAttempts == 3
    assert "cannot crop the face" in rows[bad_crop.Id].EmbedError and "injected crop" in rows[bad_crop.Id].EmbedError
    assert rows[bad_model.Id].Embedding is None and rows[bad_model.Id].EmbedAttempts == 3
    assert "embedding model failed" in rows[bad_model.Id].EmbedError
    others = [r for i, r in rows.items() if i not in (bad_crop.Id, bad_model.Id)]
    assert all(r.Embedding is not None and r.EmbedAttempts == 0 and r.EmbedError is None for r in others)
    assert all(r.Embedding2 is not None and r.Embedding2Model == "sface-2021dec-int8bq" for r in others)
    assert all(r.EmbedLockedBy is None for r in rows.values())
    assert report.faces == len(others)
    assert sorted(report.failures) == sorted([bad_crop.Id, bad_model.Id]) and report.failed == 2
