"""MCP tools in runs: a real SDK server over stdio and HTTP, called through the tool guard.

Every call the server really runs is appended to its counter file, so the tests prove how
often a tool ran: once after an approval resumed in another process, ``1 + retries`` times
when it keeps timing out, never when the guard refuses the call.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery
from tests.cli_zygote import KNEO
from tests.hitl.conftest import finish, start_cli
from tests.mcp_tests.conftest import REPO, agent_spec, call, counted, stdio_import

PLANTED = "mcp-secret-planted-4242"


def manager_for(project: Path, **env: str) -> Any:
    settings = Settings.from_env(env)
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def run(project: Path, spec: dict[str, Any], **env: str) -> tuple[Any, Any]:
    manager = manager_for(project, **env)
    return manager, manager.run_from_spec(input_text="go", spec=spec)


def tool_events(manager: Any, run_id: str) -> list[dict[str, Any]]:
    return [
        e for e in manager.trace(run_id)["events"] if e["event_type"].startswith(("tool_", "mcp_"))
    ]


def test_stdio_tool_is_listed_validated_and_called_through_the_guard(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, tools=["lookup_user"])],
        [
            call("lookup_user", user_id=5),  # the server's schema says string: refused
            call("lookup_user", user_id="u-002"),
            {"text": "answer: {last_tool_result}"},
        ],
    )
    manager, result = run(project, spec)
    assert (result.status, result.output_text) == ("succeeded", "answer: bob@example.com")
    assert counted(project) == ["lookup_user"]  # the invalid call never reached the server
    events = tool_events(manager, result.run_id)
    assert [e["event_type"] for e in events] == [
        "tool_call_invalid",
        "tool_call_started",
        "tool_call_completed",
    ]
    assert "user_id" in events[0]["payload"]["reason"]
    assert events[2]["payload"]["result"] == "[REDACTED]"
    manager.store.close()


def test_a_denied_mcp_tool_never_reaches_the_server(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, tools=["lookup_user", "send_email"])],
        [call("send_email", to="a@example.com", subject="hi"), {"text": "{last_tool_result}"}],
        tools=["lookup_user", "send_email"],
        policies={"tool": {"deny": ["send_email"]}},
    )
    manager, result = run(project, spec)
    assert result.status == "succeeded"
    assert "denied by policy" in result.output_text
    assert counted(project) == []
    assert [e["event_type"] for e in tool_events(manager, result.run_id)] == ["tool_policy_denied"]
    manager.store.close()


def test_approval_pauses_and_a_resume_in_another_process_calls_once(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, tools=["send_email"])],
        [call("send_email", to="ops-team", subject="launch"), {"text": "{last_tool_result}"}],
        tools=["send_email"],
        approval_required=["send_email"],
    )
    (project / "spec.json").write_text(json.dumps(spec))
    manager, paused = run(project, spec)
    request = paused.metadata["pending_human_request"]
    assert paused.status == "paused" and request["kind"] == "tool_approval"
    assert request["context"]["tool_name"] == "send_email"
    assert counted(project) == []  # nothing ran before the approval
    manager.store.close()
    code, done, err = finish(
        start_cli(
            project,
            "human",
            "resume",
            paused.continuation_id,
            "--request-id",
            paused.request_id,
            "--approve",
            "--json",
        )
    )
    assert code == 0, err
    assert (done["status"], done["output_text"]) == ("succeeded", "sent to ops-team: launch")
    assert counted(project) == ["send_email"]  # exactly once, in the other process


def test_timeouts_are_retried_then_reported_to_the_model(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, tools=["slow", "lookup_user"])],
        [call("slow", seconds=5), call("lookup_user", user_id="u-001"), {"text": "done"}],
        tools=["slow", "lookup_user"],
    )
    manager, result = run(
        project,
        spec,
        KNEO_SERV_MCP_TIMEOUT_SECONDS="0.5",
        KNEO_SERV_MCP_RETRIES="2",
        KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS="0",
    )
    assert result.status == "succeeded"  # a slow server is the model's problem, not a failure
    transcript = manager.store.runs.get_run(result.run_id).state["agents"]["mcp-agent"]["messages"]
    slow_result = next(m for m in transcript if m.get("name") == "slow")["content"]
    assert "no answer within 0.5s" in slow_result and "3 attempt(s)" in slow_result
    assert counted(project) == ["slow", "slow", "slow", "lookup_user"]
    completed = [
        e for e in tool_events(manager, result.run_id) if e["event_type"].endswith("completed")
    ]
    assert [e["payload"]["status"] for e in completed] == ["error", "ok"]
    manager.store.close()


def test_a_crashed_server_is_a_tool_error_and_the_next_call_reconnects(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, tools=["crash", "lookup_user"])],
        [call("crash"), call("lookup_user", user_id="u-002"), {"text": "{last_tool_result}"}],
        tools=["crash", "lookup_user"],
    )
    manager, result = run(project, spec, KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS="0")
    assert (result.status, result.output_text) == ("succeeded", "bob@example.com")
    transcript = manager.store.runs.get_run(result.run_id).state["agents"]["mcp-agent"]["messages"]
    crash_result = next(m for m in transcript if m.get("name") == "crash")["content"]
    assert "MCP server 'fixture' failed while calling tool 'crash'" in crash_result
    assert counted(project) == [
        "crash",
        "lookup_user",
    ]  # retries 0: one attempt, then a new process
    manager.store.close()


def test_an_unreachable_server_is_a_tool_error(project: Path) -> None:
    spec = agent_spec(
        [{"name": "down", "transport": "http", "url": "http://127.0.0.1:9/mcp", "tools": ["x"]}],
        [call("x"), {"text": "{last_tool_result}"}],
        tools=["x"],
    )
    manager, result = run(project, spec, KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS="0")
    assert result.status == "succeeded"
    assert "MCP server 'down' failed while calling tool 'x'" in result.output_text
    manager.store.close()


def test_http_transport_sends_the_secret_and_never_records_it(
    project: Path, http_server: Any
) -> None:
    url = http_server(token_env="FIXTURE_TOKEN", env={"FIXTURE_TOKEN": PLANTED})
    imports = [
        {
            "name": "fixture",
            "transport": "http",
            "url": url,
            "tools": ["lookup_user"],
            "secret_env": "fixture_token",
        }
    ]
    spec = agent_spec(
        imports, [call("lookup_user", user_id="u-002"), {"text": "{last_tool_result}"}]
    )
    manager, result = run(project, spec, FIXTURE_TOKEN=PLANTED)
    assert (result.status, result.output_text) == ("succeeded", "bob@example.com")
    assert counted(project) == ["lookup_user"]
    dumped = json.dumps(
        [manager.trace(result.run_id), manager.checkpoints(result.run_id), result.to_dict()],
        default=str,
    )
    assert PLANTED not in dumped
    audits = manager.store.audit.list_audit(AuditQuery(run_id=result.run_id)).items
    assert audits and PLANTED not in json.dumps([a.payload for a in audits], default=str)
    manager.store.close()
    # without the secret the server refuses: a tool error, not a crash
    manager, refused = run(project, spec, KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS="0")
    assert refused.status == "succeeded" and "failed while" in refused.output_text
    assert counted(project) == ["lookup_user"]
    manager.store.close()


def test_stdio_secret_reaches_the_server_process(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project, "fixture-with-secret", tools=["whoami"])],
        [call("whoami"), {"text": "{last_tool_result}"}],
        tools=["whoami"],
    )
    manager, result = run(project, spec, MCP_FIXTURE_TOKEN=PLANTED)
    assert result.output_text == "token present"
    manager.store.close()


def test_tools_all_takes_every_tool_of_an_import_without_a_list(project: Path) -> None:
    spec = agent_spec(
        [stdio_import(project)],
        [call("send_email", to="xteam", subject="s"), {"text": "{last_tool_result}"}],
        tools="all",
    )
    manager, result = run(project, spec)
    assert (result.status, result.output_text) == ("succeeded", "sent to xteam: s")
    manager.store.close()


def test_spec_check_asks_the_server_for_the_listed_tools(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = str(REPO)
    good = agent_spec([stdio_import(project, tools=["lookup_user"])], [{"text": "x"}])
    good["agent"]["policies"] = {"tool": {"allow": ["lookup_user"]}}
    typo = agent_spec([stdio_import(project, tools=["lookup_usr"])], [{"text": "x"}])
    typo["agent"]["tools"] = ["lookup_usr"]
    down = agent_spec(
        [{"name": "down", "transport": "http", "url": "http://127.0.0.1:9/mcp", "tools": ["a"]}],
        [{"text": "x"}],
        tools=["a"],
    )
    found = {}
    for command, name, spec in (
        ("validate", "good", good),
        ("validate", "typo", typo),
        ("validate", "down", down),
        ("lint", "down", down),
    ):
        (project / f"{name}.yaml").write_text(json.dumps(spec))
        proc = subprocess.run(
            [*KNEO, "spec", command, f"{name}.yaml", "--json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        codes = {d["code"]: d for d in json.loads(proc.stdout)["diagnostics"]}
        found[command, name] = (proc.returncode, codes)
    good_codes = found["validate", "good"][1]
    assert "E_MCP_TOOL_UNKNOWN" not in good_codes and "W_MCP_UNREACHABLE" not in good_codes
    code, typo_codes = found["validate", "typo"]
    assert code == 1 and typo_codes["E_MCP_TOOL_UNKNOWN"]["path"] == "mcp.imports[0].tools[0]"
    assert "lookup_user" in typo_codes["E_MCP_TOOL_UNKNOWN"]["suggestion"]
    code, down_codes = found["validate", "down"]
    assert code == 0 and down_codes["W_MCP_UNREACHABLE"]["severity"] == "warning"
    assert found["lint", "down"][0] == 1  # lint fails on any finding, warnings included
    assert counted(project) == []  # listing tools runs none
