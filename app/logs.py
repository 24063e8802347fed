"""Logging: the console plus one file per stage under LOG_DIR.

Detection code logs under the `app.detection` logger, recognition under
`app.recognition`; each also goes to `worker.log` with everything else.
"""
from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler

from app.config import Settings
from app.db.url import mask, password_of
from app.text import printable, printable_lines

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
STAGE_FILES = {
    "app.detection": "face_detection.log",
    "app.recognition": "embeddings_clustering.log",
    "app.publish": "publishing.log",
}


class RedactingFormatter(logging.Formatter):
    """Never lets the database password into a log line, tracebacks included: the exact
    password is replaced, and so is anything that looks like a connection string's.

    A message is one line whatever it holds: control characters (a newline in a file
    name, ESC sequences in a person's name) are written as escapes (app/text.py), so no
    value can forge a line or drive the terminal; a traceback keeps its own line breaks."""

    def __init__(self, secrets: list[str]):
        super().__init__(FORMAT)
        self.secrets = [s for s in secrets if s]

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return printable_lines(stack_info)

    def format(self, record: logging.LogRecord) -> str:
        text = mask(super().format(record))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _secrets(settings: Settings) -> list[str]:
    # the publishing token too: a traceback could carry a request's headers
    return [p for p in (password_of(settings.database_url), settings.publish_token) if p and len(p) >= 3]


def _file_handler(settings: Settings, name: str) -> logging.Handler:
    handler = RotatingFileHandler(
        settings.log_dir / name, maxBytes=10_000_000, backupCount=5, encoding="utf-8"
    )
    handler.setFormatter(RedactingFormatter(_secrets(settings)))
    return handler


def setup_logging(settings: Settings, to_files: bool = True) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.log_level)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(RedactingFormatter(_secrets(settings)))
    root.addHandler(console)
    if to_files:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        root.addHandler(_file_handler(settings, "worker.log"))
        for logger_name, file_name in STAGE_FILES.items():
            stage = logging.getLogger(logger_name)
            for handler in list(stage.handlers):
                stage.removeHandler(handler)
                handler.close()
            stage.addHandler(_file_handler(settings, file_name))
    for noisy in ("alembic.runtime.plugins", "alembic.runtime.migration", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
