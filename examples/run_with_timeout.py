"""A run-level deadline: ``start_run_from_spec(..., timeout_seconds=N)`` sets ``deadline_at``.

The run is queued with its deadline; ``execute_run`` (what a worker does) runs it. The
deadline is enforced by the operator sweep ``prune_timed_out_runs()`` (see
docs/human_in_the_loop.md, "Run-level timeouts vs. human-task timeouts").

    python -m examples.run_with_timeout
"""

from __future__ import annotations

import sys

from kneo import create_platform


def main() -> int:
    manager = create_platform()
    queued = manager.start_run_from_spec(
        input_text="draft the launch announcement",
        spec_path="examples/human_approval_workflow.yaml",
        target="workflow",
        timeout_seconds=3600,
    )
    run = manager.get_run(queued.run_id)
    print(f"run_id={queued.run_id} status={queued.status} deadline_at={run['deadline_at']}")
    result = manager.execute_run(queued.run_id)
    print(f"status={result.status} continuation_id={result.continuation_id}")
    if result.status != "paused":  # its documented end: waiting for the approval
        error = result.metadata.get("error") or {}
        print(f"{result.status}: [{error.get('code')}] {error.get('message')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
