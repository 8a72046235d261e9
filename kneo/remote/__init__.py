"""Adapters to agents served elsewhere (``agent.remote``): the platform injects them into the
engine as its :class:`~kneo.engine.remote_agents.RemoteAgents`."""

from __future__ import annotations

__all__: list[str] = []
