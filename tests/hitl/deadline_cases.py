"""The late decisions the service's ways to decide are tried with (tests/console,
tests/mcp_tests): one paused run per ``on_timeout``, its request timing out after a second."""

from __future__ import annotations

from typing import Any

#: (on_timeout, whether the sweep ran before the decision, whether it is refused)
CASES = [("fail", True, True), ("continue", False, True), ("escalate", True, False)]
#: what the run is once the timeout took it
TIMED_OUT = {"fail": "expired", "continue": "succeeded"}


def spec(on_timeout: str) -> dict[str, Any]:
    human = {"prompt": "Approve?", "assignee": "reviewer", "timeout_seconds": 1}
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "late",
            "steps": [
                {"id": "draft", "kind": "function", "ref": "examples.hitl_functions:draft"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
                {"id": "publish", "kind": "function", "ref": "examples.hitl_functions:publish"},
            ],
        },
        "components": {"humans": {"reviewer": {**human, "on_timeout": on_timeout}}},
    }
