from pathlib import Path

import pytest

from app import cli
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
