"""The export folder: safe names, and a sync that writes, moves and deletes exactly what
changed, never touches files it did not write, and survives a crash."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from app.errors import UsageError
from app.pipeline import export_layout as layout
from app.storage.export_tree import LOCK, MANIFEST, TMP_SUFFIX, Entry, ExportTree, Skip, locked, write_bytes


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b\\c", "..", ".", "CON", "nul", "x\x00y\x07z\n",
                                  "  spaced  out  ", "Zoë Ångström", "李小龙", "<script>alert(1)</script>",
                                  "a" * 500, "", None, "///", "COM1.txt"])
def test_person_folders_are_one_safe_name(name):
    folder = layout.person_folder(42, name)
    assert folder.startswith("person_42")
    assert "/" not in folder and "\\" not in folder and ".." not in folder and "." not in folder
    assert all(ch.isprintable() and ch not in '<>:"|?*' for ch in folder)
    assert len(folder) <= len("person_42_") + layout.SLUG_MAX


def test_slug_keeps_letters_of_any_script_and_ids_keep_names_apart():
    assert layout.slug("Zoë Ångström") == "zoë-ångström"
    assert layout.slug("李小龙") == "李小龙"
    assert layout.person_folder(1, "Ann") != layout.person_folder(2, "Ann")
    assert layout.person_folder(3, "../..") == "person_3"


@pytest.mark.parametrize("name,expected", [("IMG 0001.JPG", "IMG_0001.JPG"), ("../x.jpg", "_x.jpg"),
                                           (".hidden.jpg", "hidden.jpg"), ("a/b.jpg", "a_b.jpg")])
def test_photo_file_names(name, expected):
    assert layout.safe_file_name(name) == expected


def test_long_file_names_keep_their_extension():
    name = layout.safe_file_name("x" * 300 + ".jpeg")
    assert name.endswith(".jpeg") and len(name) <= layout.FILE_NAME_MAX


def test_index_html_escapes_names():
    page = layout.index_html([{"id": 1, "name": "<b onload=x>&", "folder": "person_1_b-onload-x", "faces": 2,
                               "photos": 2}], {"persons": 1, "faces": 2, "photos": 2, "noise": 0})
    assert "<b onload" not in page and "&lt;b onload=x&gt;&amp;" in page


def entries(files: dict[str, bytes], movable=()) -> dict[str, Entry]:
    return {p: Entry(f"k:{d.decode()}", write_bytes(d), movable=p in movable) for p, d in files.items()}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, _dirs, names in os.walk(root):
        for n in names:
            p = Path(folder) / n
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_ino, st.st_mtime_ns)
    return out


def test_sync_writes_then_changes_only_what_changed(tmp_path):
    root = tmp_path / "out"
    first = {"p1/faces/a.jpg": b"A", "p1/faces/b.jpg": b"B", "p2/faces/c.jpg": b"C", "summary.json": b"1"}
    r = ExportTree(root).sync(entries(first, movable={"p1/faces/a.jpg", "p1/faces/b.jpg", "p2/faces/c.jpg"}))
    assert sorted(r.written) == sorted(first) and r.kept == 0
    before = snapshot(root)

    r = ExportTree(root).sync(entries(first))
    assert r.changed == 0 and r.kept == 4
    assert snapshot(root) == before

    # b moves from p1 to p2, p1 keeps a, summary changes
    second = {"p1/faces/a.jpg": b"A", "p2/faces/b.jpg": b"B", "p2/faces/c.jpg": b"C", "summary.json": b"2"}
    r = ExportTree(root).sync(entries(second, movable=set(second)))
    assert r.moved == [("p1/faces/b.jpg", "p2/faces/b.jpg")]
    assert r.written == ["summary.json"] and r.deleted == []
    after = snapshot(root)
    assert after["p2/faces/b.jpg"][0] == before["p1/faces/b.jpg"][0]  # the same file, renamed
    for same in ("p1/faces/a.jpg", "p2/faces/c.jpg"):
        assert after[same] == before[same]

    # p1 goes (hidden person): its folder is removed
    third = {"p2/faces/b.jpg": b"B", "p2/faces/c.jpg": b"C", "summary.json": b"2"}
    r = ExportTree(root).sync(entries(third))
    assert r.deleted == ["p1/faces/a.jpg"] and not (root / "p1").exists()
    assert json.loads((root / MANIFEST).read_text())["files"].keys() == third.keys()


def test_files_the_export_did_not_write_are_never_deleted(tmp_path):
    root = tmp_path / "out"
    ExportTree(root).sync(entries({"p1/faces/a.jpg": b"A"}))
    (root / "p1" / "notes.txt").write_text("mine")
    ExportTree(root).sync({})
    assert (root / "p1" / "notes.txt").read_text() == "mine"
    assert not (root / "p1" / "faces").exists()


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not empty"):
        ExportTree(tmp_path / "photos")
    ExportTree(tmp_path / "empty")  # a new folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        ExportTree(tmp_path / "file")


def test_paths_outside_the_folder_are_refused(tmp_path):
    for bad in ("../x", "/etc/x", "a/../../x", MANIFEST):
        with pytest.raises(ValueError):
            ExportTree(tmp_path / "out").sync({bad: Entry("k", write_bytes(b"x"))})


def test_a_crash_mid_sync_leaves_no_temporaries_and_no_orphans(tmp_path):
    root = tmp_path / "out"
    ExportTree(root).sync(entries({"a.jpg": b"A"}))

    def explode(path: Path) -> None:
        path.write_bytes(b"half")
        raise KeyboardInterrupt  # the process dies mid-write

    with pytest.raises(KeyboardInterrupt):
        ExportTree(root).sync({"a.jpg": Entry("k:A", write_bytes(b"A")), "b.jpg": Entry("k:B", explode),
                               "c.jpg": Entry("k:C", write_bytes(b"C"))})
    assert not any(n.endswith(TMP_SUFFIX) for n in os.listdir(root))
    # the manifest named b and c before anything was written, so a sync that no longer
    # wants them removes what the crashed one left
    (root / "c.jpg").write_bytes(b"C")  # as if the crash came after c
    r = ExportTree(root).sync(entries({"a.jpg": b"A"}))
    assert r.kept == 1 and "c.jpg" in r.deleted and sorted(os.listdir(root)) == [MANIFEST, "a.jpg"]


def test_a_file_that_cannot_be_made_is_reported_and_retried(tmp_path):
    root = tmp_path / "out"

    def missing(path: Path) -> None:
        raise Skip("source file missing")

    r = ExportTree(root).sync({"a.jpg": Entry("k:A", missing), "b.jpg": Entry("k:B", write_bytes(b"B"))})
    assert r.failed == [("a.jpg", "source file missing")] and r.written == ["b.jpg"]
    r = ExportTree(root).sync(entries({"a.jpg": b"A", "b.jpg": b"B"}))
    assert r.written == ["a.jpg"] and r.kept == 1


def test_a_file_changed_or_deleted_since_is_written_again(tmp_path):
    """Issue 27: a rerun trusted the manifest, so a file another export (or a user) had
    overwritten or deleted was reported unchanged for ever."""
    root = tmp_path / "out"
    files = {"summary.json": b"all persons", "p1/faces/a.jpg": b"A", "p2/faces/b.jpg": b"B"}
    ExportTree(root).sync(entries(files))
    (root / "summary.json").write_bytes(b"one person")  # what a racing --persons export left
    (root / "p1" / "faces" / "a.jpg").write_bytes(b"X")  # same size, other content
    (root / "p2" / "faces" / "b.jpg").unlink()
    r = ExportTree(root).sync(entries(files))
    assert sorted(r.written) == sorted(files) and r.kept == 0
    assert {p: (root / p).read_bytes() for p in files} == files
    assert ExportTree(root).sync(entries(files)).changed == 0


def test_a_version_1_manifest_still_checks_its_links(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    os.symlink("/elsewhere", root / "photo.jpg")
    (root / MANIFEST).write_text(json.dumps({"version": 1, "files": {"photo.jpg": "link:/right"}}))
    r = ExportTree(root).sync({"photo.jpg": Entry("link:/right", link_to="/right")})
    assert r.written == ["photo.jpg"] and os.readlink(root / "photo.jpg") == "/right"


def test_a_second_export_into_a_locked_folder_stops(tmp_path):
    root = tmp_path / "out"
    with locked(root):
        with pytest.raises(UsageError, match="another export into this folder is running"):
            with locked(root):
                pass
    with locked(root):  # released
        ExportTree(root).sync(entries({"a.jpg": b"A"}))
    assert sorted(os.listdir(root)) == [MANIFEST, LOCK, "a.jpg"]
    with locked(root):  # the lock file is not a file of a foreign folder
        ExportTree(root)


def test_a_persons_export_into_a_folder_of_every_person_is_refused(tmp_path):
    root = tmp_path / "out"
    ExportTree(root).sync(entries({"p1/a.jpg": b"A", "p2/b.jpg": b"B"}))
    with pytest.raises(UsageError, match="holds an export of every person"):
        ExportTree(root, persons=[1])
    part = tmp_path / "part"
    ExportTree(part, persons=[1]).sync(entries({"p1/a.jpg": b"A"}))
    ExportTree(part, persons=[2]).sync(entries({"p2/b.jpg": b"B"}))  # a --persons folder takes another
    ExportTree(part).sync(entries({"p1/a.jpg": b"A", "p2/b.jpg": b"B"}))  # and grows to every person
    with pytest.raises(UsageError, match="every person"):
        ExportTree(part, persons=[1])


def test_a_full_disk_stops_the_sync_with_one_line_and_the_next_goes_on(tmp_path):
    root = tmp_path / "out"
    calls = []

    def full(path: Path) -> None:
        calls.append(path)
        raise OSError(errno.ENOSPC, "No space left on device")

    want = {"a.jpg": Entry("k:A", write_bytes(b"A")), "b.jpg": Entry("k:B", full),
            "c.jpg": Entry("k:C", write_bytes(b"C"))}
    with pytest.raises(UsageError, match=r"cannot write into .*No space left on device; stopped after 1 of 3"):
        ExportTree(root).sync(want)
    assert len(calls) == 1 and not (root / "c.jpg").exists()  # stopped, not failed file by file
    r = ExportTree(root).sync(entries({"a.jpg": b"A", "b.jpg": b"B", "c.jpg": b"C"}))
    assert r.kept == 1 and sorted(r.written) == ["b.jpg", "c.jpg"]


@pytest.mark.parametrize("where", ["dangling", "under_a_file"])
def test_a_folder_that_cannot_be_made_is_one_usage_error(tmp_path, where):
    if where == "dangling":
        root = tmp_path / "link"
        os.symlink(tmp_path / "gone" / "x", root)
        match = "symbolic link to .* which does not exist"
    else:
        (tmp_path / "file").write_text("x")
        root = tmp_path / "file" / "out"
        match = "cannot create .*Not a directory"
    with pytest.raises(UsageError, match=match):
        with locked(root):
            pass


def test_a_read_only_folder_is_one_usage_error(tmp_path, monkeypatch):
    root = tmp_path / "out"
    root.mkdir()
    real = os.open

    def read_only(path, *args, **kw):  # chmod stops no root: the file system says it instead
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(UsageError, match="cannot write into .*: Read-only file system$"):
        with locked(root):
            pass
