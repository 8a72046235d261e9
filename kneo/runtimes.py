"""Runtime modes: the execution modes a spec may prefer (``agent.runtime_preferences``).

Bottom layer: the spec validator checks names against this registry (``E_UNKNOWN_RUNTIME``)
and the engine picks the behaviour. Each mode means something real:

* ``native`` — the agent loop and its tool handlers run in the worker process; every model
  turn and tool result is checkpointed.
* ``bridge`` — the same loop, but each tool handler runs in a separate child process that is
  killed when the step's ``timeout_seconds`` (or the tool timeout) passes: isolation for
  tools you do not fully trust, at the cost of a process start per call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeMode:
    """A way an agent runs (its name, and whether its tools are isolated)."""

    name: str
    description: str
    isolated_tools: bool = False


class RuntimeRegistry:
    def __init__(self, modes: list[RuntimeMode] | None = None) -> None:
        self._modes: dict[str, RuntimeMode] = {}
        for mode in modes or []:
            self.register(mode)

    def register(self, mode: RuntimeMode) -> None:
        self._modes[mode.name] = mode

    def __contains__(self, name: object) -> bool:
        return name in self._modes

    def get(self, name: str) -> RuntimeMode:
        return self._modes[name]

    def names(self) -> list[str]:
        return sorted(self._modes)


def create_runtime_registry() -> RuntimeRegistry:
    return RuntimeRegistry(
        [
            RuntimeMode("native", "Agent loop and tool handlers run in the worker process."),
            RuntimeMode(
                "bridge",
                "Tool handlers run in a child process, killed at the step or tool timeout.",
                isolated_tools=True,
            ),
        ]
    )
