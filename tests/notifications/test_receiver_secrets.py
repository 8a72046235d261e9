"""A receiver's secrets are the receiver's: every variable a receiver of any type names
(its URL, signing key, bot token, Slack signing secret, SMTP password) is refused as a spec
secret, with the field and the reason named: in the project config, for the host's
receivers in ``KNEO_SERV_NOTIFICATIONS_RECEIVERS``, and in a project's definition for the
host's receivers (``POST /v1/projects`` answers the error, nothing is created)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from kneo.errors import KneoError
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import SECRET_FIELDS, ProjectConfig, ProjectContext

SLACK_APP = {
    "name": "team",
    "type": "slack_app",
    "url": "https://slack.com/api",
    "channel": "C0KNEO",
    "token_env": "SLACK_BOT_TOKEN",
    "signing_secret_env": "SLACK_SIGNING_SECRET",
}
#: every receiver type with every variable field it takes
RECEIVERS: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "hook", "url": "https://h.example", "secret_env": "HOOK_KEY"}, "secret_env", "HOOK_KEY"),
    ({"name": "hook", "url_env": "HOOK_URL"}, "url_env", "HOOK_URL"),
    ({"name": "chat", "type": "slack", "url_env": "SLACK_HOOK_URL"}, "url_env", "SLACK_HOOK_URL"),
    (SLACK_APP, "token_env", "SLACK_BOT_TOKEN"),
    (SLACK_APP, "signing_secret_env", "SLACK_SIGNING_SECRET"),
    ({"name": "t", "type": "teams", "url_env": "TEAMS_URL"}, "url_env", "TEAMS_URL"),
    (
        {"name": "mail", "type": "email", "url": "smtp://smtp.example:587",
         "from_address": "k@example.com", "smtp_password_env": "SMTP_PASSWORD"},
        "smtp_password_env",
        "SMTP_PASSWORD",
    ),
]  # fmt: skip


def test_every_secret_field_is_covered() -> None:
    assert {field for _, field, _ in RECEIVERS} == set(SECRET_FIELDS)


@pytest.mark.parametrize(("receiver", "field", "variable"), RECEIVERS)
@pytest.mark.parametrize("where", ["secrets.extra", "secrets.providers", "environments"])
def test_a_receiver_variable_is_never_a_spec_secret(
    receiver: dict[str, Any], field: str, variable: str, where: str
) -> None:
    declared = {"x": variable}
    config: dict[str, Any] = {"notifications": {"receivers": [receiver]}}
    if where == "environments":
        config["environments"] = {"dev": {"secrets": declared}}
    else:
        config["secrets"] = {where.split(".")[1]: declared}
    with pytest.raises(ValidationError) as refused:
        ProjectConfig.model_validate(config)
    text = str(refused.value)
    assert variable in text and field in text and repr(receiver["name"]) in text
    assert "never be a spec secret" in text


def host_settings(tmp: Path, config: str) -> Settings:
    path = tmp / ".kneo" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config)
    return Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
            "KNEO_PROJECT_CONFIG": str(path),
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps([SLACK_APP]),
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": "plat:key-platform-0123456789:platform-admin",
        }
    )


def test_the_hosts_receivers_variables_are_refused_in_the_host_config(tmp_path: Path) -> None:
    settings = host_settings(
        tmp_path, "version: v1\nsecrets:\n  extra:\n    s: SLACK_SIGNING_SECRET\n"
    )
    with pytest.raises(KneoError) as refused:
        ProjectContext.discover(cwd=tmp_path, settings=settings)
    assert refused.value.code == "E_SCHEMA"
    assert "secrets.extra" in refused.value.message
    assert "signing_secret_env" in refused.value.message
    assert "KNEO_SERV_NOTIFICATIONS_RECEIVERS" in refused.value.message


def test_a_projects_definition_cannot_declare_the_hosts_receiver_secrets(
    tmp_path: Path,
) -> None:
    own = {"name": "host-hook", "url": "https://h.example", "secret_env": "HOST_HOOK_KEY"}
    config = f"version: v1\nnotifications:\n  receivers: [{json.dumps(own)}]\n"
    settings = host_settings(tmp_path, config)
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    plat = {"Authorization": "Bearer key-platform-0123456789"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for variable, why in (
            ("SLACK_BOT_TOKEN", "token_env"),  # the variables' receivers
            ("HOST_HOOK_KEY", "secret_env"),  # the host config's own receivers
        ):
            definition = {"name": "team-c", "secrets": {"extra": {"tok": variable}}}
            refused = client.post(
                "/v1/projects", headers=plat, json={"name": "team-c", "definition": definition}
            )
            assert refused.status_code == 400, refused.text
            answer = refused.json()
            assert "secrets.extra" in answer["message"] and why in answer["message"]
            assert "the host's notification receiver" in answer["message"]
        ok = {"name": "team-c", "secrets": {"extra": {"tok": "TEAM_C_TOKEN"}}}
        made = client.post("/v1/projects", headers=plat, json={"name": "team-c", "definition": ok})
        assert made.status_code == 201, made.text
    manager.store.close()
