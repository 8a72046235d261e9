"""PeriodicTask: housekeeping runs every interval, survives a failing call, stops on demand."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from kneo.periodic import PeriodicTask


def test_runs_repeatedly_survives_failures_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    third = threading.Event()

    def work() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        if len(calls) >= 3:
            third.set()

    logger = logging.getLogger("kneo_serv.test_periodic")
    with caplog.at_level(logging.ERROR, logger=logger.name):
        task = PeriodicTask("kneo-test", 0.01, work, logger=logger, failure="test work failed")
        assert third.wait(5)  # the failure did not end the loop
        task.stop()
    assert not task.is_alive()
    done = len(calls)
    time.sleep(0.05)
    assert len(calls) == done  # nothing runs after stop
    assert [r.getMessage() for r in caplog.records] == ["test work failed"]
    assert caplog.records[0].exc_info is not None


def test_keep_going_runs_again_at_once_while_work_remains() -> None:
    """``keep_going``: while a call reports more waiting it is called again without the
    interval's wait; once it reports none, the interval applies again."""
    backlog = [3]
    drained = threading.Event()
    calls: list[float] = []

    def work() -> bool:
        calls.append(time.monotonic())
        if backlog[0] == 0:
            drained.set()
            return False
        backlog[0] -= 1
        return True

    logger = logging.getLogger("kneo_serv.test_periodic")
    task = PeriodicTask("kneo-test", 0.5, work, logger=logger, failure="x", keep_going=True)
    try:
        assert drained.wait(5)
    finally:
        task.stop()
    assert len(calls) == 4  # the first after one interval, three more at once
    assert calls[-1] - calls[0] < 0.4  # none of them waited the 0.5 s interval
