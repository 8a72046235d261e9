"""The answer to a decision or a continue: the run's outcome, or the run as handed to the
workers (``202`` and its ``Location``), or that outcome after waiting as long as the caller
prefers (RFC 7240 ``Prefer: wait=N``, at most ``KNEO_SERV_MAX_WAIT_SECONDS``).

Where no workers exist the platform drove the run in the request and its outcome is the
answer (``200``, the synchronous body the seed's clients read). Where they do
(:mod:`kneo.platform.handoff`) the run is ``running`` on a worker when the platform returns;
waiting polls the stored run without holding a request thread, and stops as soon as the run
pauses or ends: the answer is then that run's ``200`` body, exactly as if the request had
driven it; a run still moving when the wait is over is ``202`` with its state so far.
"""

from __future__ import annotations

import asyncio
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

#: how often a waiting request reads the run: every 50 ms at first, doubling to this
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
            }
        },
    }
}
PREFER_WAIT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": "wait=N (RFC 7240): where the run continues on a worker, answer "
            "its outcome (200) if it pauses or ends within N seconds (at most "
            "KNEO_SERV_MAX_WAIT_SECONDS), else 202 when they are over",
            "schema": {"type": "string", "examples": ["wait=30"]},
        }
    ]
}


def preferred_wait(request: Request) -> int | None:
    """The seconds of the first ``wait`` preference in the request's ``Prefer`` headers
    (RFC 7240: ``wait=<delta-seconds>``, names in any case, other preferences and parameters
    ignored), or ``None``. A malformed value is ignored, as the RFC asks of a preference the
    server does not understand."""
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            token = preference.split(";", 1)[0]
            name, equals, value = token.partition("=")
            if name.strip().lower() != "wait" or not equals:
                continue
            digits = value.strip().strip('"')
            if digits.isascii() and digits.isdigit():
                return int(digits[:9])
    return None


def run_location(run_id: str) -> str:
    """Where the run is read (``GET /v1/runs/{id}``): the ``Location`` of a ``202``."""
    return f"/v1/runs/{quote(run_id, safe=':')}"


async def continuation_answer(request: Request, caller: Caller, result: RunResult) -> JSONResponse:
    """``200`` with the run's outcome, or for a run handed to the workers ``202`` with its
    state and ``Location`` after waiting up to the caller's ``Prefer: wait`` (bounded) for
    the outcome. ``Idempotent-Replayed: true`` on a replay either way."""
    show = shows_personal_data(caller.principal.scopes)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    if result.handed_off:
        limit = request.app.state.settings.limits.max_wait_seconds
        wait = min(preferred_wait(request) or 0, limit)
        if wait > 0:
            result = await _wait(caller, result, wait)
    if result.handed_off and not settled(result.status):
        headers["Location"] = run_location(result.run_id)
        return JSONResponse(result.to_dict(show_personal=show), status_code=202, headers=headers)
    return JSONResponse(result.to_dict(show_personal=show), status_code=200, headers=headers)


async def _wait(caller: Caller, result: RunResult, seconds: float) -> RunResult:
    """The run once it pauses or ends, else as it is after ``seconds`` (still
    ``handed_off``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    interval = 0.05
    while True:
        current = await run_in_threadpool(caller.manager.get_run_result, result.run_id)
        left = deadline - loop.time()
        if settled(current.status) or left <= 0:
            return replace(current, replayed=result.replayed, handed_off=True)
        await asyncio.sleep(min(interval, left))
        interval = min(MAX_POLL_SECONDS, interval * 2)
