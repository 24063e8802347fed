from sqlalchemy import func, select

from app.db.engine import make_engine, session_factory
from app.db.models import MediaFile, MediaItems
from tests.integration.helpers import status_counts


def test_ingest_registers_each_image_once(cli, db_url, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    sources = sorted((faces_dev / "Abdullah_Gul").glob("*.jpg"))[:3]
    for i, src in enumerate(sources):
        (photos / ("nested" if i else "") / src.name).write_bytes(src.read_bytes())
    (photos / "readme.txt").write_text("not an image")

    first = cli("--ingest", str(photos))
    assert first.returncode == 0, first.stderr
    assert "3 added, 0 skipped" in first.stdout and "1 ignored" in first.stdout

    again = cli("--ingest", str(photos))
    assert again.returncode == 0, again.stderr
    assert "0 added, 3 skipped" in again.stdout

    status = status_counts(cli)
    assert status["media"] == 3 and status["pending"] == 3 and status["done"] == 0
    assert status["faces"] == 0 and status["persons"] == 0

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = s.execute(select(MediaFile)).scalars().all()
        assert sorted(r.FileName for r in rows) == sorted(p.name for p in sources)
        assert all(r.Extensions == ".jpg" and r.FilePath.startswith(str(photos)) for r in rows)
        assert all(r.CreatedAt.tzinfo is not None for r in rows)
        items = s.execute(select(MediaItems)).scalars().all()
        assert len(items) == 3 and not any(i.IsFacesExtracted for i in items)
        assert {i.Status for i in items} == {"pending"}
    engine.dispose()


def test_ingest_of_missing_folder_is_a_clear_error(cli, tmp_path):
    res = cli("--ingest", str(tmp_path / "missing"))
    assert res.returncode == 2
    assert "folder does not exist" in res.stderr and "Traceback" not in res.stderr


def test_ingest_of_a_file_is_a_clear_error(cli, tmp_path):
    f = tmp_path / "one.jpg"
    f.write_bytes(b"x")
    res = cli("--ingest", str(f))
    assert res.returncode == 2 and "not a folder" in res.stderr


def test_ingest_whole_dev_set_counts(cli, db_url, faces_dev):
    res = cli("--ingest", str(faces_dev))
    assert res.returncode == 0, res.stderr
    expected = sum(1 for p in faces_dev.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    assert f"{expected} added" in res.stdout
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(MediaItems)) == expected
    engine.dispose()


def test_ingest_says_how_it_treats_links_and_follows_folder_links_when_asked(cli, tmp_path, faces_dev):
    sources = sorted((faces_dev / "Abdullah_Gul").glob("*.jpg"))[:3]
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    (lib / "own.jpg").write_bytes(sources[0].read_bytes())
    (outside / "other.jpg").write_bytes(sources[1].read_bytes())
    (lib / "linked.jpg").symlink_to(outside / "other.jpg")
    (lib / "trip").symlink_to(outside, target_is_directory=True)
    (lib / "loop").symlink_to(lib, target_is_directory=True)
    (lib / "dangling.jpg").symlink_to(tmp_path / "nothing.jpg")

    first = cli("--ingest", str(lib))
    assert first.returncode == 0, first.stderr
    assert "2 added" in first.stdout and "1 file links" in first.stdout
    assert "2 folder links not followed (use --follow-links)" in first.stdout
    assert "1 broken links skipped" in first.stdout

    followed = cli("--ingest", str(lib), "--follow-links")
    assert followed.returncode == 0, followed.stderr
    assert "1 added, 2 skipped" in followed.stdout  # trip/other.jpg
    assert "1 folder links skipped (a loop, or a folder walked already)" in followed.stdout
    assert "not followed" not in followed.stdout
    assert status_counts(cli)["media"] == 3
