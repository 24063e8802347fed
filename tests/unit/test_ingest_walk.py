from pathlib import Path

from app.services.ingest import IMAGE_EXTENSIONS, iter_image_files


def test_walks_recursively_in_stable_order(tmp_path):
    for rel in ["b/2.jpg", "a/1.PNG", "a/sub/3.jpeg", "notes.txt", "z.jpg"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["notes.txt", "z.jpg", "a/1.PNG", "a/sub/3.jpeg", "b/2.jpg"]
    images = [f for f in found if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    assert images == ["z.jpg", "a/1.PNG", "a/sub/3.jpeg", "b/2.jpg"]
