#!/usr/bin/env python3
"""Validate a deployment env file: the tutorial's name for ``kneo config check-env``.

The same command, options, output and exit codes (0 clean, 1 findings, 2 usage); values are
never printed. Run it from a checkout with Kneo installed (``pip install -e .``):

    python scripts/validate_staging_env.py --env-file deploy/production.env [--shape compose]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's kneo first


def main(argv: list[str] | None = None) -> int:
    from kneo.cli.main import app
    from kneo.cli.output import run_cli

    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["validate_staging_env.py", "config", "check-env", *args]
    return run_cli(app)


if __name__ == "__main__":
    sys.exit(main())
