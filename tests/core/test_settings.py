"""Settings read the documented variables with their documented defaults."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.errors import ConfigError
from kneo.setting_groups import RetentionDays
from kneo.settings import Settings


def test_defaults_match_documentation() -> None:
    s = Settings.from_env({})
    assert s.default_env == "dev"
    assert s.auth_enabled is False
    assert s.limits.max_body_bytes == 1_048_576
    assert s.limits.max_list_items == 100
    assert s.checkpoint.compress_bytes == 65_536
    assert s.client_retries == 2
    assert s.request_logs is True
    assert s.retention == RetentionDays()


def test_auth_defaults_on_when_keys_configured() -> None:
    assert Settings.from_env({"KNEO_SERV_API_KEYS": "op:tok:operator"}).auth_enabled is True
    assert (
        Settings.from_env(
            {"KNEO_SERV_API_KEYS": "op:tok:operator", "KNEO_SERV_AUTH_ENABLED": "false"}
        ).auth_enabled
        is False
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KNEO_SERV_MAX_BODY_BYTES", "lots"),
        ("KNEO_SERV_RETENTION_RUNS_DAYS", "-1"),
        ("KNEO_SERV_AUTH_ENABLED", "maybe"),
        ("KNEO_SERV_CLIENT_TIMEOUT", "soon"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert info.value.details["variable"] == name


def test_retention_env_wins_per_field() -> None:
    env = Settings.from_env({"KNEO_SERV_RETENTION_RUNS_DAYS": "3"}).retention
    project = RetentionDays(runs_days=30, queue_days=7)
    merged = env.overlay(project)
    assert merged.runs_days == 3
    assert merged.queue_days == 7
    assert merged.logs_days is None


def test_public_dict_hides_secrets() -> None:
    s = Settings.from_env(
        {
            "KNEO_SERV_API_KEYS": "op:super-secret-token:operator",
            "KNEO_SERV_ADMIN_API_KEY": "adm1n-key",
        }
    )
    text = repr(s.as_public_dict())
    assert "super-secret-token" not in text
    assert "adm1n-key" not in text


def test_pool_size_is_one_setting_over_role_defaults() -> None:
    from dataclasses import replace

    from kneo.settings import ROLE_POOL_SIZES

    assert Settings.from_env({}).pool_size() == ROLE_POOL_SIZES["library"] == 15
    assert replace(Settings.from_env({}), process_role="api").pool_size() == 10
    assert replace(Settings.from_env({}), process_role="worker").pool_size() == 3
    one = Settings.from_env({"KNEO_SERV_DATABASE_POOL_SIZE": "4"})
    assert replace(one, process_role="api").pool_size() == 4
    assert Settings.from_env({"KNEO_SERV_DATABASE_POOLER": "Transaction"}).database_pooler == (
        "transaction"
    )
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"KNEO_SERV_DATABASE_POOLER": "session"})
    assert caught.value.details["variable"] == "KNEO_SERV_DATABASE_POOLER"


def test_a_postgresql_store_opens_at_most_the_pool_size(pg_database: Any) -> None:
    from kneo.store import open_store

    settings = Settings.from_env({"KNEO_SERV_DATABASE_POOL_SIZE": "7"})
    store = open_store(pg_database(), settings=settings)
    try:
        pool: Any = store.engine.pool
        assert pool.size() + pool._max_overflow == 7
        assert pool.size() == 5  # kept open when idle; 2 more when busy
    finally:
        store.close()
