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
