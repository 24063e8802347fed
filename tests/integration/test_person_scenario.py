"""The README's person-management scenario (examples/person_scenario.py), run as written
against each database: every step succeeds and every check it makes holds."""
import subprocess
import sys

from tests.integration.conftest import ROOT


def test_the_readme_scenario_runs_and_every_check_holds(db_url, tmp_path, faces_dev):
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "person_scenario.py"), "--data", str(faces_dev),
                          "--work", str(tmp_path / "scenario"), "--database-url", db_url],
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "every check passed" in res.stdout and "WRONG" not in res.stdout
    for step in ("--rename", "--merge", "--reject", "--hide", "--recluster", "--undo", "--history"):
        assert f"python main.py {step}" in res.stdout
