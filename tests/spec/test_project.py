"""Project config: discovery, validation, secrets as names only, environment selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from kneo.errors import KneoError
from kneo.policy.check import resolve_environment_policy
from kneo.settings import Settings
from kneo.spec.project import (
    ProjectConfig,
    ProjectContext,
    find_project_config,
    load_project_config,
)

from .conftest import EXAMPLES, write_yaml


def test_discovery_walks_upward(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / ".kneo" / "config.yaml", {"name": "up"})
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_project_config(deep, Settings.from_env({})) == config
    context = ProjectContext.discover(cwd=deep, settings=Settings.from_env({}))
    assert context.root == tmp_path.resolve()
    assert context.config.name == "up"


def test_no_config_gives_defaults(tmp_path: Path) -> None:
    assert find_project_config(tmp_path, Settings.from_env({})) is None
    context = ProjectContext.discover(cwd=tmp_path, settings=Settings.from_env({}))
    assert context.config_path is None
    assert context.env == "dev"
    assert not context.env_explicit


def test_explicit_path_via_env_var(tmp_path: Path) -> None:
    elsewhere = write_yaml(tmp_path / "conf" / "kneo.yaml", {"name": "explicit"})
    write_yaml(tmp_path / "work" / ".kneo" / "config.yaml", {"name": "nearby"})
    settings = Settings.from_env({"KNEO_PROJECT_CONFIG": str(elsewhere)})
    context = ProjectContext.discover(cwd=tmp_path / "work", settings=settings)
    assert context.config.name == "explicit"
    assert context.root == (tmp_path / "conf").resolve()
    with pytest.raises(KneoError) as err:
        find_project_config(
            tmp_path, Settings.from_env({"KNEO_PROJECT_CONFIG": str(tmp_path / "missing.yaml")})
        )
    assert err.value.code == "E_FILE_NOT_FOUND"


def test_env_selection_order(tmp_path: Path) -> None:
    write_yaml(tmp_path / ".kneo" / "config.yaml", {"environments": {"dev": {}, "prod": {}}})
    from_var = ProjectContext.discover(
        cwd=tmp_path, settings=Settings.from_env({"KNEO_ENV": "prod"})
    )
    assert (from_var.env, from_var.env_explicit) == ("prod", True)
    flag = ProjectContext.discover(
        cwd=tmp_path, settings=Settings.from_env({"KNEO_ENV": "prod"}), env="dev"
    )
    assert (flag.env, flag.env_explicit) == ("dev", True)


def test_example_project_config_loads() -> None:
    config = load_project_config(EXAMPLES / "project_config.yaml")
    assert config.name == "research-agent-demo"
    assert config.secrets.providers["openai"] == "OPENAI_API_KEY"
    assert config.retention.runs_days == 30
    prod = config.policy_for("prod")
    assert prod is not None and prod.require_human_review and prod.deny_unrestricted_tools
    dev = config.policy_for("dev")
    assert dev is not None and not dev.enabled


def test_secret_values_are_rejected_without_echo(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    path = write_yaml(tmp_path / "config.yaml", {"secrets": {"providers": {"openai": secret}}})
    with pytest.raises(KneoError) as err:
        load_project_config(path)
    assert err.value.code == "E_SCHEMA"
    assert "secrets.providers" in str(err.value)
    assert secret not in str(err.value)
    assert secret not in repr(err.value.to_dict())


def test_unknown_policy_fields_are_errors(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "c.yaml",
        {"environments": {"prod": {"policy_enforcement": {"require_humans": True}}}},
    )
    with pytest.raises(KneoError) as err:
        load_project_config(path)
    assert err.value.code == "E_SCHEMA"
    assert "environments.prod.policy_enforcement" in str(err.value)


def test_env_policy_overrides_project_defaults(tmp_path: Path) -> None:
    config = ProjectConfig.model_validate(
        {
            "policy_enforcement": {
                "require_guardrails": True,
                "blocked_diagnostic_codes": ["W_SHELL_TOOL"],
            },
            "environments": {
                "dev": {"policy_enforcement": {"require_guardrails": False}},
                "prod": {},
            },
        }
    )
    dev, prod = config.policy_for("dev"), config.policy_for("prod")
    assert (
        dev is not None
        and not dev.require_guardrails
        and dev.blocked_diagnostic_codes == ["W_SHELL_TOOL"]
    )
    assert prod is not None and prod.require_guardrails
    assert ProjectConfig().policy_for("prod") is None
    context = ProjectContext(
        root=tmp_path, config_path=None, config=config
    )  # no environments/ files
    assert resolve_environment_policy(context, "prod") == prod
