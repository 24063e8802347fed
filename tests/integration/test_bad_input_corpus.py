"""A corpus of bad and odd inputs: every item ends with a status and a clear reason, the
run exits 1 without a traceback, and every good image is processed."""
import io
import os
from pathlib import Path

from PIL import Image

from app.db.engine import make_engine, session_factory
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_path, status_counts

GOOD = "good"  # ends done with at least one face
DONE = "done"  # ends done (may have no face)


def _corpus(folder: Path, photo: Path, other: Path) -> dict[str, tuple[str, str]]:
    """file name -> (expected outcome, words in the reason); builds the files."""
    folder.mkdir(parents=True, exist_ok=True)
    data = photo.read_bytes()
    img = Image.open(photo).convert("RGB")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n" * 10)
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("1", (20000, 20000)).save(folder / "bomb.png", optimize=True)
    Image.new("RGB", (1, 1), (200, 150, 120)).save(folder / "one_pixel.png")
    img.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    gray16 = Image.fromarray((__import__("numpy").asarray(img.convert("L"), dtype="uint16") * 257))
    gray16.save(folder / "gray16.png")
    pal = img.convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    pal.save(folder / "palette_alpha.png", transparency=0)
    img.save(folder / "animated.gif", save_all=True, append_images=[img.rotate(10)], duration=100, loop=0)
    img.save(folder / "photo.webp", quality=90)
    img.save(folder / "pages.tif", save_all=True, append_images=[img.rotate(90, expand=True)])
    buf = io.BytesIO()
    img.save(buf, format="PDF")
    (folder / "document.png").write_bytes(buf.getvalue())  # a PDF named .png
    (folder / "it's \"odd\"; ü 日本.jpg").write_bytes(data)
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    (folder / "deleted.jpg").write_bytes(data)
    (folder / "replaced.jpg").write_bytes(data)
    return {
        "zero.jpg": ("failed", "empty file"),
        "text.jpg": ("failed", "not an image"),
        "truncated.jpg": ("failed", "truncated"),
        "bomb.png": ("failed", "too large"),
        "one_pixel.png": (DONE, ""),
        "cmyk.jpg": (GOOD, ""),
        "gray16.png": (GOOD, ""),
        "palette_alpha.png": (GOOD, ""),
        "animated.gif": (GOOD, ""),
        "photo.webp": (GOOD, ""),
        "pages.tif": (GOOD, ""),
        "document.png": ("failed", "not an image"),
        "it's \"odd\"; ü 日本.jpg": (GOOD, ""),
        "dangling.jpg": ("failed", "broken symbolic link"),
        "loop_a.jpg": ("failed", "broken symbolic link"),
        "loop_b.jpg": ("failed", "broken symbolic link"),
        "deleted.jpg": ("failed", "not found"),
        "replaced.jpg": (GOOD, ""),
        "folder.jpg": ("failed", "not a regular file"),
    }


def test_every_bad_input_ends_with_a_status_and_a_reason(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    expected = _corpus(photos, faces_dev / "Al_Gore" / "01.jpg", faces_dev / "Abdullah_Gul" / "01.jpg")
    deep = photos / ("d" * 120) / ("e" * 120) / ("f" * 120) / ("g" * 120)
    deep.mkdir(parents=True)
    (deep / "long.jpg").write_bytes((faces_dev / "Al_Gore" / "02.jpg").read_bytes())
    ingest = cli("--ingest", str(photos))
    assert ingest.returncode == 0 and "1 skipped (path too long)" in ingest.stdout, ingest.stdout
    (photos / "folder.jpg").mkdir()  # a folder with an image's name, registered by another application
    engine = make_engine(db_url)
    register_files(session_factory(engine), [photos / "folder.jpg"])
    (photos / "deleted.jpg").unlink()

    env = {"MAX_ATTEMPTS": "2", "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")}
    res = cli("--all", **env)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    items = {Path(p).name: i for p, i in items_by_path(engine).items()}
    assert set(items) == set(expected)
    faces = faces_by_media(engine)
    for name, (outcome, words) in expected.items():
        item = items[name]
        if outcome in (GOOD, DONE):
            assert item.IsFacesExtracted and item.Status == "done", (name, item.LastError)
            if outcome == GOOD:
                usable = [f for f in faces.get(item.MediaFileId, []) if f.IsUsable]
                assert usable and all(f.Embedding is not None for f in usable), name
        else:
            assert item.Status == "failed" and words in (item.LastError or ""), (name, item.LastError)
            assert item.Attempts == 2, name  # tried until MAX_ATTEMPTS, or given up at once
    counts = status_counts(cli, MAX_ATTEMPTS="2")
    assert counts["failed, gave up"] == sum(o == "failed" for o, _ in expected.values())

    # The file is replaced after it was processed: it stays done with its faces, the next
    # run neither crashes nor redoes it (set IsFacesExtracted = false to have it redone).
    replaced = items["replaced.jpg"]
    before = sorted(f.Id for f in faces[replaced.MediaFileId])
    (photos / "replaced.jpg").write_bytes((faces_dev / "Abdullah_Gul" / "01.jpg").read_bytes())
    again = cli("--all", **env)
    assert again.returncode == 0 and "0 images" in again.stdout, again.stderr[-3000:]
    assert sorted(f.Id for f in faces_by_media(engine)[replaced.MediaFileId]) == before
    engine.dispose()
