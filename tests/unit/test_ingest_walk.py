from pathlib import Path

import pytest

from app import cli
from app.services.ingest import IMAGE_EXTENSIONS, Walk, iter_image_files


def test_walks_recursively_in_stable_order(tmp_path):
    for rel in ["b/2.jpg", "a/1.PNG", "a/sub/3.jpeg", "notes.txt", "z.jpg"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["notes.txt", "z.jpg", "a/1.PNG", "a/sub/3.jpeg", "b/2.jpg"]
    images = [f for f in found if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    assert images == ["z.jpg", "a/1.PNG", "a/sub/3.jpeg", "b/2.jpg"]


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_ingest_folder_is_refused_with_one_line(monkeypatch, capsys, tmp_path, blank):
    # Path("") is the current folder: `--ingest ""` once registered everything under it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"x")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'faces.db'}")
    assert cli.main(["--ingest", blank]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --ingest: the folder name is empty") and "\n" not in err
    assert not (tmp_path / "faces.db").exists()


def _tree_with_links(tmp_path):
    """lib/a/1.jpg, lib/z.jpg, and beside them: a link to a folder outside lib, a loop back
    to lib, a dangling link and a link to a file outside lib."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "o.jpg").write_bytes(b"x")
    (outside / "f.jpg").write_bytes(b"x")
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "a" / "1.jpg").write_bytes(b"x")
    (lib / "z.jpg").write_bytes(b"x")
    (lib / "elsewhere").symlink_to(outside, target_is_directory=True)
    (lib / "a" / "loop").symlink_to(lib, target_is_directory=True)
    (lib / "gone.jpg").symlink_to(tmp_path / "no-such-file.jpg")
    (lib / "linked.jpg").symlink_to(outside / "f.jpg")
    return lib


def test_folder_links_are_counted_not_followed_by_default(tmp_path):
    lib = _tree_with_links(tmp_path)
    walk = Walk()
    found = [p.relative_to(lib).as_posix() for p in iter_image_files(lib, walk)]
    assert found == ["linked.jpg", "z.jpg", "a/1.jpg"]  # the dangling link is not a file
    assert (walk.dir_links, walk.file_links, walk.broken_links, walk.loops) == (2, 1, 1, 0)


def test_follow_links_enters_each_folder_once_and_ends_a_loop(tmp_path):
    lib = _tree_with_links(tmp_path)
    walk = Walk(follow_links=True)
    found = [p.relative_to(lib).as_posix() for p in iter_image_files(lib, walk)]
    assert found == ["linked.jpg", "z.jpg", "a/1.jpg", "elsewhere/f.jpg", "elsewhere/deep/o.jpg"]
    assert (walk.dir_links, walk.file_links, walk.broken_links, walk.loops) == (0, 1, 1, 1)


def test_a_second_way_into_a_real_folder_is_skipped_and_real_paths_come_first(tmp_path):
    lib = tmp_path / "lib"
    (lib / "b").mkdir(parents=True)
    (lib / "b" / "2.jpg").write_bytes(b"x")
    (lib / "a_link").symlink_to(lib / "b", target_is_directory=True)  # sorts before b
    walk = Walk(follow_links=True)
    found = [p.relative_to(lib).as_posix() for p in iter_image_files(lib, walk)]
    assert found == ["b/2.jpg"] and walk.loops == 1


def test_a_link_loop_between_two_folders_ends(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "to_y").symlink_to(tmp_path / "y", target_is_directory=True)
    (tmp_path / "y" / "to_x").symlink_to(tmp_path / "x", target_is_directory=True)
    (tmp_path / "y" / "p.jpg").write_bytes(b"x")
    walk = Walk(follow_links=True)
    found = [p.relative_to(tmp_path / "x").as_posix() for p in iter_image_files(tmp_path / "x", walk)]
    assert found == ["to_y/p.jpg"] and walk.loops == 1
