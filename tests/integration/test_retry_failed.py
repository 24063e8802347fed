"""`--retry-failed [--since WHEN]` hands the media items and faces given up after
MAX_ATTEMPTS back to their queues (attempts 0, the last reason kept until the next try),
and `--status` says so when there are any."""
from datetime import timedelta

from sqlalchemy import text, update

from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaItems
from app.db.types import utcnow
from tests.integration.helpers import copy_images, faces_by_media, items_by_name, status_counts


def test_retry_failed_hands_given_up_items_back_since_a_time(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    good = copy_images(sorted((faces_dev / "Al_Gore").glob("*.jpg"))[:2], photos)
    for k in range(3):
        (photos / f"broken{k}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * (k + 1))
    assert cli("--ingest", str(photos)).returncode == 0
    env = {"MAX_ATTEMPTS": "2", "RETRY_DELAY_SECONDS": "0", "THUMBNAIL_SAVE_PATH": str(tmp_path / "thumbs")}
    assert cli("--db", **env).returncode == 1
    engine = make_engine(db_url)
    items = items_by_name(engine)
    broken = {n: i for n, i in items.items() if n.startswith("broken")}
    assert all(i.Status == "failed" and i.Attempts == 2 for i in broken.values())
    # every face's embedding given up too, one of them (and one item) a month ago
    old = utcnow() - timedelta(days=30)
    faces = [f for fs in faces_by_media(engine).values() for f in fs if f.IsUsable]
    assert len(faces) >= 2
    with session_factory(engine).begin() as s:
        if db_url.startswith("postgresql"):  # its trigger sets ModifiedAt on every update: not now
            s.execute(text("SET LOCAL session_replication_role = replica"))
        s.execute(update(Faces).values(EmbedAttempts=2, EmbedError="the embedding model failed: boom"))
        s.execute(update(Faces).where(Faces.Id == faces[0].Id).values(ModifiedAt=old))
        s.execute(update(MediaItems).where(MediaItems.Id == broken["broken0.jpg"].Id).values(ModifiedAt=old))

    status = cli("--status", MAX_ATTEMPTS="2")
    assert f"given up: 3 media items, {len(faces)} faces (main.py --retry-failed hands them back)" in status.stdout
    assert status_counts(cli, MAX_ATTEMPTS="2")["failed, gave up"] == 3

    since = (utcnow() - timedelta(days=1)).date().isoformat()
    res = cli("--retry-failed", "--since", since, MAX_ATTEMPTS="2")
    assert res.returncode == 0, res.stderr
    assert f"handed back 2 media items and {len(faces) - 1} faces given up since {since}" in res.stdout
    items = items_by_name(engine)
    assert (items["broken0.jpg"].Status, items["broken0.jpg"].Attempts) == ("failed", 2)  # failed before WHEN
    for name in ("broken1.jpg", "broken2.jpg"):
        assert (items[name].Status, items[name].Attempts, items[name].LockedUntil) == ("pending", 0, None)
        assert "not an image" in items[name].LastError or "truncated" in items[name].LastError  # kept
    assert all(i.Status == "done" for n, i in items.items() if n in {g.name for g in good})
    attempts = {f.Id: f.EmbedAttempts for fs in faces_by_media(engine).values() for f in fs if f.IsUsable}
    assert attempts == {f.Id: 2 if f.Id == faces[0].Id else 0 for f in faces}

    res = cli("--retry-failed", MAX_ATTEMPTS="2")
    assert res.returncode == 0 and "handed back 1 media items and 1 faces given up:" in res.stdout, res.stdout
    assert "given up:" not in cli("--status", MAX_ATTEMPTS="2").stdout
    # handed back, they are tried again: the faces embed, the broken files fail again
    res = cli("--recognize", **env)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert all(f.Embedding is not None for fs in faces_by_media(engine).values() for f in fs if f.IsUsable)
    engine.dispose()


def test_retry_failed_refuses_a_bad_since_with_one_line(cli):
    for args in (("--retry-failed", "--since", "yesterday"), ("--retry-failed", "--since", "2026-13-01")):
        res = cli(*args)
        assert res.returncode == 2 and res.stdout == "", res.stdout
        assert res.stderr.strip().splitlines() == [
            f"error: --since {args[2]!r}: not an ISO date or time (e.g. 2026-12-01 or 2026-12-01T10:00)"]
    res = cli("--db", "--since", "2026-12-01")
    assert res.returncode == 2 and "--since goes with --retry-failed" in res.stderr
