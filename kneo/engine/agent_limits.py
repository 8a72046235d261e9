"""Per-agent limits (``token_budget``, ``rate_limit``), checked around each model call.

* ``token_budget.per_run`` — the tokens (input + output) this agent may use in one run,
  summed over all its units. Before a call at or over it: ``on_exceeded: fail`` fails the step
  (``budget_exceeded``); ``pause`` asks a person (a ``budget`` request): approving raises the
  limit by ``per_run``, providing ``{"limit": N}`` sets it, rejecting stops the run.
* ``token_budget.per_call`` — the tokens one model call may use. A reply over it: ``fail``
  fails the step at once; ``pause`` keeps the reply and asks a person before the next call
  (a final answer over it stands: there is no next call).
* ``rate_limit`` — model calls per minute, per agent (every run of this process that uses
  the agent's name) or per provider (its provider and ``base_url``). At the limit:
  ``on_exceeded: wait`` waits for the window to allow the call; ``fail`` fails the step.

The same checks guard every kind of agent's calls: Kneo's own loop (:mod:`kneo.engine.agent`),
a bridged framework's model calls (:mod:`kneo.engine.bridges`) and a remote agent's exchanges
(:mod:`kneo.engine.remote_agents`: each message sent is a call; its tokens count where the
remote reports them)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.engine.budgets import BudgetExceeded
from kneo.errors import ErrorCode, KneoError
from kneo.spec.models import AgentSpec

__all__ = ["RateLimited", "after_call", "before_call", "tokens_of"]

_WINDOW = 60.0


class RateLimited(KneoError):
    """An agent's ``rate_limit`` with ``on_exceeded: fail`` was reached."""

    code = ErrorCode.agent_rate_limited


class _Windows:
    """Call times per key over the last minute, for every run of this process."""

    def __init__(self) -> None:
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int, *, wait: bool, sleep: Callable[[float], None]) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                calls = self._calls.setdefault(key, deque())
                while calls and now - calls[0] >= _WINDOW:
                    calls.popleft()
                if len(calls) < limit:
                    calls.append(now)
                    return
                delay = _WINDOW - (now - calls[0])
            if not wait:
                raise RateLimited(
                    f"{key}: {limit} model calls per minute reached (rate_limit); the next is "
                    f"allowed in {delay:.1f}s",
                    limit=limit,
                    retry_after_seconds=round(delay, 1),
                )
            sleep(min(delay, 1.0))


WINDOWS = _Windows()


def tokens_of(usage: Mapping[str, int]) -> int:
    """Input plus output tokens of a usage (a reply's, the agent's in the run)."""
    return sum(v for k in ("input_tokens", "output_tokens") if isinstance(v := usage.get(k), int))


def rate_key(agent: AgentSpec) -> str:
    limit = agent.rate_limit
    assert limit is not None
    if limit.scope == "provider" and agent.remote is not None:  # the remote agent's server
        return f"remote {agent.remote.card_url}"
    if limit.scope == "provider":
        return f"provider {agent.model.provider} {agent.model.base_url or ''}".strip()
    return f"agent {agent.name!r}"


