"""The whole dev set through --ingest and --db on PostgreSQL (the detection issue's bar)."""
from pathlib import Path

from PIL import Image

from app.db.engine import make_engine
from tests.integration.helpers import faces_by_media, items_by_path, status_counts


def test_whole_dev_set_on_postgres(pg_url, cli_factory, faces_dev, tmp_path):
    cli = cli_factory(pg_url)
    thumbs = tmp_path / "thumbs"
    assert cli("--ingest", str(faces_dev)).returncode == 0
    res = cli("--db", THUMBNAIL_SAVE_PATH=str(thumbs), timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]

    engine = make_engine(pg_url)
    items = items_by_path(engine)
    faces = faces_by_media(engine)
    engine.dispose()
    assert len(items) >= 2294
    assert all(i.IsFacesExtracted for i in items.values())

    singles = {p: i for p, i in items.items() if Path(p).parent.name != "group"}
    with_face = sum(1 for i in singles.values() if faces.get(i.MediaFileId))
    assert with_face / len(singles) >= 0.995, (with_face, len(singles))

    all_faces = [f for fs in faces.values() for f in fs]
    for face in all_faces:
        with Image.open(face.ThumbnailPath) as im:
            assert im.size == (112, 112)
    assert len(list(thumbs.rglob("*.jpg"))) == len(all_faces)

    again = cli("--db", THUMBNAIL_SAVE_PATH=str(thumbs))
    assert again.returncode == 0 and "detection: 0 images" in again.stdout
    counts = status_counts(cli)
    assert counts["pending"] == 0 and counts["done"] == len(items)
