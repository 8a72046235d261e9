"""The run slot: one executing run at a time on SQLite, waits bounded by its patience."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kneo.platform import create_platform
from kneo.platform.slot import SQLITE_PATIENCE, RunSlot, default_patience
from kneo.settings import Settings

WAIT = 10.0  # generous bound for events in a loaded CI machine; never reached when correct


def _thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_second_run_waits_for_the_first() -> None:
    slot = RunSlot(patience=WAIT)
    order: list[str] = []
    first_in, first_may_leave = threading.Event(), threading.Event()

    def first() -> None:
        with slot.hold():
            order.append("first in")
            first_in.set()
            first_may_leave.wait(WAIT)
            order.append("first out")

    def second() -> None:
        with slot.hold():
            order.append("second in")

    one = _thread(first)
    assert first_in.wait(WAIT)
    two = _thread(second)
    two.join(0.2)
    assert two.is_alive()  # waiting for the slot
    first_may_leave.set()
    one.join(WAIT)
    two.join(WAIT)
    assert order == ["first in", "first out", "second in"]


def test_the_slot_goes_to_the_longest_waiting_run() -> None:
    slot = RunSlot(patience=WAIT)
    order: list[str] = []

    def run(name: str) -> Callable[[], None]:
        def body() -> None:
            with slot.hold():
                order.append(name)

        return body

    def queued(count: int) -> bool:
        deadline = time.monotonic() + WAIT
        while len(slot._waiting) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        return len(slot._waiting) == count

    with slot.hold():
        threads = []
        for index, name in enumerate(["b", "c", "d"]):
            threads.append(_thread(run(name)))
            assert queued(index + 1)
        order.append("a")
    for thread in threads:
        thread.join(WAIT)
    assert order == ["a", "b", "c", "d"]


def test_a_holder_past_patience_loses_the_slot_and_rejoins_after() -> None:
    """A run stuck in a step (here: waiting on an event) does not stall the others: the
    waiter goes ahead after ``patience``; at its next step boundary the stuck run waits for
    its turn again."""
    slot = RunSlot(patience=1.0)
    order: list[str] = []
    stuck_in, second_in, rejoining = (threading.Event() for _ in range(3))

    def stuck() -> None:
        with slot.hold():
            stuck_in.set()
            assert second_in.wait(WAIT)  # the other run got in while this one held it
            order.append("stuck step done")
            rejoining.set()
            slot.rejoin()  # its next step boundary: wait for the other run
            order.append("stuck rejoined")

    def second() -> None:
        with slot.hold():
            order.append("second in")
            second_in.set()
            assert rejoining.wait(WAIT)
            time.sleep(0.05)  # well within patience: the stuck run is still waiting
            order.append("second out")

    one = _thread(stuck)
    assert stuck_in.wait(WAIT)
    two = _thread(second)
    one.join(WAIT)
    two.join(WAIT)
    assert order == ["second in", "stuck step done", "second out", "stuck rejoined"]


def test_a_wait_that_runs_out_as_the_slot_is_handed_over_and_taken_again_goes_ahead() -> None:
    """The race under load: a waiter's wait runs out; before it gets the lock, the holder
    hands it the slot and a third run whose own wait ran out takes it. The waiter must go
    ahead, not fail (it raised ``ValueError`` from the queue: a 500 on ``POST /v1/runs``)."""
    slot = RunSlot(patience=0.05)
    errors: list[BaseException] = []
    slot._take()  # this thread holds the slot

    def waiter() -> None:
        try:
            slot._take()
        except BaseException as exc:  # pragma: no cover - the bug
            errors.append(exc)

    with slot._lock:
        runner = _thread(waiter)
        deadline = time.monotonic() + WAIT
        while not slot._waiting and time.monotonic() < deadline:
            slot._lock.release()  # let the waiter queue up
            time.sleep(0.005)
            slot._lock.acquire()
        assert slot._waiting
        time.sleep(0.2)  # past patience: the waiter now waits for this lock
        slot._holder, turn = slot._waiting.popleft()  # the holder hands it over ...
        turn.set()
        slot._holder = -1  # ... and a run whose wait ran out takes it
    runner.join(WAIT)
    assert not runner.is_alive() and errors == []


def test_nested_runs_share_the_slot_and_other_threads_do_not_rejoin() -> None:
    slot = RunSlot(patience=WAIT)
    with slot.hold():
        with slot.hold():  # a run started by a run's step, same thread: no wait
            pass
        branch = _thread(slot.rejoin)  # a branch thread is no run in the slot: no wait
        branch.join(WAIT)
        assert not branch.is_alive()
        waiter = _thread(lambda: slot.hold().__enter__())
        waiter.join(0.2)
        assert waiter.is_alive()  # still held after the nested run ended
    waiter.join(WAIT)
    assert not waiter.is_alive()


def test_no_slot_when_patience_is_zero() -> None:
    slot = RunSlot(patience=0)
    entered = threading.Event()

    def enter() -> None:
        with slot.hold():
            entered.set()

    with slot.hold():
        _thread(enter)
        assert entered.wait(WAIT)


@pytest.mark.parametrize(
    ("backend", "configured", "expected"),
    [
        ("sqlite", None, SQLITE_PATIENCE),
        ("postgresql", None, 0.0),
        ("sqlite", 0, 0.0),
        ("postgresql", 50, 0.05),
    ],
)
def test_patience_by_backend_and_setting(
    backend: str, configured: int | None, expected: float
) -> None:
    assert default_patience(backend, configured) == expected


def test_setting_read_from_the_environment() -> None:
    assert Settings.from_env({}).run_slot_ms is None
    assert Settings.from_env({"KNEO_SERV_RUN_SLOT_MS": "0"}).run_slot_ms == 0


def test_concurrent_runs_on_sqlite_all_finish(tmp_path: Path) -> None:
    """Runs started on several threads at once, through the slot, each finish whole."""
    spec = tmp_path / "steps.yaml"
    spec.write_text(
        "version: v1\n"
        "workflow:\n"
        "  type: sequential\n"
        "  name: slot-steps\n"
        "  steps:\n"
        "    - {id: a, kind: function, ref: examples.human_functions:draft_report}\n"
        "    - {id: b, kind: function, ref: examples.human_functions:publish_report}\n"
    )
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"})
    manager = create_platform(settings)
    assert manager.driver.slot.patience == SQLITE_PATIENCE
    results: list[str] = []

    def work() -> None:
        for n in range(10):
            result = manager.run_from_spec(input_text=f"topic {n}", spec_path=spec)
            results.append(result.status)

    threads = [_thread(work) for _ in range(4)]
    for thread in threads:
        thread.join(60)
    manager.store.close()
    assert results == ["succeeded"] * 40


def test_a_holder_lets_others_go_while_it_waits_on_the_network() -> None:
    slot = RunSlot(patience=WAIT)
    order: list[str] = []
    other_done = threading.Event()

    def other() -> None:
        with slot.hold():
            order.append("other ran")
        other_done.set()

    with slot.hold():
        with slot.released():  # a model call: the waiting run goes at once, not after patience
            _thread(other)
            assert other_done.wait(WAIT)
        order.append("holder back")
    assert order == ["other ran", "holder back"]


def test_agent_runs_give_the_slot_up_during_model_calls(tmp_path: Path) -> None:
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"})
    manager = create_platform(settings)
    slot = manager.driver.slot
    holders: list[int | None] = []
    release = slot.released

    @contextlib.contextmanager
    def spy() -> Iterator[None]:
        with release():
            holders.append(slot._holder)
            yield

    slot.released = spy  # type: ignore[method-assign]
    spec = {
        "version": "v1",
        "agent": {
            "name": "answerer",
            "system_prompt": "Answer.",
            "model": {
                "provider": "dummy",
                "name": "dummy",
                "script": [{"text": "first"}],
            },
        },
    }
    result = manager.run_from_spec(input_text="question", spec=spec, target="agent")
    manager.store.close()
    assert result.status == "succeeded", result
    assert holders == [None]  # nobody held the slot while the model answered


def test_the_engine_knows_nothing_of_the_slot() -> None:
    """The slot is the platform's: it wraps the providers and journal it injects, so no
    engine module (nor ``WorkflowEngine.run``'s signature) names a slot or a wait hook."""
    import inspect

    import kneo.engine
    from kneo.engine.executor import WorkflowEngine

    root = Path(kneo.engine.__file__).parent
    named = [
        path.relative_to(root)
        for path in root.rglob("*.py")
        if "slot" in path.read_text().replace("__slots__", "").lower()
    ]
    assert named == []
    assert set(inspect.signature(WorkflowEngine.run).parameters) == {
        "self",
        "workflow",
        "state",
        "journal",
        "run_id",
        "cancellation",
        "metadata",
        "access",
    }
