"""Run inside the original platform's client environment (``kneo-client`` 1.2.0): call every
public method of ``KneoClient`` against the Kneo service at ``argv[1]`` and print one JSON
object, method name -> ``{"ok": bool, "detail": ...}``. The keys come from the environment
(``KNEO_OPERATOR_KEY``, ``KNEO_REVIEWER_KEY``, ``KNEO_ADMIN_KEY``).

Not a test by itself (the interpreter running it has no Kneo): the test that starts it reads
the JSON and asserts each method's outcome, so a method that raises here shows up there with
the client's own error text.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from kneo_client import KneoClient
from kneo_client.core.errors import KneoConflictError, KneoValidationError
from kneo_client.core.results import iterate_all

HUMAN_SPEC = "examples/smoke_human_workflow.yaml"
RESULTS: dict[str, dict[str, Any]] = {}
#: Kneo's terminal statuses (the seed contract's words: ``succeeded`` where the original says
#: ``completed``), passed where the client's default set has the original's
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "expired"}


async def record(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call``; keep whether it raised and a short detail of what it returned."""
    started = time.perf_counter()
    try:
        value = await call()
    except Exception as exc:  # every failure is a result to report, not a crash
        RESULTS[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:600]}
        RESULTS[name]["trace"] = traceback.format_exc()[-1200:]
        return None
    RESULTS[name] = {"ok": True, "detail": summary(value)}
    RESULTS[name]["seconds"] = round(time.perf_counter() - started, 3)
    return value


def summary(value: Any) -> Any:
    """A JSON-able glimpse of a client answer (its dict form, else its repr)."""
    if hasattr(value, "items") and hasattr(value, "has_more"):  # a Page
        items = [summary(item) for item in value.items]
        value = {"count": value.count, "total": value.total, "items": items}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        value = to_dict()
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)[:400]


def client(url: str, key: str, scheme: str = "bearer") -> KneoClient:
    return KneoClient.from_profile(url=url, api_key=key, auth_scheme=scheme, timeout=60.0)


async def platform(url: str) -> None:
    """Health, runs, human tasks, audit, credentials and policies."""
    operator = client(url, os.environ["KNEO_OPERATOR_KEY"], "kneo_api_key")
    reviewer = client(url, os.environ["KNEO_REVIEWER_KEY"])
    admin = client(url, os.environ["KNEO_ADMIN_KEY"])
    async with operator, reviewer, admin:
        op, rv = operator.platform, reviewer.platform
        for probe in ("healthz", "livez", "readyz"):
            await record(f"health.{probe}", getattr(op.health, probe))
        body = {"spec_path": HUMAN_SPEC, "input": "draft the note", "session_id": "sess-1"}
        paused = await record("runs.create", lambda: op.runs.create(body))
        run_id = paused.run_id if paused is not None else "missing"
        await record("runs.get", lambda: op.runs.get(run_id))
        await record("runs.list", lambda: op.runs.list(session_id="sess-1", has_error=False))
        await record("runs.trace", lambda: op.runs.trace(run_id))
        await record("runs.replay", lambda: op.runs.replay(run_id))
        await record("runs.checkpoints", lambda: op.runs.checkpoints(run_id))
        await record("runs.checkpoints_diff", lambda: op.runs.checkpoints_diff(run_id))
        await record("runs.policy_report", lambda: op.runs.policy_report(run_id))
        await record("runs.recovery", lambda: op.runs.recovery(run_id))
        await record("runs.graph", lambda: op.runs.graph(run_id))
        tasks = await record("human_tasks.list", lambda: rv.human_tasks.list(run_id=run_id))
        task = tasks.items[0].to_dict() if tasks is not None and tasks.count else {}
        cid = task.get("continuation_id", "missing")
        request_id = (task.get("requests") or [{}])[0].get("request_id")
        decision = {"request_id": request_id, "decision": "approved"}
        await record("human_tasks.get", lambda: rv.human_tasks.get(cid))
        await record("human_tasks.resume_by_id", lambda: rv.human_tasks.resume_by_id(cid, decision))
        await record("runs.wait_for_completion", lambda: op.runs.wait_for_completion(run_id, timeout=30, terminal_statuses=TERMINAL, poll_interval=0.1))  # fmt: skip
        await record("runs.tail_trace", lambda: tail(op, run_id))
        await second_run(op, rv)
        await record("iterate_all", lambda: collect(op.runs))
        await record("refused", lambda: refused(op))
        await record("audit.list", lambda: op.audit.list(run_id=run_id, sort_by="created_at"))
        await record("credentials.list", lambda: admin.platform.credentials.list())
        policy = {"require_human_review": True, "blocked_diagnostic_codes": ["W_TOOL"]}
        await record(
            "policies.environment_put",
            lambda: admin.platform.policies.environment_put("dev", policy),
        )
        await record(
            "policies.environment_get", lambda: admin.platform.policies.environment_get("dev")
        )
        await record(
            "policies.environment_list", lambda: admin.platform.policies.environment_list()
        )
        await record("policies.environment_preview", lambda: admin.platform.policies.environment_preview("dev", policy))  # fmt: skip


