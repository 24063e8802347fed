import pytest

from app import cli


def test_help_names_every_mode(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--test", "--db", "--watch", "--recognize", "--recluster", "--all",
                 "--automate", "--ingest", "--status", "--migrate"):
        assert flag in out


@pytest.mark.parametrize("argv", [[], ["--db", "--status"], ["--bogus"]])
def test_bad_usage_exits_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_bad_setting_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_ATTEMPTS", "many")
    assert cli.main(["--status"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "config error: MAX_ATTEMPTS='many': must be a whole number > 0"


def test_missing_ingest_folder_exits_2_before_touching_a_database(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SQL_CONNECTION_STRING", raising=False)
    assert cli.main(["--ingest", str(tmp_path / "nope")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
