"""The tutorial's env file, filled in: deploy/production.env.example with every placeholder
replaced by a fresh `openssl rand -hex 32`-like token (tokens by placeholder name)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "production.env.example"
PLACEHOLDERS = ("OP_TOKEN", "REV_TOKEN", "VIEW_TOKEN", "ADMIN_TOKEN", "SPEC_SIGNING_HMAC_KEY", "DB_PASSWORD")  # fmt: skip


@pytest.fixture
def filled_env() -> tuple[str, dict[str, str]]:
    text = EXAMPLE.read_text()
    tokens = {name: secrets.token_hex(32) for name in PLACEHOLDERS}
    for name, token in tokens.items():
        text = text.replace(f"replace-with-{name}", token)
    return text, tokens