def before_call(
    agent: AgentSpec,
    record: Mapping[str, Any],
    run_tokens: int,
    decision: Callable[[str], Mapping[str, Any] | None],
    ask: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Before one of ``agent``'s model calls (``run_tokens``: what the agent used in the run
    so far; ``ask``: pause with a request)."""
    budget = agent.token_budget
    if budget is not None:
        over = record.get("over_call_budget")
        if over is not None and budget.on_exceeded == "pause":
            key = f"agent-budget:{agent.name}:call:{record.get('step_id')}:{over}"
            found = decision(key)
            if found is None:
                ask(_call_request(agent, key, int(record.get("over_call_tokens", 0))))
            elif found.get("decision") == "rejected":
                raise _stopped(agent, "per_call", budget.per_call or 0, found)
        if budget.per_run is not None and run_tokens >= budget.per_run:
            limit = _run_limit(agent, decision)
            if run_tokens >= limit:
                if budget.on_exceeded == "fail":
                    raise BudgetExceeded(
                        f"agent {agent.name!r} has used {run_tokens} of the {limit} tokens its "
                        "token_budget.per_run allows",
                        counter="tokens",
                        limit=limit,
                        used=run_tokens,
                        field="token_budget.per_run",
                    )
                ask(_run_request(agent, run_tokens, limit))
    if agent.rate_limit is not None:
        WINDOWS.take(
            rate_key(agent),
            agent.rate_limit.calls_per_minute,
            wait=agent.rate_limit.on_exceeded == "wait",
            sleep=sleep,
        )


def after_call(agent: AgentSpec, record: dict[str, Any], turn: int, tokens: int) -> None:
    """After a reply of ``tokens``: over ``per_call`` it fails the step (``fail``) or is
    marked for a person before the next call (``pause``). The caller holds the lock."""
    budget = agent.token_budget
    if budget is None or budget.per_call is None or tokens <= budget.per_call:
        return
    if budget.on_exceeded == "fail":
        raise BudgetExceeded(
            f"agent {agent.name!r}: one model call used {tokens} tokens, over its "
            f"token_budget.per_call of {budget.per_call}",
            counter="tokens",
            limit=budget.per_call,
            used=tokens,
            field="token_budget.per_call",
        )
    record["over_call_budget"] = turn
    record["over_call_tokens"] = tokens


def _run_limit(agent: AgentSpec, decision: Callable[[str], Mapping[str, Any] | None]) -> int:
    budget = agent.token_budget
    assert budget is not None and budget.per_run is not None
    base = limit = budget.per_run
    while (found := decision(_run_key(agent, limit))) is not None:
        if found.get("decision") == "rejected":
            raise _stopped(agent, "per_run", limit, found)
        raised = limit + base
        if found.get("decision") == "provided":
            with suppress(DocumentError, KeyError, TypeError, ValueError):
                raised = int(parse_json(found.get("content") or "{}", source="limit")["limit"])
        limit = max(raised, limit + 1)
    return limit


def _run_key(agent: AgentSpec, limit: int) -> str:
    return f"agent-budget:{agent.name}:run:{limit}"


def _stopped(agent: AgentSpec, which: str, limit: int, found: Mapping[str, Any]) -> BudgetExceeded:
    why = found.get("content") or "no reason given"
    return BudgetExceeded(
        f"agent {agent.name!r} was stopped at its token_budget.{which} of {limit}: {why}",
        counter="tokens",
        limit=limit,
        field=f"token_budget.{which}",
    )


def _run_request(agent: AgentSpec, used: int, limit: int) -> dict[str, Any]:
    assert agent.token_budget is not None and agent.token_budget.per_run is not None
    raise_to = limit + agent.token_budget.per_run
    return {
        "kind": "budget",
        "wait_key": _run_key(agent, limit),
        "prompt": f"Agent {agent.name!r} has used {used} of the {limit} tokens its "
        f"token_budget allows in this run. Continue with a raised limit (approve: "
        f"{raise_to}), or stop the run?",
        "decisions": ("approved", "provided", "rejected"),
        "input_schema": {
            "type": "object",
            "properties": {"limit": {"type": "integer", "minimum": used + 1}},
            "required": ["limit"],
            "additionalProperties": False,
        },
        "context": {
            "budget": "tokens",
            "scope": "agent",
            "agent": agent.name,
            "used": used,
            "limit": limit,
            "raise_to": raise_to,
        },
    }


def _call_request(agent: AgentSpec, key: str, tokens: int) -> dict[str, Any]:
    assert agent.token_budget is not None
    return {
        "kind": "budget",
        "wait_key": key,
        "prompt": f"A model call of agent {agent.name!r} used {tokens} tokens, over its "
        f"token_budget.per_call of {agent.token_budget.per_call}. Continue, or stop the run?",
        "decisions": ("approved", "rejected"),
        "context": {
            "budget": "tokens",
            "scope": "call",
            "agent": agent.name,
            "used": tokens,
            "limit": agent.token_budget.per_call,
        },
    }
