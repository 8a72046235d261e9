"""The process and secret doors ask the grant themselves (issue 70, item 4).

``kneo.kernel.start_process``, ``run_process`` and ``stdio_server`` take a
:class:`~kneo.kernel.ProcessGrant` and ``kneo.kernel.secret`` a
:class:`~kneo.kernel.SecretGrant`, and each asks it before it acts, so a caller that forgot
to ask (or asked another project's grant) starts nothing and reads nothing. Each door is
tried by a caller who should not pass: another project's server or secret, a command of a
spec's own outside a signed bundle, a variable the operator did not configure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kneo.engine.providers.base import ChatMessage
from kneo.engine.providers.registry import remote_provider
from kneo.errors import AccessDenied
from kneo.kernel import Operator, run_process, secret, start_process, stdio_server
from kneo.policy.access import HostAccess, Origin
from kneo.policy.environment import ResourcesPolicy
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.spec.project import ProjectConfig

PLANTED = "planted-secret-value-7f3a"

TEAM_A = ProjectConfig.model_validate(
    {
        "secrets": {
            "extra": {"search": "SEARCH_KEY"},
            "destinations": {"search": ["https://api.openai.com"]},
        },
        "mcp_servers": {"files": {"command": ["files-server", "--root", "."]}},
    }
)
TEAM_B = ProjectConfig.model_validate(
    {
        "secrets": {"extra": {"billing": "BILLING_KEY"}},
        "mcp_servers": {"payroll": {"command": ["payroll-server"]}},
    }
)
ENVIRON = {"SEARCH_KEY": PLANTED, "BILLING_KEY": PLANTED + "-b", "HOME": "/root"}


def grant(config: ProjectConfig = TEAM_A, origin: Origin = "spec", **resources: Any) -> HostAccess:
    policy = ResourcesPolicy.model_validate(resources) if resources else None
    return HostAccess.for_environment(config, "dev", origin=origin, resources=policy)


def _marker(tmp_path: Path) -> tuple[list[str], Path]:
    """A command that leaves a file behind when it runs."""
    marker = tmp_path / "ran"
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"], marker


# ---------------------------------------------------------------------- processes


@pytest.mark.parametrize(
    ("who", "argv", "allowed"),
    [
        ("its own declared server", ["files-server", "--root", "."], True),
        ("the server with other arguments", ["files-server", "--root", "/"], False),
        ("another project's server", ["payroll-server"], False),
        ("a command of the spec's own", ["sh", "-c", "id"], False),
        ("nothing", [], False),
    ],
)
def test_the_run_grant_allows_a_declared_servers_command_only(
    who: str, argv: list[str], allowed: bool
) -> None:
    if allowed:
        grant().process(argv, path="x")
        return
    with pytest.raises(AccessDenied) as refused:
        grant().process(argv, path="mcp.imports[0].command")
    assert refused.value.code == "E_PROCESS_UNDECLARED", who
    assert refused.value.details["path"] == "mcp.imports[0].command"


def test_a_bundles_own_command_only_where_the_environment_allows_bundle_processes() -> None:
    argv = ["bundle-server", "--stdio"]
    grant(origin="bundle", bundle_processes=True).process(argv, path="x")
    for refusing in (grant(origin="bundle"), grant(origin="spec", bundle_processes=True)):
        with pytest.raises(AccessDenied) as refused:
            refusing.process(argv, path="x")
        assert refused.value.code == "E_PROCESS_UNDECLARED"


def test_an_environment_that_narrows_the_servers_narrows_the_commands() -> None:
    with pytest.raises(AccessDenied):
        grant(mcp_servers=[]).process(["files-server", "--root", "."], path="x")


@pytest.mark.parametrize("door", [run_process, start_process])
def test_the_process_door_starts_nothing_its_grant_refuses(door: Any, tmp_path: Path) -> None:
    """The caller hands the door a grant and asks nothing itself: another project's grant,
    and the operator's grant of ``git``, both refuse the interpreter, which never runs."""
    argv, marker = _marker(tmp_path)
    for refusing in (grant(TEAM_B), Operator.of(programs=["git"])):
        with pytest.raises(AccessDenied) as refused:
            door(refusing, argv, path="tool 'x'")
        assert refused.value.code == "E_PROCESS_UNDECLARED"
    assert not marker.exists()
    # the control: the operator's grant of this interpreter starts it
    process = door(Operator.of(programs=[sys.executable]), argv, path="tool 'x'")
    if hasattr(process, "wait"):
        process.wait(timeout=30)
    assert marker.exists()


