"""ToolGuard: call-time policy, schema validation before the handler, native/bridge execution.

Handlers live at module level so the bridge child can import them by ``module:function``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from kneo.engine.providers import ToolCall
from kneo.engine.tool_guard import ToolGuard, ToolOutcome, describe_for_trace, host_allowed
from kneo.runtimes import RuntimeMode, create_runtime_registry
from kneo.spec.models import ToolPolicy
from kneo.tools import ToolDefinition, ToolRegistry

RUNTIMES = create_runtime_registry()
NATIVE = RUNTIMES.get("native")
BRIDGE = RUNTIMES.get("bridge")

handled: list[dict[str, Any]] = []


def record(args: dict[str, Any]) -> str:
    handled.append(args)
    return "done"


def sleepy(args: dict[str, Any]) -> str:
    """Writes its pid, then sleeps far past the test's timeout."""
    Path(args["pid_file"]).write_text(str(os.getpid()))
    time.sleep(args.get("seconds", 30))
    return "woke"


def explode(args: dict[str, Any]) -> str:
    raise RuntimeError("db down, password=hunter2 for ops@example.com\nsecond line")


def whoami(args: dict[str, Any]) -> str:
    print("noise on stdout must not corrupt the reply")
    return json.dumps({"pid": os.getpid(), "args": args})


OBJ = {"type": "object", "properties": {}}
TOOLS = {
    "plain": ToolDefinition("plain", parameters=OBJ),
    "fetch": ToolDefinition(
        "fetch",
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string"}, "domain": {"type": "string"}},
        },
        capabilities=frozenset({"network"}),
    ),
    "read_file": ToolDefinition(
        "read_file", parameters=OBJ, capabilities=frozenset({"filesystem_read"})
    ),
    "write_file": ToolDefinition(
        "write_file", parameters=OBJ, capabilities=frozenset({"filesystem_write"})
    ),
    "run_shell": ToolDefinition("run_shell", parameters=OBJ, capabilities=frozenset({"shell"})),
    "strict": ToolDefinition(
        "strict",
        parameters={
            "type": "object",
            "properties": {
                "user": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                }
            },
            "required": ["user"],
        },
    ),
}


@pytest.fixture
def registry() -> ToolRegistry:
    handled.clear()
    reg = ToolRegistry()
    for definition in TOOLS.values():
        reg.register(definition, record)
    reg.register(ToolDefinition("unselected", parameters=OBJ), record)
    return reg


def _guard(registry: ToolRegistry, policy: ToolPolicy | None, **kw: Any) -> ToolGuard:
    allowed = kw.pop("allowed", [*TOOLS, "ghost"])
    return ToolGuard(
        registry, allowed=allowed, policy=policy, runtime=kw.pop("runtime", NATIVE), **kw
    )


P = ToolPolicy.model_validate
CASES = [
    # (id, policy, tool, arguments, expected status, reason fragment)
    ("no-policy-allows", None, "plain", {}, "ok", None),
    ("no-policy-block-allows-shell", None, "run_shell", {}, "ok", None),
    ("not-selected", None, "unselected", {}, "denied", "not among this agent's tools"),
    ("selected-not-registered", None, "ghost", {}, "invalid", "not registered"),
    ("deny-list", P({"deny": ["plain"]}), "plain", {}, "denied", "policies.tool.deny"),
    ("deny-beats-allow", P({"allow": ["plain"], "deny": ["plain"]}), "plain", {}, "denied", "deny"),
    (
        "allow-list-excludes",
        P({"allow": ["strict"]}),
        "plain",
        {},
        "denied",
        "not in policies.tool.allow",
    ),
    ("allow-list-includes", P({"allow": ["plain"]}), "plain", {}, "ok", None),
    ("empty-policy-allows-plain", P({}), "plain", {}, "ok", None),
    ("network-denied", P({}), "fetch", {}, "denied", "network"),
    ("network-allowed", P({"network": True}), "fetch", {"url": "https://x.org"}, "ok", None),
    ("fs-read-denied", P({"filesystem": False}), "read_file", {}, "denied", "reads files"),
    ("fs-read-allowed", P({"filesystem": "read"}), "read_file", {}, "ok", None),
    (
        "fs-write-with-read-only",
        P({"filesystem": "read"}),
        "write_file",
        {},
        "denied",
        "writes files",
    ),
    ("fs-write-allowed", P({"filesystem": "write"}), "write_file", {}, "ok", None),
    ("fs-true-allows-write", P({"filesystem": True}), "write_file", {}, "ok", None),
    ("shell-denied", P({"network": True}), "run_shell", {}, "denied", "shell"),
    ("shell-allowed", P({"shell": True}), "run_shell", {}, "ok", None),
    (
        "domain-allowed",
        P({"network": True, "allowed_domains": ["example.com"]}),
        "fetch",
        {"url": "https://api.example.com/v1"},
        "ok",
        None,
    ),
    (
        "domain-denied",
        P({"network": True, "allowed_domains": ["example.com"]}),
        "fetch",
        {"url": "https://evil.com/?example.com"},
        "denied",
        "host 'evil.com'",
    ),
    (
        "lookalike-domain-denied",
        P({"network": True, "allowed_domains": ["example.com"]}),
        "fetch",
        {"url": "https://notexample.com"},
        "denied",
        "allowed_domains",
    ),
    (
        "domain-argument",
        P({"network": True, "allowed_domains": ["*.example.com"]}),
        "fetch",
        {"domain": "other.net"},
        "denied",
        "host 'other.net'",
    ),
    (
        "domain-without-target-args",
        P({"network": True, "allowed_domains": ["example.com"]}),
        "fetch",
        {},
        "ok",
        None,
    ),
    ("schema-invalid", None, "strict", {"user": {}}, "invalid", "at user: 'id' is a required"),
    ("schema-wrong-type", None, "strict", {"user": {"id": 7}}, "invalid", "at user.id"),
]


