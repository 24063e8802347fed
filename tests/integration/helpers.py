"""Small helpers shared by integration tests."""
from __future__ import annotations

import re


def status_counts(cli) -> dict[str, int]:
    """`main.py --status` as {label: count}."""
    res = cli("--status")
    assert res.returncode == 0, res.stderr
    counts = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^\s*(.+?)\s+(\d+)$", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts
