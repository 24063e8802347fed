"""Graceful stop on SIGINT / SIGTERM: finish the current image, then leave."""
from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("app.worker")


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is requested."""
        return self._event.wait(seconds)


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
