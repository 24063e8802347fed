"""The detection stage's work step as a two-thread pipeline: the model on the caller's
thread, everything else on one helper thread.

Per image the helper first *prepares* (decodes the file, shrinks it for the detector)
and, once the model has run, *finishes* (blur, quality, thumbnails written, embedding
crops). onnxruntime and Pillow release the GIL, so the helper's work overlaps the model's
instead of adding to it. The model takes up to `batch` prepared images per call (one
inference over several images costs less than one each). The helper takes its tasks in
the order given (one thread), so the outcomes come back in the items' order, and memory
stays bounded: at most `depth + batch` prepared images wait for the model and at most
`depth + 2 * batch` wait to be finished.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator, Protocol, TypeVar

from app.services.work_queue import Problem
from app.stopping import StopFlag

I = TypeVar("I", contravariant=True)  # an item  # noqa: E741
P = TypeVar("P")  # what the helper prepared for the model
M = TypeVar("M")  # what the model found
O = TypeVar("O", covariant=True)  # the item's outcome  # noqa: E741


class Steps(Protocol[I, P, M, O]):
    """The three steps; each returns a Problem instead of raising for a failure of its item."""

    def prepare(self, item: I) -> P | Problem: ...

    def model(self, items: list[I], prepared: list[P]) -> list[M | Problem]: ...

    def finish(self, item: I, prepared: P, found: M) -> O | Problem: ...


def _done(value) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


def run(items: list[I], steps: Steps, stop: StopFlag | None, depth: int = 2, batch: int = 1) -> list:
    """Outcomes (O or Problem) of the items processed, in order. On a stop request the
    items not yet given to the model are left out (the caller hands them back); those
    already past it are finished first, which takes a few images' worth of pixel work."""
    return [outcome for _, outcome in stream(items, steps, stop, depth, batch)]


def stream(items: Iterable[I], steps: Steps, stop: StopFlag | None, depth: int = 2,
           batch: int = 1) -> Iterator[tuple[I, object]]:
    """As `run`, as a generator of (item, outcome) in the items' order, each yielded as
    soon as it and those before it are finished (checked after every model call). `items`
    is read on the caller's thread, only as far as the pipeline needs (`depth + batch`
    ahead), so it may claim more work from a queue as it goes: the model never waits for
    the tail of one batch to be finished and stored before the next batch starts."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect-helper")
    ahead: deque = deque()
    finishing: deque = deque()  # (item, future of its outcome), in order
    upcoming = iter(items)

    def prepare_next() -> None:
        item = next(upcoming, None)
        if item is not None:
            ahead.append((item, pool.submit(steps.prepare, item)))

    try:
        for _ in range(depth + batch):
            prepare_next()
        while ahead:
            if stop is not None and stop.is_set():
                break
            group: list = []  # (item, prepared or its Problem), in order
            while ahead and sum(not isinstance(p, Problem) for _, p in group) < batch:
                item, future = ahead.popleft()
                prepare_next()
                group.append((item, future.result()))
            ready = [(item, p) for item, p in group if not isinstance(p, Problem)]
            found = iter(steps.model([item for item, _ in ready], [p for _, p in ready]) if ready else [])
            for item, prepared in group:
                if isinstance(prepared, Problem):
                    finishing.append((item, _done(prepared)))
                    continue
                f = next(found)
                finishing.append((item, _done(f) if isinstance(f, Problem)
                                  else pool.submit(steps.finish, item, prepared, f)))
            del group, ready, found  # the helper holds the images until it has finished with them
            while finishing and finishing[0][1].done():
                item, future = finishing.popleft()
                yield item, future.result()
        while finishing:
            item, future = finishing.popleft()
            yield item, future.result()
    finally:
        for _, future in ahead:  # not started: dropped (an exception, a stop request)
            future.cancel()
        pool.shutdown(wait=True)
