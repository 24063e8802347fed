import os

from app.pipeline.file_stamp import PART, FileStamp, content_changed, read_stamp


def test_stamp_hashes_both_ends_and_the_size(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * PART + b"middle" + b"z" * PART)
    first = read_stamp(big)
    st = big.stat()
    assert (first.size, first.mtime_ns) == (st.st_size, st.st_mtime_ns) and len(first.content_hash) == 64
    big.write_bytes(b"a" * PART + b"MIDDLE" + b"z" * PART)  # same size, same ends: not seen
    assert read_stamp(big).content_hash == first.content_hash
    big.write_bytes(b"a" * PART + b"middle" + b"z" * (PART - 1) + b"!")
    assert read_stamp(big).content_hash != first.content_hash
    small = tmp_path / "small.bin"
    small.write_bytes(b"a" * 100 + b"b")
    before = read_stamp(small).content_hash
    small.write_bytes(b"a" * 100 + b"c")  # small files: hashed whole
    assert read_stamp(small).content_hash != before


def test_a_touch_is_not_a_change_of_content(tmp_path):
    f = tmp_path / "p.jpg"
    f.write_bytes(b"photo")
    recorded = read_stamp(f)
    os.utime(f, ns=(recorded.mtime_ns, recorded.mtime_ns + 10**9))
    now = read_stamp(f)
    assert not now.same_stat(recorded) and not content_changed(recorded, now)
    f.write_bytes(b"other")
    assert content_changed(recorded, read_stamp(f))


def test_without_a_hash_size_and_time_decide_and_unknown_is_no_change():
    old = FileStamp(10, 100)
    assert content_changed(old, FileStamp(10, 200, "h")) and not content_changed(old, FileStamp(10, 100, "h"))
    assert not content_changed(None, FileStamp(1, 1, "h")) and not content_changed(old, None)