@pytest.mark.parametrize(
    ("policy", "tool", "arguments", "status", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_policy_and_schema_table(
    registry: ToolRegistry,
    policy: ToolPolicy | None,
    tool: str,
    arguments: dict[str, Any],
    status: str,
    reason: str | None,
) -> None:
    """Refused calls never reach the handler (the counter proves it); allowed ones do, once."""
    guard = _guard(registry, policy)
    call = ToolCall("call_0_0", tool, arguments)
    outcome = guard.execute(call)
    assert outcome.status == status, outcome
    if reason is None:
        assert guard.check(call) is None
        assert outcome == ToolOutcome("ok", "done") and handled == [arguments]
    else:
        assert outcome.reason is not None and reason in outcome.reason
        assert outcome.reason in outcome.content
        assert guard.check(call) == outcome
        assert handled == []


def test_handler_exception_is_a_redacted_one_line_error(registry: ToolRegistry) -> None:
    registry.register(ToolDefinition("explode", parameters=OBJ), explode)
    outcome = _guard(registry, None, allowed=["explode"]).execute(ToolCall("c", "explode"))
    assert outcome.status == "error"
    assert outcome.reason is not None and "RuntimeError: db down" in outcome.reason
    for text in (outcome.reason, outcome.content):
        assert "hunter2" not in text and "ops@example.com" not in text and "\n" not in text


def test_native_timeout_returns_without_waiting_for_the_handler(
    registry: ToolRegistry, tmp_path: Path
) -> None:
    registry.register(ToolDefinition("sleepy", parameters=OBJ), sleepy)
    guard = _guard(registry, None, allowed=["sleepy"], timeout_seconds=0.3)
    started = time.monotonic()
    outcome = guard.execute(
        ToolCall("c", "sleepy", {"pid_file": str(tmp_path / "pid"), "seconds": 2})
    )
    assert time.monotonic() - started < 2
    assert outcome.status == "timeout" and "left to finish" in (outcome.reason or "")
    assert int((tmp_path / "pid").read_text()) == os.getpid()  # it ran in this process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_bridge_timeout_kills_the_handler_process(registry: ToolRegistry, tmp_path: Path) -> None:
    """The handler runs in a child process (another pid) that is gone after the timeout.
    The timeout leaves a loaded machine time to start the child and reach the handler; the
    call still returns long before the handler's 30 s sleep would end."""
    registry.register(ToolDefinition("sleepy", parameters=OBJ, implementation=f"{__name__}:sleepy"))
    guard = _guard(registry, None, allowed=["sleepy"], runtime=BRIDGE, timeout_seconds=6.0)
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    outcome = guard.execute(ToolCall("c", "sleepy", {"pid_file": str(pid_file)}))
    assert time.monotonic() - started < 20
    assert outcome.status == "timeout" and "killed" in (outcome.reason or "")
    child = int(pid_file.read_text())
    assert child != os.getpid()
    assert not _alive(child)


def test_bridge_runs_an_importable_callable_in_a_child(registry: ToolRegistry) -> None:
    """A handler registered as a callable still gets isolation when its ref is importable;
    its prints do not corrupt the reply."""
    registry.register(ToolDefinition("whoami", parameters=OBJ), whoami)
    guard = _guard(registry, None, allowed=["whoami"], runtime=BRIDGE, timeout_seconds=20)
    outcome = guard.execute(ToolCall("c", "whoami", {"q": "é"}))
    assert outcome.status == "ok" and outcome.reason is None
    reply = json.loads(outcome.content)
    assert reply["pid"] != os.getpid() and reply["args"] == {"q": "é"}


def test_bridge_child_errors_are_redacted_errors(registry: ToolRegistry) -> None:
    registry.register(ToolDefinition("explode", parameters=OBJ), explode)
    guard = _guard(registry, None, allowed=["explode"], runtime=BRIDGE, timeout_seconds=20)
    outcome = guard.execute(ToolCall("c", "explode"))
    assert outcome.status == "error" and "RuntimeError: db down" in (outcome.reason or "")
    assert "hunter2" not in outcome.content


def test_bridge_falls_back_in_process_for_closures(registry: ToolRegistry) -> None:
    seen: list[int] = []

    def closure(args: dict[str, Any]) -> str:
        seen.append(os.getpid())
        return "inline"

    registry.register(ToolDefinition("closure", parameters=OBJ), closure)
    guard = _guard(registry, None, allowed=["closure"], runtime=BRIDGE, timeout_seconds=5)
    outcome = guard.execute(ToolCall("c", "closure"))
    assert outcome.status == "ok" and outcome.content == "inline"
    assert "ran in-process" in (outcome.reason or "") and seen == [os.getpid()]


def test_denied_call_is_never_run_in_the_bridge(registry: ToolRegistry) -> None:
    guard = _guard(registry, P({"deny": ["plain"]}), runtime=BRIDGE, timeout_seconds=5)
    assert guard.execute(ToolCall("c", "plain")).status == "denied" and handled == []


def test_trace_payload_is_redacted_by_default() -> None:
    call = ToolCall("call_1_0", "lookup_user", {"user_id": "u-002", "api_key": "sk-abcdefgh1234"})
    outcome = ToolOutcome("ok", "bob@example.com")
    payload = describe_for_trace(call, outcome)
    dumped = json.dumps(payload)
    assert "u-002" not in dumped and "bob@example.com" not in dumped and "sk-abc" not in dumped
    assert payload == {
        "tool_name": "lookup_user",
        "tool_call_id": "call_1_0",
        "arguments_bytes": len(json.dumps(call.arguments, sort_keys=True)),
        "arguments": "[REDACTED]",
        "status": "ok",
        "reason": None,
        "result_bytes": len("bob@example.com"),
        "result": "[REDACTED]",
    }
    started = describe_for_trace(call)
    assert set(started) == {"tool_name", "tool_call_id", "arguments_bytes", "arguments"}


def test_trace_payload_with_recording_on_is_still_redacted() -> None:
    call = ToolCall("c", "lookup_user", {"user_id": "u-002", "api_key": "sk-abcdefgh1234"})
    payload = describe_for_trace(
        call, ToolOutcome("ok", "mail bob@example.com"), record_arguments=True, record_results=True
    )
    assert payload["arguments"] == {"user_id": "u-002", "api_key": "[REDACTED]"}
    assert payload["result"] == "mail [REDACTED_EMAIL]"


def test_outcome_round_trips_for_checkpoints() -> None:
    outcome = ToolOutcome("denied", "no", "because")
    assert ToolOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome


@pytest.mark.parametrize(
    ("host", "domains", "allowed"),
    [
        ("example.com", ["example.com"], True),
        ("a.b.example.com", ["example.com"], True),
        ("EXAMPLE.com.", ["*.example.com"], True),
        ("badexample.com", ["example.com"], False),
        ("example.com", [], False),
    ],
)
def test_host_allowed(host: str, domains: list[str], allowed: bool) -> None:
    assert host_allowed(host, domains) is allowed


def test_runtime_mode_without_isolation_runs_in_process(registry: ToolRegistry) -> None:
    mode = RuntimeMode("custom", "in-process", isolated_tools=False)
    guard = _guard(registry, None, runtime=mode, timeout_seconds=5)
    assert guard.execute(ToolCall("c", "plain")).status == "ok" and len(handled) == 1