async def second_run(op: Any, rv: Any) -> None:
    """resume, resume_first_pending, continue_ and cancel, each on a run of its own."""
    body = {"spec_path": HUMAN_SPEC, "input": "second", "session_id": "sess-1"}
    first = await op.runs.create(body)
    task = (await rv.human_tasks.list(run_id=first.run_id)).items[0].to_dict()
    decision = {"request_id": task["requests"][0]["request_id"], "decision": "approved"}
    await record(
        "human_tasks.resume", lambda: rv.human_tasks.resume(task["continuation_id"], decision)
    )
    other = await op.runs.create(body)
    task = (await rv.human_tasks.list(run_id=other.run_id)).items[0].to_dict()
    decision = {"request_id": task["requests"][0]["request_id"], "decision": "approved"}
    await record("human_tasks.resume_first_pending", lambda: rv.human_tasks.resume_first_pending(decision, run_id=other.run_id))  # fmt: skip
    third = await op.runs.create(body)
    # a paused run goes on by its decision: continuing it is the contract's 409, typed
    await record("runs.continue_", lambda: conflict(op.runs.continue_(third.run_id)))
    await record("runs.cancel", lambda: op.runs.cancel(third.run_id))


async def conflict(call: Awaitable[Any]) -> str:
    """The typed 409 the client raises, as the method's successful outcome."""
    try:
        await call
    except KneoConflictError as error:
        return f"conflict: {error}"
    raise AssertionError("continuing a paused run was not refused")


async def refused(op: Any) -> list[str]:
    """The codes of list calls naming a filter the route does not take."""
    codes = []
    for call in (
        lambda: op._t.request("GET", "/v1/audit-events", params={"actor": "nobody"}),
        lambda: op._t.request("GET", "/v1/human-tasks", params={"priority": "high"}),
        lambda: op._t.request("GET", "/v1/runs", params={"has_errors": "true"}),
    ):
        try:
            await call()
        except KneoValidationError as error:
            codes.append(str(getattr(error, "code", "")))
    return codes


async def collect(runs: Any) -> int:
    """Every run, walked two at a time by ``offset`` as ``iterate_all`` walks."""

    async def page(limit: int, offset: int) -> Any:
        return await runs.list(limit=limit, offset=offset)

    seen = 0
    async for _ in iterate_all(page, page_size=2):
        seen += 1
    return seen


async def tail(op: Any, run_id: str) -> int:
    events = op.runs.tail_trace(run_id, poll_interval=0.1, terminal_statuses=TERMINAL)
    return len([event async for event in events])


async def agent(url: str) -> None:
    """Specs and skills, the studio's surface."""
    async with client(url, os.environ["KNEO_OPERATOR_KEY"]) as operator:
        specs = operator.agent.specs
        doc = {"spec_path": HUMAN_SPEC}
        await record("specs.validate", lambda: specs.validate(doc))
        await record("specs.compile", lambda: specs.compile({**doc, "strict": True}))
        await record("specs.explain", lambda: specs.explain(doc))
        await record("specs.graph", lambda: specs.graph(doc))
        await record("specs.policy_report", lambda: specs.policy_report(doc))
        await record("specs.validate_then_compile", lambda: specs.validate_then_compile(doc))
        await record("specs.dry_run", lambda: specs.dry_run(doc))
        run = {"spec_path": HUMAN_SPEC, "input": "from the studio", "session_id": "studio"}
        await record("specs.run", lambda: specs.run(run))
        await record("skills.list", lambda: operator.agent.skills.list())


def surface() -> list[str]:
    """Every public method of the client's sub-clients (``runs.list``, ``specs.compile``...),
    read from the installed package: what this driver must call."""
    names = []
    client_ = client("http://127.0.0.1:9", "unused-key")
    for area in (client_.platform, client_.agent):
        for sub_name, sub in vars(area).items():
            if sub_name.startswith("_"):
                continue
            for name in dir(type(sub)):
                if not name.startswith("_") and callable(getattr(sub, name)):
                    names.append(f"{sub_name}.{name}")
    return sorted(names)


async def main(url: str) -> None:
    await platform(url)
    await agent(url)
    print(json.dumps({"results": RESULTS, "surface": surface()}, default=str))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
