"""Bad and odd input files, through the real CLI on both backends: every registered item
ends done or failed with a clear reason, the run exits 1 without a traceback, every good
image is processed, and a second run finds nothing left to do."""
import io
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import update

from app.db.engine import make_engine, session_factory
from app.db.models import MediaItems
from app.db.types import utcnow
from app.services.ingest import register_files
from tests.integration.helpers import faces_by_media, items_by_name, status_counts

FACE = "done, face"  # done with at least one face
DONE = "done"  # done, faces or not
FAILED = "failed"


def _photo(p: Path, src: Path) -> None:
    p.write_bytes(src.read_bytes())


def _rgb(src: Path) -> Image.Image:
    return Image.open(src).convert("RGB")


def _gray16(p: Path, src: Path) -> None:
    img = Image.fromarray(np.asarray(_rgb(src).convert("L"), dtype=np.uint16) * 257)
    assert img.mode == "I;16"
    img.save(p)


def _palette_alpha(p: Path, src: Path) -> None:
    img = _rgb(src).convert("P", palette=Image.Palette.ADAPTIVE)
    img.save(p, transparency=0)
    assert Image.open(p).mode == "P" and "transparency" in Image.open(p).info


def _multi_frame(p: Path, src: Path) -> None:  # animated GIF, multi-page TIFF
    img = _rgb(src)
    img.save(p, save_all=True, append_images=[img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert getattr(Image.open(p), "n_frames", 1) == 2


def _pdf(p: Path, src: Path) -> None:
    buf = io.BytesIO()
    _rgb(src).save(buf, format="PDF")
    p.write_bytes(buf.getvalue())


def _symlink(target: str):
    return lambda p, src: os.symlink(p.parent / target, p)


UNICODE_NAME = "it's \"x\"; ü 日本.jpg"

# file name -> (maker(path, real face photo), expected outcome, words in LastError)
CORPUS = {
    "zero.jpg": (lambda p, src: p.write_bytes(b""), FAILED, "empty file"),
    "text.jpg": (lambda p, src: p.write_text("this is not an image\n" * 10), FAILED, "not an image"),
    "truncated.jpg": (lambda p, src: p.write_bytes(src.read_bytes()[: src.stat().st_size // 3]), FAILED, "truncated"),
    # a real PNG whose header says 20000x20000: tiny on disk, 400 MP once decoded
    "bomb.png": (lambda p, src: Image.new("1", (20000, 20000)).save(p, optimize=True), FAILED, "too large"),
    "one_pixel.png": (lambda p, src: Image.new("RGB", (1, 1), (200, 150, 120)).save(p), DONE, ""),
    "cmyk.jpg": (lambda p, src: _rgb(src).convert("CMYK").save(p, quality=95), FACE, ""),
    "gray16.png": (_gray16, FACE, ""),
    "palette_alpha.png": (_palette_alpha, FACE, ""),
    "animated.gif": (_multi_frame, FACE, ""),
    "photo.webp": (lambda p, src: _rgb(src).save(p, quality=90), FACE, ""),
    "pages.tif": (_multi_frame, FACE, ""),
    "document.png": (_pdf, FAILED, "not an image"),  # a PDF named .png
    "archive.jpg": (lambda p, src: p.write_bytes(b"PK\x03\x04" + bytes(200)), FAILED, "not an image"),
    UNICODE_NAME: (_photo, FACE, ""),
    "dangling.jpg": (_symlink("nowhere.jpg"), FAILED, "not found"),
    "loop_a.jpg": (_symlink("loop_b.jpg"), FAILED, "broken symbolic link"),
    "loop_b.jpg": (_symlink("loop_a.jpg"), FAILED, "broken symbolic link"),
    "folder.jpg": (lambda p, src: p.mkdir(), FAILED, "not a regular file"),  # registered by hand below
    "deleted.jpg": (_photo, FAILED, "not found"),  # deleted after ingest
    "replaced.jpg": (_photo, FACE, ""),  # overwritten with another photo after the first run
}
BROKEN_LINKS = ("dangling.jpg", "loop_a.jpg", "loop_b.jpg")
# errors that cannot change: failed for good on the first try
PERMANENT = {"zero.jpg", "text.jpg", "bomb.png", "document.png", "archive.jpg", "folder.jpg"}


def _register_as_named(engine, paths: list[Path]) -> None:
    """Rows for these paths as they are (a link not resolved), the way another application
    inserts them."""
    from app.repositories import media as media_repo

    with session_factory(engine).begin() as s:
        media_repo.add_media(s, [media_repo.NewMedia(str(p), p.name, p.suffix.lower()) for p in paths])


def test_bad_input_ends_with_a_status_and_a_reason_and_no_loop(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, (make, _, _) in CORPUS.items():
        make(photos / name, faces_dev / "Al_Gore" / "01.jpg")
    deep = photos / ("d" * 130) / ("e" * 130) / ("f" * 130) / ("g" * 130)
    deep.mkdir(parents=True)
    _photo(deep / "long.jpg", faces_dev / "Al_Gore" / "02.jpg")
    assert len(str(deep / "long.jpg")) > 500

    ingest = cli("--ingest", str(photos))
    assert ingest.returncode == 0, ingest.stderr
    # --ingest lists neither folder.jpg (a folder) nor anything under it, skips the three
    # broken links, and refuses long.jpg
    assert f"{len(CORPUS) - 1 - len(BROKEN_LINKS)} added" in ingest.stdout, ingest.stdout
    assert "1 skipped (path too long)" in ingest.stdout and f"{len(BROKEN_LINKS)} broken links skipped" in ingest.stdout
    engine = make_engine(db_url)
    # another application registers a folder named like an image, and the broken links by
    # their own names (README "Database contract")
    assert register_files(session_factory(engine), [photos / "folder.jpg"]).added == 1
    _register_as_named(engine, [photos / n for n in BROKEN_LINKS])
    (photos / "deleted.jpg").unlink()

    env = {"MAX_ATTEMPTS": "2", "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")}
    failed = [n for n, (_, outcome, _) in CORPUS.items() if outcome == FAILED]
    # One try each first (retries not due for an hour): errors that cannot change use up
    # every attempt at once, the others wait for their retry.
    first = cli("--all", **{**env, "RETRY_DELAY_SECONDS": "3600"})
    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stdout + first.stderr[-3000:]
    tried = items_by_name(engine)
    assert {n: tried[n].Attempts for n in failed} == {n: 2 if n in PERMANENT else 1 for n in failed}

    with session_factory(engine).begin() as s:  # an hour later (the retry time is set at failure)
        s.execute(update(MediaItems).where(MediaItems.Status == "failed").values(LockedUntil=utcnow() - timedelta(seconds=1)))

    res = cli("--all", **env)
    assert res.returncode == 1, res.stdout + res.stderr[-3000:]  # some items failed
    assert "Traceback" not in res.stderr, res.stderr[-3000:]

    items = items_by_name(engine)
    assert set(items) == set(CORPUS)  # long.jpg never registered
    faces = faces_by_media(engine)
    for name, (_, outcome, words) in CORPUS.items():
        item, found = items[name], faces.get(items[name].MediaFileId, [])
        if outcome == FAILED:
            assert item.Status == "failed" and not item.IsFacesExtracted, (name, item.Status)
            assert words in (item.LastError or ""), (name, item.LastError)
            assert item.Attempts == 2, (name, item.Attempts)  # MAX_ATTEMPTS, then given up
            assert not found, name
        else:
            assert item.Status == "done" and item.IsFacesExtracted, (name, item.Status, item.LastError)
            assert item.FaceCount == len(found), name
        if outcome == FACE:
            usable = [f for f in found if f.IsUsable]
            assert usable and all(f.Embedding is not None for f in usable), (name, len(found))
    assert not faces.get(items["one_pixel.png"].MediaFileId)
    counts = status_counts(cli, MAX_ATTEMPTS="2")
    assert counts["failed, gave up"] == len(failed) and counts["done"] == len(CORPUS) - len(failed), counts

    # A file replaced after it was processed: the next run's change check notices it and
    # detects it again (its old faces replaced); nothing else is redone, nothing loops.
    replaced = items["replaced.jpg"]
    before = [(f.Id, f.BoundingBox) for f in faces[replaced.MediaFileId]]
    _photo(photos / "replaced.jpg", faces_dev / "Abdullah_Gul" / "01.jpg")

    again = cli("--all", **env)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert "Traceback" not in again.stderr and "detection: 1 images" in again.stdout, again.stdout
    after = items_by_name(engine)
    for name, item in items.items():
        now = after[name]
        if name != "replaced.jpg":
            assert (now.Status, now.Attempts, now.FacesExtractedOn) == (item.Status, item.Attempts, item.FacesExtractedOn), name
    assert after["replaced.jpg"].Status == "done" and after["replaced.jpg"].FacesExtractedOn > replaced.FacesExtractedOn
    now_faces = [(f.Id, f.BoundingBox) for f in faces_by_media(engine)[replaced.MediaFileId]]
    assert now_faces and not set(now_faces) & set(before)
    last = cli("--all", **env)  # and then nothing is left to do
    assert last.returncode == 0 and "detection: 0 images" in last.stdout, last.stdout
    engine.dispose()
