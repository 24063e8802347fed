"""Text that reaches a terminal or a log file: control characters made visible.

A person's name, a file name or an error reason comes from outside (another application,
a user, a photo's EXIF); printed raw, ESC sequences clear or repaint the terminal, BEL
rings, a right-to-left override (U+202E) reverses what follows, and a newline in a file
name writes a forged line into the logs. Every log line and every console line goes
through these functions (app/logs.py, app/cli.py). Imports nothing of ours.
"""
from __future__ import annotations

import io
import re
from typing import TextIO

# C0 controls, DEL, C1 controls, and the invisible format characters that reorder or hide
# text (bidi embeddings, overrides and isolates, zero-width marks, the BOM).
# Also the line and paragraph separators (U+2028, U+2029: a line break to many readers) and
# the Arabic letter mark (U+061C, a direction mark).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """One line: every control or reordering character written as an escape (\\x1b, \\n,
    \\u202e). For values from outside: names, paths, reasons."""
    return _UNSAFE.sub(_escape, str(text))


def printable_lines(text: str) -> str:
    """The same, keeping newlines and tabs: for whole lines of output already split on
    purpose (a traceback, a table)."""
    return _UNSAFE_KEEP_LINES.sub(_escape, text)


class EscapingStream(io.TextIOBase):
    """A text stream that writes through printable_lines(): the console of the command
    line, so nothing it prints can drive the terminal."""

    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(printable_lines(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")
