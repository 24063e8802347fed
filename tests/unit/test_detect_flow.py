"""The detection stage's two-thread pipeline (app/services/detect_flow.py): outcomes in
order, failures per item, bounded images in flight, a stop request, helper-thread steps."""
import threading

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

    def model(self, items, prepared):
        self.model_threads.add(threading.get_ident())
        self.calls.append(list(items))
        return [self._one(item) for item in items]

    def _one(self, item):
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


@pytest.mark.parametrize("batch", [1, 4])
def test_outcomes_come_back_in_order_with_failures_per_item(batch):
    steps = Steps(fail_prepare={3}, fail_model={5})
    out = detect_flow.run(list(range(10)), steps, None, batch=batch)
    assert [o.id if isinstance(o, Problem) else o[0] for o in out] == list(range(10))
    assert out[3] == Problem(3, "cannot decode") and out[5] == Problem(5, "model failed")
    assert out[0] == (0, "image 0", [0]) and out[9] == (9, "image 9", [90])
    # the model sees the decoded images in order, `batch` at a time (what failed to decode left out)
    assert [i for c in steps.calls for i in c] == [i for i in range(10) if i != 3]
    assert all(len(c) <= batch for c in steps.calls) and len(steps.calls[0]) == batch


def test_model_runs_on_the_callers_thread_and_the_rest_on_one_helper():
    steps = Steps()
    detect_flow.run(list(range(20)), steps, None)
    assert steps.model_threads == {threading.get_ident()}
    assert len(steps.helper_threads) == 1 and threading.get_ident() not in steps.helper_threads


@pytest.mark.parametrize("depth,batch", [(1, 1), (2, 1), (4, 1), (2, 8)])
def test_images_in_flight_stay_bounded(depth, batch):
    steps = Steps()
    detect_flow.run(list(range(200)), steps, None, depth=depth, batch=batch)
    assert steps.most_alive <= 2 * depth + 3 * batch


def test_a_stop_leaves_out_what_the_model_has_not_seen():
    stop = StopFlag()
    steps = Steps(stop_after=4, stop=stop)
    out = detect_flow.run(list(range(50)), steps, stop)
    assert [o[0] for o in out] == [0, 1, 2, 3]  # finished, in order; the rest is handed back
    assert steps.modelled == [0, 1, 2, 3]


def test_an_exception_on_the_model_thread_propagates_and_stops_the_helper():
    class Boom(Steps):
        def model(self, items, prepared):
            if 2 in items:
                raise KeyboardInterrupt
            return super().model(items, prepared)

    with pytest.raises(KeyboardInterrupt):
        detect_flow.run(list(range(30)), Boom(), None)
