"""Every error the worker reports to its user, each carrying the exit code the command
line returns for it. Imports nothing of ours, so any layer may raise these.

Exit codes: 0 ok, 1 some items failed (not an error class: a normal outcome),
2 usage, configuration or database error (one line on stderr, no traceback).
"""
from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (of the driver's error for a database one),
    or its type when it has none: what one log or error line shows."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


class AppError(Exception):
    """Base: the message is one line meant for the user; `exit_code` is what main returns."""

    exit_code = EXIT_USAGE


class UsageError(AppError):
    """Bad input on the command line (a missing folder, an unreadable --test image)."""


class SettingsError(AppError, ValueError):
    """A setting is missing or malformed; the message names the variable (never a secret)."""


class SchemaError(AppError):
    """The database schema does not match this code; the message says what to run."""


class ModelUnavailable(AppError):
    """A model backend's weights or packages are missing; the message says how to get them."""


class WorkerBusy(AppError):
    """Another worker holds the embedded SQLite database (one worker per SQLite file)."""


class DatabaseUnavailable(AppError):
    """The database cannot be reached, or the connection kept dropping after retries."""


class RequestError(AppError):
    """A person operation asked for something that does not exist or is not allowed (an
    unknown id, an empty name, ...): nothing was changed."""


class EnvironmentFault(AppError):
    """The machine, not the items, keeps the work from being done (a thumbnail folder that
    cannot be written, a photo folder gone): the run stops and nothing is charged to the
    items; the message names the cause and says to fix it."""
