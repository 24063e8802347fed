"""What a photo file was when it was detected: size, modification time, a content hash.

The change check (app/services/file_changes.py) compares only size and modification time:
a stat is ~65 us, reading a file is ~5x that. The hash decides, at re-detection, whether
the content changed at all (a `touch`, or a copy that keeps the bytes, is not a changed
photo: the user's decisions on its faces then stay exactly as they are).

The hash is sha256 over the size and the first and last 64 KiB (the whole file when it is
that small). Cheap (the decoder reads those bytes next, from the page cache) and enough for
a photo replaced by another: a JPEG's or video's head (EXIF, quantisation tables, header)
and tail (the end of the coded data) both change. A same-size edit that leaves both ends
byte for byte alone (possible in an uncompressed BMP or TIFF) is missed by the hash and
seen only as "touched"; hashing whole files would cost ~10 ms per 10 MB photo at
detection.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PART = 64 * 1024  # bytes hashed at each end


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int
    content_hash: str | None = None

    def same_stat(self, other: "FileStamp") -> bool:
        return self.size == other.size and self.mtime_ns == other.mtime_ns


def stat_stamp(st: os.stat_result) -> FileStamp:
    return FileStamp(st.st_size, st.st_mtime_ns)


def read_stamp(path: Path | str) -> FileStamp:
    """Size, modification time and content hash of a file (raises OSError)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())  # the file opened, not a name that may change meanwhile
        return FileStamp(st.st_size, st.st_mtime_ns, content_hash(f, st.st_size))


def content_hash(f: BinaryIO, size: int) -> str:
    """The hash of an open file of this size (read from the start; the position is left
    wherever the reads end)."""
    f.seek(0)
    h = hashlib.sha256(size.to_bytes(8, "little"))
    if size <= 2 * PART:
        h.update(f.read())
    else:
        h.update(f.read(PART))
        f.seek(-PART, os.SEEK_END)
        h.update(f.read(PART))
    return h.hexdigest()


def content_changed(recorded: FileStamp | None, now: FileStamp | None) -> bool:
    """Whether a re-detection is of another content than the last detection read: by the
    hash when both have one, else by size and modification time. Unknown (nothing recorded,
    or the file could not be read now) is not a change."""
    if recorded is None or now is None:
        return False
    if recorded.content_hash is not None and now.content_hash is not None:
        return recorded.content_hash != now.content_hash
    return not recorded.same_stat(now)
