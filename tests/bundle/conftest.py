"""Shared fixtures: a resolved spec, real HMAC and Ed25519 keys, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kneo.bundle import BundleSource, SigningKey, generate_ed25519, load_signing_key

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def spec() -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {
            "name": "researcher",
            "system_prompt": "Résumé des faits — short answers.",
            "model": {"provider": "dummy", "name": "dummy", "temperature": 0.2, "max_tokens": 512},
            "tools": {"include": ["web_search"]},
        },
        "metadata": {"owner": "team-a", "tags": ["b", "a"], "ratio": 1.5},
    }


@pytest.fixture
def source() -> BundleSource:
    return BundleSource(path="examples/research_agent.yaml", commit="a" * 40)


@pytest.fixture
def hmac_key() -> SigningKey:
    return SigningKey.hmac("default", "k1-super-secret-value")


@pytest.fixture
def ed_key(tmp_path: Path) -> SigningKey:
    generated = generate_ed25519("ci", tmp_path / "keys")
    return load_signing_key(generated.private_path)
