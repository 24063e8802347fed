"""Telling a fault of the machine from a bad photo (app/services/environment.py), on real
files in a tmp folder: which failures are suspects, and when a run of them proves it."""
import errno
from pathlib import Path

import pytest

from app.errors import EXIT_USAGE, EnvironmentFault
from app.pipeline.decode import DecodeError, load
from app.services import environment
from app.services.environment import STREAK, Suspicion, Watch


def _decode_error(path: Path) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        load(path, 10_000_000)
    return caught.value


def test_a_photo_missing_from_a_folder_that_is_there_is_its_own_fault(tmp_path):
    assert environment.photo_suspicion(tmp_path / "gone.jpg", _decode_error(tmp_path / "gone.jpg")) is None
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere" / "x.jpg")
    assert environment.photo_suspicion(tmp_path / "dangling.jpg", _decode_error(tmp_path / "dangling.jpg")) is None
    (tmp_path / "text.jpg").write_text("not an image\n")
    assert environment.photo_suspicion(tmp_path / "text.jpg", _decode_error(tmp_path / "text.jpg")) is None


def test_a_photo_whose_folder_is_gone_is_a_suspect_naming_the_highest_missing_folder(tmp_path):
    path = tmp_path / "library" / "2024" / "a.jpg"
    s = environment.photo_suspicion(path, _decode_error(path))
    assert s == Suspicion(environment.MISSING, str(tmp_path / "library"))


def test_an_unreadable_disk_is_a_suspect_and_a_thumbnail_write_is_certain(tmp_path):
    try:
        raise OSError(errno.EIO, "Input/output error")
    except OSError:
        try:
            raise DecodeError("corrupt or truncated image: [Errno 5] Input/output error") from None
        except DecodeError as exc:
            error = exc
    s = environment.photo_suspicion(tmp_path / "a.jpg", error)
    assert s == Suspicion("EIO", str(tmp_path), "Input/output error")
    full = environment.thumbnail_suspicion(tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    assert full.certain
    assert environment.cause([full]) == f"thumbnail folder {tmp_path} is full (No space left on device)"


def test_the_thumbnail_folder_check_writes_and_deletes_a_file(tmp_path):
    environment.check_thumbnail_folder(tmp_path / "new" / "thumbnails")
    assert list((tmp_path / "new" / "thumbnails").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(EnvironmentFault) as fault:
        environment.check_thumbnail_folder(tmp_path / "file" / "thumbnails")
    assert fault.value.exit_code == EXIT_USAGE
    assert str(fault.value).startswith(f"thumbnail folder {tmp_path / 'file' / 'thumbnails'} cannot be written")
    assert str(fault.value).endswith(": fix it and run again; no photo was charged")


def _missing(folder: str) -> Suspicion:
    return Suspicion(environment.MISSING, folder)


def _unreadable(folder: str) -> Suspicion:
    return Suspicion("EIO", folder, "Input/output error")


def test_the_watch_needs_a_streak_of_files_and_holds_it():
    watch = Watch("photo")
    for k in range(STREAK - 1):
        watch.see(f"/lib/a/{k}.jpg", _unreadable("/lib/a"))
        watch.see(f"/lib/a/{k}.jpg", _unreadable("/lib/a"))  # a photo's second face counts once
    assert watch.holding
    watch.see("/lib/ok.jpg", None)  # a photo that worked: the machine is fine, the streak is charged
    assert not watch.holding
    watch.end()  # not every file of the run failed
    for k in range(STREAK - 1):
        watch.see(f"/lib/b/{k}.jpg", _unreadable("/lib/b"))
    with pytest.raises(EnvironmentFault) as fault:
        watch.see("/lib/c/0.jpg", _unreadable("/lib/c"))
    assert str(fault.value) == ("photos in 2 folders under /lib cannot be read (Input/output error): "
                                "fix it and run again; no photo was charged")


def test_missing_folders_need_a_long_streak_so_a_deleted_album_is_charged_to_its_photos():
    watch = Watch("photo")
    for k in range(STREAK * 10):  # an album deleted on purpose, first in the queue
        watch.see(f"/lib/album/{k}.jpg", _missing("/lib/album"))
    assert watch.holding
    watch.see("/lib/kept/1.jpg", None)  # the library is there: the album's photos are their own fault
    assert not watch.holding
    watch.end()
    for k in range(environment.STREAK_MISSING - 1):  # the library unmounted mid-run
        watch.see(f"/lib/y/{k}.jpg", _missing("/lib"))
    with pytest.raises(EnvironmentFault, match="photo folder /lib is missing"):
        watch.see("/lib/z.jpg", _missing("/lib"))


def test_a_run_whose_every_file_failed_the_same_way_is_the_machines_fault():
    watch = Watch("face")
    watch.see("/lib/a/1.jpg", _missing("/lib/a"))
    with pytest.raises(EnvironmentFault, match="photo folder /lib/a is missing.*no face was charged"):
        watch.end()
    mixed = Watch("photo")
    mixed.see("/lib/a/1.jpg", Suspicion("EIO", "/lib/a", "Input/output error"))
    mixed.see("/lib/a/2.jpg", _missing("/lib/a"))  # another cause: not one fault
    mixed.end()
