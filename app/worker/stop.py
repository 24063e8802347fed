"""Graceful stop on SIGINT / SIGTERM: finish the current image, then leave."""
from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from typing import Iterator

from app.stopping import StopFlag

log = logging.getLogger("app.worker")


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """A StopFlag set by SIGINT/SIGTERM; a second signal stops at once."""
    flag = StopFlag()
    previous = {}

    def handler(signum, _frame):
        if flag.is_set():
            raise KeyboardInterrupt
        log.info("received %s: stopping after the current image", signal.Signals(signum).name)
        flag.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
