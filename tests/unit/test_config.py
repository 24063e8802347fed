import re
from pathlib import Path

import pytest

from app.config import ENV_FIELDS, URL_NAMES, Settings, SettingsError, load_settings

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
