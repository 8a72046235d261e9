"""Custom-tool tutorial, step 4: run the agent through the custom platform.

python -m examples.run_lookup
"""

from __future__ import annotations

import sys

from examples.my_factory import build_platform


def main() -> int:
    manager = build_platform()
    result = manager.run_from_spec(
        input_text="What's the email for u-002?",
        spec_path="examples/lookup_agent.yaml",
        target="workflow",
    )
    print(f"run_id={result.run_id}")
    if result.status != "succeeded":  # a script's exit code says whether it worked
        error = result.metadata.get("error") or {}
        print(f"{result.status}: [{error.get('code')}] {error.get('message')}", file=sys.stderr)
        return 1
    print(result.output_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
