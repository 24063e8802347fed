"""The detection stage's work step: lanes, each taking one image through all its steps.

Per image a lane *prepares* (decodes the file, shrinks it for the detector), runs the
*model*, and *finishes* (blur, quality, thumbnails written, embedding crops). `lanes`
threads do this side by side, each on its own image, with a single-threaded detector
session each (app/services/detect.py chooses); by default a lane's model step hands the
photo whole to the lane's process instead (app/services/detect_procs.py), and its thread
only waits. In threads, onnxruntime, Pillow and NumPy release the GIL, but the Python
around them does not: on two cores the lanes' steps took 40-110 % longer side by side
than alone, which the processes avoid. The earlier design (the model on two intra-op
threads, one helper thread for everything else) let the helper's work stall the model's
threads, which must meet after every layer, and decoded one camera photo at a time.

Items are read on the caller's thread, only as far as `ahead` beyond the oldest one not
yet given back, so the caller may claim work from a queue as it goes; outcomes come back
in the items' order. Only the images the lanes are working on are decoded at a time
(`lanes` of them).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Protocol, TypeVar

from app.services.work_queue import Problem
from app.stopping import StopFlag

I = TypeVar("I", contravariant=True)  # an item  # noqa: E741
P = TypeVar("P")  # what was prepared for the model
M = TypeVar("M")  # what the model found
O = TypeVar("O", covariant=True)  # the item's outcome  # noqa: E741


class Steps(Protocol[I, P, M, O]):
    """The three steps, each on one item; each returns a Problem instead of raising for a
    failure of its item. They run on the lanes' threads, several items at a time."""

    def prepare(self, item: I) -> P | Problem: ...

    def model(self, item: I, prepared: P) -> M | Problem: ...

    def finish(self, item: I, prepared: P, found: M) -> O | Problem: ...


def _through(steps: Steps, item, stop: StopFlag | None):
    """One item through its three steps on a lane. None when a stop request came before
    the model saw it (the caller hands it back)."""
    prepared = steps.prepare(item)
    if isinstance(prepared, Problem):
        return prepared
    if stop is not None and stop.is_set():
        return None
    found = steps.model(item, prepared)
    if isinstance(found, Problem):
        return found
    return steps.finish(item, prepared, found)


def stream(items: Iterable[I], steps: Steps, stop: StopFlag | None, lanes: int = 2,
           ahead: int | None = None) -> Iterator[tuple[I, object]]:
    """(item, outcome) in the items' order, each given back as soon as it and those before
    it are done: O or a Problem, or None for an item left out by a stop request (the
    caller hands it back; items past the model are finished first). `items` is read on
    the caller's thread, at most `ahead` (default four per lane) beyond the oldest item
    not given back yet, so the lanes go on while the caller stores what it was given."""
    ahead = ahead or 4 * lanes
    pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="detect-lane")
    pending: deque = deque()  # (item, future of its outcome), in order
    upcoming = iter(items)
    try:
        while not (stop is not None and stop.is_set()):
            while len(pending) < ahead:
                item = next(upcoming, None)
                if item is None:
                    break
                pending.append((item, pool.submit(_through, steps, item, stop)))
            if not pending:
                return
            item, future = pending.popleft()
            yield item, future.result()
        for _, future in pending:  # stopped: what no lane has started is left out
            future.cancel()
        while pending:
            item, future = pending.popleft()
            yield item, None if future.cancelled() else future.result()
    finally:
        for _, future in pending:  # an exception: nothing more is started
            future.cancel()
        pool.shutdown(wait=True)