def test_the_process_door_never_takes_a_shell_whatever_the_grant() -> None:
    everything = Operator.of(programs=["echo"])
    with pytest.raises(ValueError, match="shell"):
        run_process(everything, ["echo", "x"], path="x", shell=True)


def test_the_mcp_stdio_door_asks_the_grant_before_anything_starts(tmp_path: Path) -> None:
    argv, marker = _marker(tmp_path)
    asked: list[Sequence[str]] = []

    class Recording:
        def process(self, argv: Sequence[str], *, path: str) -> None:
            asked.append(list(argv))
            grant(TEAM_B).process(argv, path=path)

    with pytest.raises(AccessDenied) as refused:
        stdio_server(Recording(), argv, env=None, path="MCP server 'x'.command")
    assert refused.value.code == "E_PROCESS_UNDECLARED"
    assert asked == [argv] and not marker.exists()


# ---------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("reference", "value"),
    [("search", PLANTED), ("SEARCH_KEY", PLANTED)],
)
def test_the_secret_door_reads_a_declared_secret(reference: str, value: str) -> None:
    assert secret(grant(), ENVIRON, reference, path="x") == value


@pytest.mark.parametrize(
    "reference", ["billing", "BILLING_KEY", "HOME", "KNEO_SERV_ADMIN_API_KEY", "OPENAI_BASE"]
)
def test_the_secret_door_refuses_what_the_grant_does_not_declare(reference: str) -> None:
    """Another project's secret (by name or variable), the host's own variables: refused
    by the door itself, the value in no message."""
    with pytest.raises(AccessDenied) as refused:
        secret(grant(), ENVIRON, reference, path="mcp_servers.x.secret")
    assert refused.value.code == "E_SECRET_UNDECLARED"
    assert PLANTED not in str(refused.value.to_dict())


def test_one_calls_grant_gives_its_own_secret_only() -> None:
    model = ModelSpec(provider="openai", name="gpt", api_key_env="search")
    _model, reach = grant().model_call(model, path="agent")
    assert secret(reach, ENVIRON, "search", path="x") == PLANTED
    assert secret(reach, ENVIRON, "SEARCH_KEY", path="x") == PLANTED
    for other in ("OPENAI_API_KEY", "BILLING_KEY", "HOME"):
        with pytest.raises(AccessDenied) as refused:
            secret(reach, ENVIRON, other, path="x")
        assert refused.value.code == "E_SECRET_UNDECLARED"


def test_the_operators_grant_gives_the_variables_it_names_only() -> None:
    operator = Operator.of(variables=["SEARCH_KEY"])
    assert secret(operator, ENVIRON, "SEARCH_KEY", path="x") == PLANTED
    with pytest.raises(AccessDenied):
        secret(operator, ENVIRON, "BILLING_KEY", path="x")


def test_a_model_call_reads_no_key_its_grant_was_not_given() -> None:
    """A provider handed a call's grant for one secret and a model naming another variable
    (as a caller that skipped ``model_call`` would) reads nothing and sends nothing."""
    settings = Settings.from_env({**ENVIRON, "OTHER_KEY": PLANTED})
    provider = remote_provider("openai", settings, secrets={})
    model = ModelSpec(provider="openai", name="gpt", api_key_env="search")
    _granted, reach = grant().model_call(model, path="agent")
    stray = model.model_copy(update={"api_key_env": "OTHER_KEY"})
    with pytest.raises(AccessDenied) as refused:
        provider.complete(model=stray, messages=[ChatMessage("user", "hi")], tools=[], reach=reach)
    assert refused.value.code == "E_SECRET_UNDECLARED"
    assert PLANTED not in str(refused.value.to_dict())
