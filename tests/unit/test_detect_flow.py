"""The detection stage's lanes (app/services/detect_flow.py): outcomes in order, failures
per item, lanes side by side, bounded images in flight, items read only as needed, a stop
request, an exception."""
import threading
import time

import pytest

from app.services import detect_flow
from app.services.work_queue import Problem
from app.stopping import StopFlag


class Steps:
    """Prepare/finish record the thread they ran on and count the 'images' alive."""

    def __init__(self, fail_prepare=(), fail_model=(), stop_after=None, stop=None):
        self.fail_prepare, self.fail_model = set(fail_prepare), set(fail_model)
        self.stop_after, self.stop = stop_after, stop
        self.lock = threading.Lock()
        self.alive = self.most_alive = 0
        self.helper_threads, self.model_threads = set(), set()
        self.modelled = []
        self.calls = []

    def prepare(self, item):
        self.helper_threads.add(threading.get_ident())
        if item in self.fail_prepare:
            return Problem(item, "cannot decode")
        with self.lock:
            self.alive += 1
            self.most_alive = max(self.most_alive, self.alive)
        return f"image {item}"

    def model(self, item, prepared):
        self.model_threads.add(threading.get_ident())
        self.calls.append(item)
        return self._one(item)

    def _one(self, item):
        with self.lock:
            self.modelled.append(item)
            if self.stop_after is not None and len(self.modelled) == self.stop_after:
                self.stop.set()
        if item in self.fail_model:
            with self.lock:
                self.alive -= 1
            return Problem(item, "model failed")
        return [item * 10]

    def finish(self, item, prepared, found):
        self.helper_threads.add(threading.get_ident())
        with self.lock:
            self.alive -= 1
        return (item, prepared, found)


def run(items, steps, stop, lanes=2):
    """The outcomes of the items the lanes processed, in order (those left out by a stop
    request dropped)."""
    return [o for _, o in detect_flow.stream(items, steps, stop, lanes) if o is not None]


@pytest.mark.parametrize("lanes", [1, 3])
def test_outcomes_come_back_in_order_with_failures_per_item(lanes):
    steps = Steps(fail_prepare={3}, fail_model={5})
    out = run(list(range(10)), steps, None, lanes=lanes)
    assert [o.id if isinstance(o, Problem) else o[0] for o in out] == list(range(10))
    assert out[3] == Problem(3, "cannot decode") and out[5] == Problem(5, "model failed")
    assert out[0] == (0, "image 0", [0]) and out[9] == (9, "image 9", [90])
    # the model sees each decoded image once (what failed to decode left out)
    assert sorted(steps.calls) == [i for i in range(10) if i != 3]


def test_lanes_work_side_by_side_off_the_callers_thread():
    class Slow(Steps):
        def __init__(self):
            super().__init__()
            self.busy = self.most_busy = 0

        def model(self, item, prepared):
            with self.lock:
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
            time.sleep(0.01)
            with self.lock:
                self.busy -= 1
            return super().model(item, prepared)

    steps = Slow()
    run(list(range(20)), steps, None, lanes=2)
    assert threading.get_ident() not in steps.model_threads | steps.helper_threads
    assert len(steps.model_threads) == 2 and steps.most_busy == 2


@pytest.mark.parametrize("lanes,ahead", [(1, 1), (2, 2), (2, 8), (4, None)])
def test_images_in_flight_stay_bounded_and_items_are_read_as_needed(lanes, ahead):
    steps = Steps()
    read = []

    def items():
        for i in range(200):
            read.append(i)
            yield i

    for k, (item, _) in enumerate(detect_flow.stream(items(), steps, None, lanes=lanes, ahead=ahead)):
        assert item == k and len(read) <= k + (ahead or 4 * lanes)
    assert steps.most_alive <= lanes


def test_a_stop_leaves_out_what_the_model_has_not_seen():
    stop = StopFlag()
    steps = Steps(stop_after=4, stop=stop)
    out = run(list(range(50)), steps, stop, lanes=2)
    # finished, in order: what the model saw (the other lane may have had one more in it);
    # the rest is left out, to be handed back
    assert [o[0] for o in out] == sorted(steps.modelled)
    assert 4 <= len(steps.modelled) <= 5 and max(steps.modelled) <= 5


def test_an_exception_in_a_lane_propagates_and_stops_the_lanes():
    class Boom(Steps):
        def model(self, item, prepared):
            if item == 2:
                raise KeyboardInterrupt
            return super().model(item, prepared)

    steps = Boom()
    with pytest.raises(KeyboardInterrupt):
        run(list(range(30)), steps, None)
    assert len(steps.modelled) < 30


@pytest.mark.parametrize("cores,threads,lanes", [(1, 0, 2), (2, 0, 2), (6, 0, 6), (64, 0, 8), (8, 2, 4), (2, 2, 2)])
def test_one_lane_per_core_or_per_model_threads_at_least_two(monkeypatch, cores, threads, lanes):
    from dataclasses import replace

    from app.config import load_settings
    from app.services import detect

    monkeypatch.setattr(detect.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert detect.lanes_for(replace(load_settings({}, env_file=None), model_threads=threads)) == lanes
