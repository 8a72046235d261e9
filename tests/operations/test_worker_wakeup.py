"""The split shape wakes, not polls (PostgreSQL): a decision on an API-only replica queues the
run's continuation, and the ``NOTIFY`` of its commit wakes a worker in another store (another
process, as far as the database can tell). The worker polls only every ten minutes, so only
that wake-up can have started it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from kneo import Decision
from kneo.worker import Worker

from .helpers import open_manager, wait_for


def test_an_api_only_replicas_decision_wakes_a_worker_elsewhere_at_its_commit(
    project: Path, pg_database: Callable[[], str]
) -> None:
    url = pg_database()
    api = open_manager(project, url)
    api.handoff.enabled = True  # no worker of its own: an API-only replica
    worker_side = open_manager(project, url)
    worker = Worker(worker_side, poll_seconds=600)
    worker.start()
    heard = threading.Event()
    stop_hearing = worker_side.store.wakeups.on_queued(heard.set)
    try:
        # the worker's store listens (an empty wake-up of the API's reaches it), and its
        # first look at the queue found nothing: from here it waits out its poll
        wait_for(lambda: api.store.wakeups.queued() or heard.is_set(), 30, "the listener")
        stop_hearing()
        paused = api.run_from_spec(input_text="n1 go", spec_path=project / "human.yaml")
        assert paused.status == "paused"
        done = api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
        assert done.handed_off and done.status == "running"
        run_id = str(paused.run_id)
        wait_for(lambda: api.store.runs.get_run(run_id).status == "succeeded", 60, "the worker")
        claims = [
            event.payload or {}
            for event in api.store.runs.list_trace(run_id, limit=500).items
            if event.event_type == "run_claimed"
        ]
        assert [claim.get("owner") for claim in claims] == [worker_side.owner]
    finally:
        worker.stop(timeout=10)
        api.store.close()
        worker_side.store.close()
