"""DATABASE_URL in the forms people write; the password never shown, whatever the form."""
import pytest
from sqlalchemy.engine import make_url

SECRET = "S3cretPW"


def _forms(pg_url: str) -> dict[str, str]:
    url = make_url(pg_url).set(password=SECRET)  # the test server trusts, so any password works
    rest = url.render_as_string(hide_password=False).split("://", 1)[1]
    return {scheme: f"{scheme}://{rest}" for scheme in
            ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")}


def test_every_usual_postgresql_form_works_and_hides_the_password(pg_url, cli_factory, tmp_path, faces_dev):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes((faces_dev / "Al_Gore" / "01.jpg").read_bytes())
    for scheme, url in _forms(pg_url).items():
        cli = cli_factory(url)
        status = cli("--status")
        assert status.returncode == 0, (scheme, status.stderr)
        assert SECRET not in status.stdout + status.stderr
        assert "database: postgresql+psycopg2://" in status.stdout and "***" in status.stdout
    cli = cli_factory(_forms(pg_url)["postgresql"])
    assert cli("--ingest", str(photos)).returncode == 0
    run = cli("--all", LOG_LEVEL="DEBUG")
    assert run.returncode == 0, run.stderr
    logs = "".join(p.read_text() for p in (cli.cwd / "logs").glob("*.log"))
    assert logs and SECRET not in logs + run.stdout + run.stderr


@pytest.mark.parametrize("name,value", [
    ("SQL_CONNECTION_STRING", f"Server=db;Database=photos;User Id=sa;Password={SECRET};"),
    ("DATABASE_URL", f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:notaport/db"),
    ("DATABASE_URL", f"postgresql://u:{SECRET}@[::1:5432/db"),
    ("DATABASE_URL", f"oracle://u:{SECRET}@h/db"),
    ("DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/db"),  # well formed, nobody listening
    ("DATABASE_URL", f"postgresql://u:{SECRET}@no-such-host.invalid/db"),
])
def test_bad_database_urls_give_one_line_and_exit_2(cli_factory, name, value):
    cli = cli_factory(None)
    res = cli("--status", **{name: value})
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert SECRET not in res.stdout + res.stderr
