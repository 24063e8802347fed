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
    assert err.strip() == "config error: MAX_ATTEMPTS='many': must be a whole number >= 1 and <= 100"


def test_missing_ingest_folder_exits_2_before_touching_a_database(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SQL_CONNECTION_STRING", raising=False)
    assert cli.main(["--ingest", str(tmp_path / "nope")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("argv, words", [
    (["--serve", "--host", "0.0.0.0"], "needs WEB_TOKEN"),
    (["--serve", "--port", "70000"], "not a port number"),
])
def test_serve_refuses_an_open_address_without_token_and_a_bad_port(monkeypatch, capsys, tmp_path, argv, words):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEB_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'faces.db'}")
    assert cli.main(argv) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "faces.db").exists()  # refused before touching a database


def test_web_token_is_never_shown_in_settings(monkeypatch, tmp_path):
    from app.config import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEB_TOKEN", "s3cret-value-long-enough")
    settings = load_settings()
    assert settings.web_token == "s3cret-value-long-enough" and "s3cret-value-long-enough" not in repr(settings)


def test_an_empty_database_url_flag_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--status", "--database-url", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--database-url is empty" in err
    assert not (tmp_path / "data").exists()  # not silently the default database


def test_a_sqlite_url_in_a_missing_folder_creates_no_folders(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "missing" / "dir" / "x.db"
    for mode in (["--status"], ["--db"], ["--persons"]):
        assert cli.main([*mode, "--database-url", f"sqlite:///{target}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "does not exist" in err, mode
    assert not (tmp_path / "missing").exists()


def test_a_read_only_mode_never_creates_a_sqlite_file_given_by_hand(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "typo.db"
    assert cli.main(["--status", "--database-url", f"sqlite:///{target}"]) == 2
    assert "no database file at" in capsys.readouterr().err
    assert not target.exists()


def test_control_characters_printed_by_a_mode_are_escaped(monkeypatch, capsys):
    monkeypatch.setitem(cli.MODES, "status", lambda settings, args: print("name \x1b[2J\x07\u202e end") or 0)
    assert cli.main(["--status"]) == 0
    assert capsys.readouterr().out == "name \\x1b[2J\\x07\\u202e end\n"


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    read, write = os.pipe()
    os.close(read)  # the reader (`| head -2`) has gone before the first line
    main = Path(__file__).resolve().parents[2] / "main.py"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQL_CONNECTION_STRING")}
    done = subprocess.run([sys.executable, str(main), "--status"], cwd=tmp_path, env=env, stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.parametrize("since", ["0001-01-01", "9999-12-31T23:59-05:00", "9999-12-31", "1969-12-31"])
def test_retry_failed_since_out_of_range_is_one_line(monkeypatch, capsys, tmp_path, since):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--retry-failed", "--since", since]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --since {since!r}"), err


def _shell(tmp_path, command: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    main = Path(__file__).resolve().parents[2] / "main.py"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQL_CONNECTION_STRING")}
    return subprocess.run(["bash", "-c", command.replace("MAIN", f"{sys.executable} {main}")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_closed_or_full_output_is_one_line_not_a_traceback(tmp_path):
    closed = _shell(tmp_path, "MAIN --status >&-")
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr
    full = _shell(tmp_path, "MAIN --status > /dev/full")
    assert full.returncode == 2 and full.stderr.strip() == "error: cannot write the output: No space left on device"


def test_a_closed_pipe_keeps_an_error_exit_code(tmp_path):
    res = _shell(tmp_path, "set -o pipefail; MAIN --ingest '' 2>&1 | true")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
