import re
from dataclasses import fields
from pathlib import Path

import pytest

from app.config import ENV_FIELDS, URL_NAMES, Settings, SettingsError, accepts, load_settings, reference

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_use_embedded_sqlite_under_data():
    s = load_settings(environ={}, env_file=None)
    assert s.database_url == "sqlite:///data/faces.db"
    assert s.is_sqlite
    assert s.match_threshold == 0.8
    assert s.thumbnail_path == Path("data/thumbnails")


def test_sql_connection_string_is_an_alias_and_database_url_wins():
    url = "postgresql+psycopg2://u@h/db"
    assert load_settings({"SQL_CONNECTION_STRING": url}, env_file=None).database_url == url
    both = {"SQL_CONNECTION_STRING": "sqlite:///a.db", "DATABASE_URL": url}
    assert load_settings(both, env_file=None).database_url == url


def test_env_file_is_read_and_environment_overrides_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DETECT_BATCH_SIZE=7\nMATCH_THRESHOLD=0.6\n")
    s = load_settings({"MATCH_THRESHOLD": "0.7"}, env_file=env_file)
    assert s.detect_batch_size == 7
    assert s.match_threshold == 0.7


def test_data_dir_moves_database_and_thumbnails():
    s = load_settings({"DATA_DIR": "/srv/faces"}, env_file=None)
    assert s.database_url == "sqlite:////srv/faces/faces.db"
    assert s.thumbnail_path == Path("/srv/faces/thumbnails")


@pytest.mark.parametrize(
    "name,value",
    [
        ("DETECT_BATCH_SIZE", "x"),
        ("DETECT_BATCH_SIZE", "0"),
        ("MATCH_THRESHOLD", "1.5"),
        ("LEASE_SECONDS", "-3"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "just-a-hostname"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value}, env_file=None)


def test_overrides_win():
    s = load_settings({"DATABASE_URL": "sqlite:///a.db"}, env_file=None, database_url="sqlite:///b.db")
    assert s.database_url == "sqlite:///b.db"


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", text, flags=re.M))
    assert listed == set(ENV_FIELDS) | set(URL_NAMES)
    # every Settings field is reachable from the environment
    reachable = {attr for attr, _ in ENV_FIELDS.values()} | {"database_url"}
    assert reachable == set(Settings.__dataclass_fields__)


@pytest.mark.parametrize("given", [
    "postgresql://u:pw@h:5432/db",
    "postgres://u:pw@h:5432/db",
    "postgresql+psycopg2://u:pw@h:5432/db",
    "postgresql+psycopg://u:pw@h:5432/db",
    "POSTGRESQL://u:pw@h:5432/db",
])
def test_every_usual_postgresql_form_uses_the_installed_driver(given):
    url = load_settings({"DATABASE_URL": given}, env_file=None).database_url
    assert url == "postgresql+psycopg2://u:pw@h:5432/db"


def test_url_query_and_socket_forms_survive_normalisation():
    s = load_settings({"DATABASE_URL": "postgresql:///photos?host=/var/run/postgresql"}, env_file=None)
    assert s.database_url.startswith("postgresql+psycopg2:///photos?host=")
    assert load_settings({"DATABASE_URL": "sqlite:///x/faces.db"}, env_file=None).database_url == "sqlite:///x/faces.db"


@pytest.mark.parametrize("name,value", [
    ("SQL_CONNECTION_STRING", "Server=db;Database=photos;User Id=sa;Password=S3cretPW;"),
    ("DATABASE_URL", "postgresql+psycopg2://u:S3cretPW@127.0.0.1:notaport/db"),
    ("DATABASE_URL", "postgresql://u:S3cretPW@[::1:5432/db"),
    ("DATABASE_URL", "mysql://u:S3cretPW@h/db"),
    ("DATABASE_URL", "postgresql+asyncpg://u:S3cretPW@h/db"),
    ("DATABASE_URL", "host=db user=u password=S3cretPW dbname=photos"),
])
def test_malformed_urls_name_the_variable_and_never_the_password(name, value):
    with pytest.raises(SettingsError) as exc:
        load_settings({name: value}, env_file=None)
    message = str(exc.value)
    assert name in message and "S3cretPW" not in message and "\n" not in message


def test_database_url_option_is_checked_like_the_variable():
    with pytest.raises(SettingsError, match="--database-url") as exc:
        load_settings({}, env_file=None, database_url="postgresql://u:S3cretPW@h:x/db")
    assert "S3cretPW" not in str(exc.value)
    s = load_settings({}, env_file=None, database_url="postgres://u@h/db")
    assert s.database_url == "postgresql+psycopg2://u@h/db"


def test_mask_hides_passwords_in_any_form():
    from app.db.url import mask

    for text in ("postgresql://u:pa@ss:w@rd@h/db", "Server=x;Password=pa;ss;", "x password='pa ss' y",
                 "postgresql://u@h/db?password=pass"):
        assert "pa" not in mask(text).replace("password", "").replace("Password", ""), mask(text)


NUMBERS = [name for name in ENV_FIELDS if "number" in accepts(name)]


def test_every_number_states_both_bounds():
    assert len(NUMBERS) > 40
    for name in NUMBERS:
        assert re.fullmatch(r"a (whole )?number >=? \S+ and <= \S+", accepts(name)), name


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "99999999999999999999999"])
def test_non_finite_and_huge_numbers_are_refused(name, value):
    with pytest.raises(SettingsError, match=f"{name}=.*must be a (whole )?number"):
        load_settings({name: value}, env_file=None)


@pytest.mark.parametrize("name,value", [
    # each of these passed before and then lost work (issue 27)
    ("DETECT_MIN_SCORE", "nan"), ("LINK_THRESHOLD", "nan"), ("PUBLISH_TIMEOUT_SECONDS", "inf"),
    ("PUBLISH_BACKOFF_SECONDS", "nan"), ("THUMBNAIL_SIZE", "99999999"), ("LEASE_SECONDS", "100000000000000000000"),
    ("WATCH_INTERVAL_SECONDS", "inf"),
])
def test_settings_that_lost_work_are_refused_at_start_with_one_line(name, value, monkeypatch, capsys, tmp_path):
    from app import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert cli.main(["--db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"config error: {name}=") and "<=" in err
    assert not (tmp_path / "data").exists()  # refused before any database or folder was made


def test_every_default_is_within_its_bounds():
    defaults = {f.name: f.default for f in fields(Settings)}
    for name in NUMBERS:
        attr, parse = ENV_FIELDS[name]
        if defaults[attr] is not None:
            assert parse(str(defaults[attr])) == defaults[attr], name


def test_the_settings_reference_page_is_the_generated_table():
    page = (ROOT / "docs" / "settings.md").read_text()
    assert reference() in page, "docs/settings.md is out of date: python -m app.config > docs/settings.md"
