"""A stop signal never deadlocks a process waiting on a ``threading.Event``.

The process below spends most of its time inside ``Event.wait`` holding the event's lock (a
zero timeout, in a loop): a handler that set the event itself hung it in 6 of 10 tries here.
Through :func:`kneo.cli.stop_signals.on_stop_signals` each of five tries stops at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAITER = """
import signal, sys, threading
sys.path.insert(0, sys.argv[1])
from kneo.cli.stop_signals import on_stop_signals
stopped = threading.Event()
on_stop_signals(stopped.set, signal.SIGTERM)
print("ready", flush=True)
while not stopped.wait(0):
    pass
print("stopped", flush=True)
"""


@pytest.mark.parametrize("attempt", range(5))
def test_sigterm_stops_a_process_inside_event_wait(attempt: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITER, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.05 * (attempt + 1))  # signalled at a different moment of its loop
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert out == "stopped\n"
    assert proc.returncode == 0
