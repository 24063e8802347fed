import io
import logging

from app.logs import RedactingFormatter
from app.text import EscapingStream, printable, printable_lines


def test_printable_escapes_controls_and_reordering_characters_only():
    assert printable("Zoë Ångström 李") == "Zoë Ångström 李"
    assert printable("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert printable("\x1b[2J\x07\x00\x7f\x9b") == "\\x1b[2J\\x07\\x00\\x7f\\x9b"
    assert printable("x\u202ey\u2066z\u200bw\ufeff") == "x\\u202ey\\u2066z\\u200bw\\ufeff"
    # line and paragraph separators end a line for many readers; U+061C is a direction mark
    assert printable("a\u2028b\u2029c\u061cd") == "a\\u2028b\\u2029c\\u061cd"
    assert printable_lines("a\u2028b") == "a\\u2028b"


def test_printable_lines_keeps_line_breaks():
    assert printable_lines("one\ntwo\t\x1b[31m") == "one\ntwo\t\\x1b[31m"


def test_a_log_message_is_one_line_whatever_its_values_hold():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter([]))
    log = logging.getLogger("test_text.one_line")
    log.addHandler(handler)
    log.propagate = False
    log.warning("item 3 (%s) failed", "a.jpg\n2026-12-04 12:00:00,000 INFO [app] forged\x1b[2J")
    try:
        raise ValueError("bad\x1b[2J")
    except ValueError:
        log.exception("with a traceback")
    lines = out.getvalue().splitlines()
    assert "a.jpg\\n2026-12-04 12:00:00,000 INFO [app] forged\\x1b[2J" in lines[0]
    assert not any(line.startswith("2026-12-04 12:00:00,000") for line in lines)
    assert "\x1b" not in out.getvalue() and lines[-1] == "ValueError: bad\\x1b[2J"


def test_the_escaping_stream_writes_through():
    inner = io.StringIO()
    stream = EscapingStream(inner)
    assert stream.write("ok \x07\n") == 5
    assert inner.getvalue() == "ok \\x07\n"
