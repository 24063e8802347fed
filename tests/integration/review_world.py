"""A review page served against a PostgreSQL database filled by the real pipeline, and a
real headless Chromium (Debian's package) driven by Playwright.

The dev photos are detected, embedded and grouped once per module into a database that
each test then clones (CREATE DATABASE ... TEMPLATE), so every test starts from the same
persons; the server runs in a thread of the test process (uvicorn) on a free port.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from app.db import schema
from app.db.engine import make_engine, session_factory
from app.services.ingest import register_files
from app.services.run import detect_and_recognize
from tests.integration.helpers import copy_images

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# .ci/run sets this: there, a missing browser is a failure, not a skip
REQUIRE_BROWSER = os.environ.get("FACEGROUP_REQUIRE_BROWSER") == "1"
INSTALL_HINT = ("browser tests need Chromium: `apt-get install chromium` (Debian's package, /usr/bin/chromium), "
                "or set CHROMIUM_PATH; Playwright comes with `pip install -e '.[test]'`")
IDENTITIES = ("Abdullah_Gul", "Al_Gore", "Ana_Palacio", "Andre_Agassi", "Ari_Fleischer")
PER_IDENTITY = 6
LONERS = 4  # people seen once: their faces stay unassigned


def browser_or_skip():
    """A launched headless Chromium, or a skip (a failure under .ci/run) saying how to get one."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return _missing("Playwright is not installed. " + INSTALL_HINT)
    if not CHROMIUM.exists():
        return _missing(f"{CHROMIUM} not found. " + INSTALL_HINT)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    return playwright, browser


def _missing(message: str):
    if REQUIRE_BROWSER:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def fill(url: str, faces_dev: Path, folder: Path, models) -> Path:
    """Run the pipeline over a few dev identities and some one-off people; returns the
    thumbnail folder."""
    schema.upgrade(url)
    engine = make_engine(url)
    thumbs = folder / "thumbs"
    settings = replace(load_settings({}, env_file=None), database_url=url, thumbnail_path=thumbs)
    photos = [p for name in IDENTITIES for p in sorted((faces_dev / name).iterdir())[:PER_IDENTITY]]
    others = [p for p in sorted(faces_dev.iterdir()) if p.is_dir() and p.name not in IDENTITIES + ("group",)]
    photos += [sorted(p.iterdir())[0] for p in others[120:120 + LONERS]]
    try:
        sessions = session_factory(engine)
        register_files(sessions, copy_images(photos, folder / "photos"))
        detector, encoder = models
        assert detect_and_recognize(sessions, detector, encoder, settings).failed == 0
    finally:
        engine.dispose()
    return thumbs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str  # http://127.0.0.1:port
    settings: Settings
    sessions: object
    engine: object
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.engine.dispose()


def serve(database_url: str, thumbs: Path, token: str | None = None) -> Served:
    import uvicorn

    from app.web.server import create_app

    settings = replace(load_settings({}, env_file=None), database_url=database_url, thumbnail_path=thumbs,
                       web_token=token)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, sessions), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review server did not start")
        time.sleep(0.05)
    return Served(f"http://127.0.0.1:{port}", settings, sessions, engine, server, thread)
