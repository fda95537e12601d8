import threading
import time

import pytest

from connectors.calls import CallThread, Stopped
from connectors.errors import CallTimeout, FatalError, RetriableError


@pytest.fixture
def calls() -> CallThread:
    return CallThread("call-test")


def test_a_call_runs_on_the_systems_own_thread(calls: CallThread) -> None:
    assert calls.call(lambda: threading.current_thread().name, 5, threading.Event()) == "call-test"


def test_a_connector_error_reaches_the_caller(calls: CallThread) -> None:
    def refuse() -> None:
        raise FatalError("no")

    with pytest.raises(FatalError, match="no"):
        calls.call(refuse, 5, threading.Event())


def test_a_hung_call_times_out_and_the_next_call_gets_a_fresh_thread(calls: CallThread) -> None:
    release = threading.Event()
    stuck: list[threading.Thread] = []

    def hang() -> None:
        stuck.append(threading.current_thread())
        release.wait(30)

    started = time.monotonic()
    with pytest.raises(CallTimeout, match="did not answer within 0.3s"):
        calls.call(hang, 0.3, threading.Event())
    assert 0.3 <= time.monotonic() - started < 2
    assert calls.call(lambda: 42, 5, threading.Event()) == 42  # not queued behind the hung call
    assert calls.abandoned == 1
    [hung] = stuck
    assert hung.is_alive() and hung.daemon  # left behind, and no obstacle to exiting
    release.set()
    hung.join(5)
    assert not hung.is_alive()  # it exits once its call returns
    calls.close()


def test_a_stop_abandons_the_call_at_once(calls: CallThread) -> None:
    stop, release = threading.Event(), threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        calls.call(lambda: release.wait(30), 60, stop)
    assert time.monotonic() - started < 2
    release.set()


def test_a_call_timeout_is_retriable() -> None:
    assert issubclass(CallTimeout, RetriableError) and CallTimeout.code == "timeout"


def test_a_systems_calls_run_side_by_side_up_to_its_size() -> None:
    calls = CallThread("call-wide", size=3)
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

    # six calls: two rounds of three at once; more than three never run together
    callers = [
        threading.Thread(target=calls.call, args=(work, 10, threading.Event())) for _ in range(6)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join(15)
    assert most == 3 and all_in.n_waiting == 0 and not all_in.broken
    calls.close()


def test_a_call_abandoned_before_it_ran_never_runs() -> None:
    calls = CallThread("call-one", size=1)
    release, ran = threading.Event(), threading.Event()
    blocker = threading.Thread(
        target=calls.call, args=(lambda: release.wait(30), 30, threading.Event())
    )
    blocker.start()
    with pytest.raises(CallTimeout):
        calls.call(ran.set, 0.3, threading.Event())  # queued behind the blocker, then given up
    release.set()
    blocker.join(5)
    assert calls.call(lambda: 7, 5, threading.Event()) == 7
    assert not ran.is_set()
    calls.close()
