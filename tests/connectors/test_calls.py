import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from typing import Any

import pytest

from connectors.calls import Interrupted, Lane, Stopped
from connectors.errors import CallTimeout, FatalError, RetriableError
from tests.integration.fixtures import wait_for

NEVER = threading.Event()  # a stop flag never set


@pytest.fixture
def lane() -> Iterator[Lane]:
    lane = Lane("lane-test")
    yield lane
    lane.close()


def calling(lane: Lane, fn: Callable[[], Any], timeout_s: float = 5) -> Callable[..., Any]:
    """A task that makes one call of ``fn``: what it returns, or how it was interrupted."""

    def task(interrupted: Interrupted | None) -> Any:
        if interrupted is not None:
            return interrupted
        return lane.call(fn, timeout_s, NEVER)

    return task


def test_a_task_and_its_call_run_on_one_thread_of_the_systems_own(lane: Lane) -> None:
    def task(interrupted: Interrupted | None) -> tuple[threading.Thread, threading.Thread]:
        return threading.current_thread(), lane.call(threading.current_thread, 5, NEVER)

    runs_on, called_on = lane.submit(task).result(5)
    assert runs_on is called_on and runs_on.name == "lane-test"
    assert runs_on is not threading.current_thread()


def test_a_connector_error_reaches_the_task(lane: Lane) -> None:
    def refuse() -> None:
        raise FatalError("no")

    with pytest.raises(FatalError, match="no"):
        lane.submit(calling(lane, refuse)).result(5)


def test_a_call_is_only_made_from_a_task_of_the_lane(lane: Lane) -> None:
    with pytest.raises(RuntimeError, match="the lane's own tasks"):
        lane.call(lambda: 1, 5, NEVER)


def test_a_hung_call_is_abandoned_and_its_task_carries_on_on_a_fresh_thread(lane: Lane) -> None:
    release = threading.Event()
    stuck: list[threading.Thread] = []
    after: list[str] = []

    def hang() -> None:
        stuck.append(threading.current_thread())
        release.wait(30)
        after.append("returned")

    def task(interrupted: Interrupted | None) -> Any:
        if interrupted is not None:
            return interrupted, threading.current_thread()
        lane.call(hang, 0.3, NEVER)
        after.append("went on")  # never: this thread's task carried on without it
        return "the hung thread's answer"

    started = time.monotonic()
    interrupted, carried_on = lane.submit(task).result(5)
    assert 0.3 <= time.monotonic() - started < 2
    assert interrupted.calls == 1 and 0.3 <= interrupted.seconds < 2
    assert isinstance(interrupted.error, CallTimeout)
    assert "did not answer within 0.3s" in str(interrupted.error)
    [hung] = stuck
    assert carried_on is not hung and carried_on.name == "lane-test"
    # the next task is not queued behind the hung call
    assert lane.submit(calling(lane, lambda: 42)).result(5) == 42
    assert lane.abandoned == 1
    assert hung.is_alive() and hung.daemon  # left behind, and no obstacle to exiting
    release.set()
    hung.join(5)
    assert not hung.is_alive() and after == ["returned"]  # it ends once its call returns


def test_a_stop_abandons_the_call_at_once(lane: Lane) -> None:
    stop, release = threading.Event(), threading.Event()

    def task(interrupted: Interrupted | None) -> Any:
        if interrupted is not None:
            return interrupted
        return lane.call(lambda: release.wait(30), 60, stop)

    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    interrupted = lane.submit(task).result(5)
    assert time.monotonic() - started < 2
    assert isinstance(interrupted.error, Stopped)
    release.set()


def test_a_call_timeout_is_retriable() -> None:
    assert issubclass(CallTimeout, RetriableError) and CallTimeout.code == "timeout"


def test_a_systems_tasks_run_side_by_side_up_to_its_size() -> None:
    lane = Lane("lane-wide", size=3)
    inside, most, lock = 0, 0, threading.Lock()
    all_in = threading.Barrier(3, timeout=10)

    def work() -> int:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        all_in.wait()  # only passes when three calls are running at once
        with lock:
            inside -= 1
        return 1

    # six tasks: two rounds of three at once; more than three never run together
    futures = [lane.submit(calling(lane, work, 10)) for _ in range(6)]
    assert [f.result(15) for f in futures] == [1] * 6
    assert most == 3 and all_in.n_waiting == 0 and not all_in.broken
    lane.close()


def test_a_task_queued_behind_a_hung_call_runs_once_that_call_is_abandoned() -> None:
    lane = Lane("lane-one", size=1)
    release, ran = threading.Event(), threading.Event()
    blocked = lane.submit(calling(lane, lambda: release.wait(30), 0.3))
    queued = lane.submit(calling(lane, ran.set))
    assert isinstance(blocked.result(5).error, CallTimeout)
    queued.result(5)
    assert ran.is_set()
    release.set()
    lane.close()


def test_a_call_that_returns_as_it_is_abandoned_answers_its_task_once() -> None:
    """Calls whose time is up as they return: each task is answered exactly once, by its
    call or by its carrying on, never by both (a future set twice raises)."""
    lane = Lane("lane-race", size=4)
    release = threading.Event()  # calls hang until twenty have been abandoned
    errors: list[BaseException] = []
    hook, threading.excepthook = threading.excepthook, lambda a: errors.append(a.exc_value)
    try:
        futures = [
            lane.submit(calling(lane, lambda: release.wait(30) and "answered", 0.001))
            for _ in range(200)
        ]
        wait_for("twenty calls abandoned", lambda: lane.abandoned >= 20)
        release.set()  # the hung calls return as the others are abandoned or answer
        done, _ = wait(futures, timeout=30)
        lane.close()
    finally:
        threading.excepthook = hook
    assert len(done) == 200 and not errors
    outcomes = [f.result() for f in futures]
    assert all(o == "answered" or isinstance(o, Interrupted) for o in outcomes)
    assert lane.abandoned == sum(isinstance(o, Interrupted) for o in outcomes) >= 20


def test_close_waits_for_the_tasks_queued() -> None:
    lane = Lane("lane-close", size=2)
    release = threading.Event()

    def task(i: int) -> int:
        if i == 0:
            release.wait(30)  # the first task waits for the last one
        if i == 9:
            release.set()
        return i

    futures = [lane.submit(calling(lane, lambda i=i: task(i))) for i in range(10)]
    lane.close()
    assert all(f.done() for f in futures) and [f.result() for f in futures] == list(range(10))
