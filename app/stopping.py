"""A stop request shared by a worker loop and the services it calls: they check it between
items and leave cleanly. Imports nothing of ours (services never import the worker)."""
from __future__ import annotations

import threading


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
