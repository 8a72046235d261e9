"""Bridges for the agents teams already have (``agent.implementation``): the platform's
:class:`~kneo.engine.bridges.AgentBridges`. Each framework is an extra, imported only when a
spec's agent is one of its objects (``kneo-platform[openai-agents]``,
``kneo-platform[langgraph]``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from kneo.engine.bridges import BridgeSession
from kneo.engine.outcomes import StepFailure
from kneo.errors import ErrorCode
from kneo.policy.access import HostAccess
from kneo.settings import Settings

__all__ = ["FrameworkBridges"]


class FrameworkBridges:
    """Runs an OpenAI Agents SDK ``Agent`` or a LangGraph compiled graph with a session's
    hooks, its model calls through the run's grant."""

    def __init__(self, settings: Settings, default_access: Callable[[], HostAccess]) -> None:
        self._settings = settings
        self._default_access = default_access

    def run(
        self,
        build: Callable[..., Any],
        session: BridgeSession,
        text: str,
        *,
        access: HostAccess | None,
    ) -> str:
        grant = access or self._default_access()
        if "model" in inspect.signature(build).parameters:
            from kneo.bridges.langgraph import chat_model

            target = build(model=chat_model(session, grant, self._settings))
        else:
            target = build()
        module = type(target).__module__.split(".")[0]
        if module == "agents":
            from kneo.bridges.openai_agents import run_openai_agent

            return run_openai_agent(target, session, text, grant, self._settings)
        if module == "langgraph":
            from kneo.bridges.langgraph import run_graph

            answer: str = run_graph(target, session, text, grant, self._settings)
            return answer
        raise StepFailure(
            f"components.agents.{session.agent.name}.implementation returned a "
            f"{type(target).__module__}.{type(target).__name__}: a bridged agent is an OpenAI "
            "Agents SDK Agent or a LangGraph compiled graph",
            code=ErrorCode.E_SCHEMA,
        )
