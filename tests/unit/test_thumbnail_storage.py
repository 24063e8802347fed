import os
import time

from app.storage import thumbnails


def _old(path, seconds=3600):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_paths_come_from_the_media_id_and_a_token_only(tmp_path):
    a = thumbnails.write(tmp_path, 123456, b"jpeg")
    b = thumbnails.write(tmp_path, 123456, b"jpeg")
    assert a.parent == tmp_path / "000123" and a.name.startswith("123456_") and a.suffix == ".jpg"
    assert a != b and a.read_bytes() == b"jpeg"
    assert not list(a.parent.glob("*.tmp"))


def test_sweep_removes_only_old_unreferenced_files_of_ours(tmp_path):
    kept = thumbnails.write(tmp_path, 5, b"x")
    orphan = thumbnails.write(tmp_path, 6, b"x")
    young_orphan = thumbnails.write(tmp_path, 7, b"x")
    foreign = tmp_path / "000000" / "notes.txt"
    foreign.write_text("not ours")
    leftover_tmp = tmp_path / "000000" / ".5_abc.jpg.99.tmp"
    leftover_tmp.write_bytes(b"half")
    for p in (kept, orphan, foreign, leftover_tmp):
        _old(p)
    asked = []

    def referenced(first, last):
        asked.append((first, last))
        return {str(kept)}

    report = thumbnails.sweep(tmp_path, referenced, grace_seconds=60, max_files=100)
    assert asked == [(0, 999)]
    assert kept.exists() and young_orphan.exists() and foreign.exists()
    assert not orphan.exists() and not leftover_tmp.exists()
    assert report.removed == 2


def test_referenced_files_are_kept_whatever_the_root_was_written_as(tmp_path, monkeypatch):
    kept = thumbnails.write(tmp_path, 5, b"x")
    _old(kept)
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(kept, tmp_path)  # stored relative, swept through an absolute root
    thumbnails.sweep(tmp_path, lambda a, b: {relative}, grace_seconds=0, max_files=10)
    assert kept.exists()


def test_sweep_cost_is_bounded_and_resumes_where_it_stopped(tmp_path):
    for media in (5, 1005, 2005, 3005):
        for _ in range(3):
            _old(thumbnails.write(tmp_path, media, b"x"))
    seen = []

    def referenced(first, last):
        seen.append(first)
        return set()

    thumbnails.sweep(tmp_path, referenced, 0, max_files=5)  # two folders of three files
    assert seen == [0, 1000]
    thumbnails.sweep(tmp_path, referenced, 0, max_files=5)
    assert seen == [0, 1000, 2000, 3000]
    assert not any(tmp_path.rglob("*.jpg"))
    thumbnails.sweep(tmp_path, referenced, 0, max_files=5)  # round again from the start
    assert seen[4] == 0


def test_a_folder_removed_after_a_write_is_made_again(tmp_path):
    import shutil

    first = thumbnails.write(tmp_path, 5, b"jpeg one")
    shutil.rmtree(first.parent)  # e.g. a user cleaning up, while the worker runs
    second = thumbnails.write(tmp_path, 7, b"jpeg two")
    assert second.read_bytes() == b"jpeg two" and second.parent == first.parent
    assert not list(second.parent.glob(".*.tmp"))
