"""The answer to a decision or a continue: the run's outcome (``200``, the synchronous body
the seed's clients read), wherever the run goes on, as soon as it pauses or ends; or the run
as handed to the workers (``202`` and its ``Location``) when the caller asks for that (RFC
7240 ``Prefer: respond-async``) or the wait is over: the caller's ``Prefer: wait=N``, else
``KNEO_SERV_DECISION_WAIT_SECONDS`` (30), at most ``KNEO_SERV_MAX_WAIT_SECONDS``.

Where no workers exist the platform drove the run in the request and its outcome is the
answer. Where they do (:mod:`kneo.platform.handoff`) the run is ``running`` on a worker when
the platform returns; the wait holds no request thread: it reads the stored run when the
worker that drives it says it moved (:mod:`kneo.store.coordination.wakeups`: in this process
at once, from another by ``NOTIFY`` on PostgreSQL) and, should a wake-up be lost, at a
backing-off poll; the answer is then that run's ``200`` body, exactly as if the request had
driven it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kneo.platform.handoff import settled
from kneo.platform.results import RunResult
from kneo.redaction import shows_personal_data
from kneo.service.dependencies import Caller
from kneo.setting_groups import Limits

#: how often a waiting request reads the run when no wake-up comes (one lost, SQLite across
#: processes): after this at first, doubling to :data:`MAX_POLL_SECONDS`
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5

#: The OpenAPI of a route whose run may continue on a worker: its ``202`` answer (with
#: ``Location``) and its ``Prefer`` header.
HANDED_OFF: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Recorded; the run continues on a worker (read it at Location)",
        "headers": {
            "Location": {
                "description": "The run: GET /v1/runs/{run_id}",
                "schema": {"type": "string"},
            },
            "Preference-Applied": {
                "description": "respond-async, when the caller asked for it",
                "schema": {"type": "string"},
            },
        },
    }
}
PREFER_WAIT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": "RFC 7240. Where the run continues on a worker the answer is its "
            "outcome (200) once it pauses or ends, within wait=N seconds if given (at most "
            "KNEO_SERV_MAX_WAIT_SECONDS), else KNEO_SERV_DECISION_WAIT_SECONDS (30); 202 "
            "when they are over, or at once with respond-async (and no wait)",
            "schema": {"type": "string", "examples": ["wait=30", "respond-async"]},
        }
    ]
}


def _preferences(request: Request) -> list[tuple[str, str | None]]:
    """Each preference of the request's ``Prefer`` headers as (lower-cased name, value or
    ``None``), parameters after ``;`` dropped (RFC 7240)."""
    found: list[tuple[str, str | None]] = []
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            name, equals, value = preference.split(";", 1)[0].partition("=")
            found.append((name.strip().lower(), value.strip() if equals else None))
    return found


def respond_async(request: Request) -> bool:
    """Whether the caller prefers an asynchronous answer (``Prefer: respond-async``)."""
    return any(name == "respond-async" for name, _ in _preferences(request))


def answer_wait(request: Request) -> int:
    """How long a handed-off decision or continue waits for its run before ``202``: the
    caller's ``wait``; else none with ``respond-async``; else the service's
    ``decision_wait_seconds``; never over ``max_wait_seconds``."""
    limits: Limits = request.app.state.settings.limits
    wait = preferred_wait(request)
    if wait is None:
        wait = 0 if respond_async(request) else limits.decision_wait_seconds
    return max(0, min(wait, limits.max_wait_seconds))


def preferred_wait(request: Request) -> int | None:
    """The seconds of the first ``wait`` preference in the request's ``Prefer`` headers
    (RFC 7240: ``wait=<delta-seconds>``, names in any case, other preferences and parameters
    ignored), or ``None``. A malformed value is ignored, as the RFC asks of a preference the
    server does not understand."""
    for name, value in _preferences(request):
        if name != "wait" or value is None:
            continue
        digits = value.strip('"')
        if digits.isascii() and digits.isdigit():
            return int(digits[:9])
    return None


def run_location(run_id: str) -> str:
    """Where the run is read (``GET /v1/runs/{id}``): the ``Location`` of a ``202``."""
    return f"/v1/runs/{quote(run_id, safe=':')}"


async def continuation_answer(request: Request, caller: Caller, result: RunResult) -> JSONResponse:
    """``200`` with the run's outcome, or for a run handed to the workers ``202`` with its
    state and ``Location`` once :func:`answer_wait` is over without one.
    ``Idempotent-Replayed: true`` on a replay either way."""
    show = shows_personal_data(caller.principal.scopes)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    if result.handed_off and not settled(result.status):
        wait = answer_wait(request)
        if wait > 0:
            result = await _wait(caller, result, wait)
    if result.handed_off and not settled(result.status):
        headers["Location"] = run_location(result.run_id)
        if respond_async(request):
            headers["Preference-Applied"] = "respond-async"
        return JSONResponse(result.to_dict(show_personal=show), status_code=202, headers=headers)
    return JSONResponse(result.to_dict(show_personal=show), status_code=200, headers=headers)


async def _wait(caller: Caller, result: RunResult, seconds: float) -> RunResult:
    """The run once it pauses or ends, else as it is after ``seconds`` (still
    ``handed_off``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    interval = FIRST_POLL_SECONDS
    moved = asyncio.Event()
    told: list[RunResult] = []  # the outcome the worker of this process drove the run to
    wakeups = caller.manager.store.wakeups
    wakeups.start()  # (once per process: other processes' wake-ups on PostgreSQL)

    def wake(outcome: object) -> None:  # on the thread that committed the move
        if isinstance(outcome, RunResult) and outcome.run_id == result.run_id:
            told.append(outcome)
        loop.call_soon_threadsafe(moved.set)

    stop = wakeups.watch(result.run_id, wake)
    try:  # read when the worker says the run moved (else after a backing-off interval)
        while True:
            left = deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), timeout=max(0.0, min(interval, left)))
            moved.clear()
            if told and settled(told[-1].status):  # what the request would have answered
                return replace(told[-1], replayed=result.replayed, handed_off=True)
            current = await run_in_threadpool(caller.manager.get_run_result, result.run_id)
            if settled(current.status) or loop.time() >= deadline:
                return replace(current, replayed=result.replayed, handed_off=True)
            interval = min(MAX_POLL_SECONDS, interval * 2)
    finally:
        stop()
