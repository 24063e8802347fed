"""--evaluate through the real pipeline on a small labelled folder."""
import json
import subprocess
import sys

from tests.integration.conftest import ROOT

NAMES = ["Abdullah_Gul", "Al_Gore", "Angela_Merkel", "ORL_s02"]


def _folder(faces_dev, dest):
    for name in NAMES:
        (dest / name).mkdir(parents=True)
        for f in sorted((faces_dev / name).iterdir()):
            (dest / name / f.name).write_bytes(f.read_bytes())
    (dest / "group").mkdir()
    (dest / "group" / "two.jpg").write_bytes((faces_dev / "group" / "fr_two_people.jpg").read_bytes())
    return dest


def _run(*args, cwd, env=None):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=env)


def test_evaluate_prints_and_writes_every_section(faces_dev, tmp_path):
    data = _folder(faces_dev, tmp_path / "data")
    res = _run("--evaluate", str(data), "--sweep", "--output", str(tmp_path / "r.json"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for words in ("detection", "ROC AUC", "pairwise  precision", "BCubed", "persons made",
                  "incremental", "joined right person", "timings", "clustering sweep"):
        assert words in res.stdout, words
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["detection"]["all"]["images"] == sum(len(list((data / n).iterdir())) for n in NAMES) + 1
    assert report["detection"]["group photos"]["faces_per_image"] >= 2
    assert report["clustering"]["identities"] == len(NAMES)
    assert report["clustering"]["pairwise"]["precision"] >= 0.95
    assert report["embedding_separation"]["auc"] > 0.95
    inc = report["incremental"]
    assert inc["added_photos"] == 2 * sum(1 for n in NAMES if len(list((data / n).iterdir())) >= 8)
    assert len(report["sweep"]) >= 4
    assert not (tmp_path / "data" / "faces.db").exists() and not (tmp_path / "data").joinpath("data").exists()


def test_evaluate_refuses_a_database_in_use(faces_dev, tmp_path, pg_url):
    data = _folder(faces_dev, tmp_path / "data")
    res = _run("--evaluate", str(data), "--database-url", pg_url, cwd=tmp_path)
    assert res.returncode == 2 and "must be empty" in res.stderr


def test_evaluate_with_strangers_and_folds(faces_dev, tmp_path):
    """Strangers (one photo each of people not in the folder, a hidden non-photo among
    them) are counted, and 2-fold cross-validation reports each fold and the choice."""
    data = _folder(faces_dev, tmp_path / "data")
    strangers = tmp_path / "strangers"
    strangers.mkdir()
    people = [p for p in sorted(faces_dev.iterdir()) if p.is_dir() and p.name not in NAMES + ["group"]][:12]
    for p in people:
        (strangers / f"{p.name}.jpg").write_bytes(sorted(p.iterdir())[0].read_bytes())
    (strangers / ".DS_Store.jpg").write_bytes(b"\0\0\0\1Bud1")
    res = _run("--evaluate", str(data), "--strangers", str(strangers), "--folds", "2",
               "--output", str(tmp_path / "r.json"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for words in ("strangers:", "cross-validation over identities", "fold 0", "fold 1", "chosen most often"):
        assert words in res.stdout, words
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["strangers"]["strangers"] == 12 and report["strangers"]["without_main_face"] == 0
    assert report["strangers"]["merged"] <= 1
    assert report["clustering"]["identities"] == len(NAMES) + 12
    assert report["clustering"]["largest_mixed_person_named_identities"] == 1
    inc = report["incremental"]
    assert "strangers in a person with someone else" in res.stdout
    assert inc["strangers_merged_after"] <= inc["strangers_merged_first_run"] + len(inc["strangers_merged_late"])
    assert all(name.endswith(".jpg") for name in inc["strangers_merged_late"])
    cv = report["cross_validation"]
    assert len(cv["folds"]) == 2 and sum(f["strangers"] for f in cv["folds"]) == 12
    assert all(0.0 <= f["pairwise"]["f1"] <= 1.0 for f in cv["folds"])
    assert _run("--evaluate", str(data), "--folds", "1", cwd=tmp_path).returncode == 2
