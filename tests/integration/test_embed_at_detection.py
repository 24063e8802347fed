"""--all embeds faces from the image decoded for detection (no second decode) when they
are large enough there, with the embeddings the embedding stage would give."""
import json

import numpy as np
from PIL import Image
from sqlalchemy import select

from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile
from tests.integration.conftest import _pg_url


def _vectors(url):
    engine = make_engine(url)
    with session_factory(engine)() as s:
        rows = s.execute(select(MediaFile.FileName, Faces.BoundingBox, Faces.Embedding).join(MediaFile)
                         .where(Faces.Embedding.is_not(None))).all()
    engine.dispose()
    return {(name, json.dumps(json.loads(box), sort_keys=True)): np.frombuffer(e, np.float32) for name, box, e in rows}



def _both_ways(cli_factory, db_url, request, tmp_path, photos) -> dict[str, tuple[str, dict]]:
    """--all over `photos` embedding at detection (EMBED_AT_DETECTION_MIN_PX 100, into
    db_url) and only in the embedding stage (0, into a second database of the same kind):
    {min px: (stdout, vectors)}."""
    other = (f"sqlite:///{tmp_path / 'other.db'}" if db_url.startswith("sqlite")
             else _pg_url(request.getfixturevalue("pg_databases"), request.getfixturevalue("pg_template")))
    runs = {}
    for url, min_px in ((db_url, "100"), (other, "0")):
        cli = cli_factory(url)
        assert cli("--ingest", str(photos)).returncode == 0
        res = cli("--all", EMBED_AT_DETECTION_MIN_PX=min_px, THUMBNAIL_SAVE_PATH=str(tmp_path / min_px))
        assert res.returncode == 0, res.stderr
        runs[min_px] = (res.stdout, _vectors(url))
    return runs

def test_faces_embedded_at_detection_match_the_embedding_stage(cli_factory, db_url, request, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "small.jpg").write_bytes((faces_dev / "Al_Gore" / "01.jpg").read_bytes())
    group = Image.open(faces_dev / "group" / "fr_two_people.jpg")  # 1126x661
    group.resize((group.width * 4, group.height * 4)).save(photos / "big.jpg", quality=95)  # decoded at 1/4
    runs = _both_ways(cli_factory, db_url, request, tmp_path, photos)
    at_detection, stage = runs["100"][1], runs["0"][1]
    assert "embedded on the way" in runs["100"][0] and "embedded on the way" not in runs["0"][0]
    assert at_detection.keys() == stage.keys() and len(stage) >= 3
    for key, v in stage.items():
        cosine = float(v @ at_detection[key])
        # a photo decoded at full size gives the very same crop; a reduced decode, nearly
        assert cosine > (0.9999 if key[0] == "small.jpg" else 0.98), (key, cosine)


def test_faces_too_small_in_the_reduced_decode_are_embedded_from_a_full_decode(cli_factory, db_url, request,
                                                                               tmp_path, faces_dev):
    """--all decodes the photo once more at full size on the helper thread, instead of leaving
    those faces to the embedding stage: the embedding stage then has nothing to do, and the
    vectors are exactly the ones it would have stored."""
    photos = tmp_path / "photos"
    photos.mkdir()
    canvas = Image.new("RGB", (2400, 1800), (128, 128, 128))  # decoded at 1/2 for detection
    for k, name in enumerate(("Al_Gore", "Angelina_Jolie", "Barack_Obama")):
        face = Image.open(faces_dev / name / "01.jpg").convert("RGB").resize((200, 200), Image.Resampling.LANCZOS)
        canvas.paste(face, (200 + 700 * k, 800))
    canvas.save(photos / "camera.jpg", quality=95)  # faces under 200 px here, under 100 in the reduced decode
    runs = _both_ways(cli_factory, db_url, request, tmp_path, photos)
    out, at_detection = runs["100"]
    stage = runs["0"][1]
    assert at_detection.keys() == stage.keys() and len(stage) >= 2  # every usable face
    assert f"{len(stage)} faces embedded on the way" in out and "recognition: 0 faces embedded" in out, out
    for key, v in stage.items():
        assert json.loads(key[1])["h"] < 200  # too small in the reduced decode for the first way
        assert float(v @ at_detection[key]) > 0.99999, key
