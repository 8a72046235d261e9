"""Every diagnostic code, triggered by the smallest spec that shows it (table-driven)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kneo.runtimes import RuntimeRegistry
from kneo.spec.diagnostics import CODES, Diagnostic
from kneo.spec.loader import load_spec_data
from kneo.spec.validation import validate_spec
from kneo.tools import ToolDefinition, ToolRegistry

SAFE_MODULE = "def run(text):\n    return text.upper()\n"
UNSAFE_MODULE = (
    "import subprocess\n\ndef run(args):\n    return subprocess.run(['true']).__class__.__name__\n"
)
FROM_OS_MODULE = "from os import path\n\ndef run(text):\n    return path.basename(text)\n"

POLICY = {"tool": {"allow": ["web_search"], "network": True, "allowed_domains": ["example.com"]}}


def agent(**extra: Any) -> dict[str, Any]:
    return {"name": "a", "model": {"provider": "dummy"}, **extra}


def spec_with(**parts: Any) -> dict[str, Any]:
    return {"version": "v1", **parts}


def seq(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sequential", "steps": list(steps)}


def graph(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], start: str | None = "n1"
) -> dict[str, Any]:
    return {"type": "graph", "nodes": nodes, "edges": edges, **({"start": start} if start else {})}


N1 = {"id": "n1", "kind": "agent", "ref": "a"}
N2 = {"id": "n2", "kind": "agent", "ref": "a"}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "E_UNKNOWN_TOOL",
        spec_with(agent=agent(tools=["nope"])),
        "agent.tools[0]",
        "unknown-tool-shorthand",
    ),
    (
        "E_UNKNOWN_TOOL",
        spec_with(agent=agent(tools={"include": ["web_search", "nope"]}, policies=POLICY)),
        "agent.tools.include[1]",
        "unknown-tool-explicit",
    ),
    (
        "E_UNKNOWN_TOOL",
        spec_with(agent=agent(approval_required=["nope"])),
        "agent.approval_required[0]",
        "unknown-approval-tool",
    ),
    (
        "E_UNKNOWN_TOOL",
        spec_with(agent=agent(model={"provider": "dummy", "tool_choice": {"name": "nope"}})),
        "agent.model.tool_choice.name",
        "unknown-tool-choice",
    ),
    (
        "E_UNKNOWN_TOOL",
        spec_with(
            agent=agent(model={"provider": "dummy", "script": [{"tool_calls": [{"name": "zap"}]}]})
        ),
        "agent.model.script[0].tool_calls[0].name",
        "unknown-scripted-tool",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(agent=agent(), workflow=seq({"id": "s", "kind": "agent", "ref": "ghost"})),
        "workflow.steps[0].ref",
        "unknown-agent",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(workflow=seq({"id": "s", "kind": "human", "ref": "boss"})),
        "workflow.steps[0].ref",
        "unknown-human",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "draft"})),
        "workflow.steps[0].ref",
        "undeclared-function",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "helpers:missing"})),
        "workflow.steps[0].ref",
        "function-not-defined",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "no_such_module_xyz:f"})),
        "workflow.steps[0].ref",
        "module-not-found",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(agent=agent(), workflow=graph([N1], [{"from": "n1", "to": "n9"}])),
        "workflow.edges[0].to",
        "edge-target",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(
            agent=agent(),
            workflow={
                "type": "handoff",
                "participants": [N1],
                "selector": {"sequence": ["n1", "x"]},
            },
        ),
        "workflow.selector.sequence[1]",
        "selector-entry",
    ),
    (
        "E_UNKNOWN_REF",
        spec_with(
            components={"tools": {"t": {"implementation": "helpers:nothing"}}}, agent=agent()
        ),
        "components.tools.t.implementation",
        "tool-implementation",
    ),
    (
        "E_DUPLICATE_ID",
        spec_with(agent=agent(), workflow=seq(N1, dict(N1))),
        "workflow.steps[1].id",
        "duplicate-step",
    ),
    (
        "E_UNKNOWN_RUNTIME",
        spec_with(
            agent=agent(runtime_preferences={"preferred_mode": "warp", "allowed_modes": ["warp"]})
        ),
        "agent.runtime_preferences.allowed_modes[0]",
        "unknown-runtime",
    ),
    (
        "E_RUNTIME_NOT_ALLOWED",
        spec_with(
            agent=agent(
                runtime_preferences={"preferred_mode": "bridge", "allowed_modes": ["native"]}
            )
        ),
        "agent.runtime_preferences.preferred_mode",
        "preferred-not-allowed",
    ),
    (
        "E_UNKNOWN_SKILL",
        spec_with(agent=agent(skills=["nope"])),
        "agent.skills[0]",
        "unknown-skill",
    ),
    (
        "E_AGENT_CYCLE",
        spec_with(agent=agent(tools=["me"]), components={"tools": {"me": {"agent": "a"}}}),
        "agent",
        "agent-tool-cycle",
    ),
    (
        "E_EMPTY_WORKFLOW",
        spec_with(workflow={"type": "concurrent", "participants": []}),
        "workflow.participants",
        "empty",
    ),
    (
        "E_ROUTE_OPTION_UNKNOWN",
        spec_with(
            agent=agent(),
            workflow=graph(
                [N1, {"id": "pick", "kind": "human", "ref": "router"}, N2],
                [{"from": "n1", "to": "pick"}, {"from": "pick", "to": "n2"}],
            ),
            components={"humans": {"router": {"options": ["n2", "n3"]}}},
        ),
        "components.humans.router.options[1]",
        "route-option-not-a-node",
    ),
    (
        "E_GRAPH_NO_START",
        spec_with(agent=agent(), workflow=graph([N1], [], start=None)),
        "workflow.start",
        "no-start",
    ),
    (
        "E_GRAPH_NO_START",
        spec_with(agent=agent(), workflow=graph([N1], [], start="zz")),
        "workflow.start",
        "start-not-a-node",
    ),
    (
        "E_GRAPH_UNREACHABLE",
        spec_with(agent=agent(), workflow=graph([N1, N2], [])),
        "workflow.nodes[1]",
        "unreachable",
    ),
    (
        "E_INVALID_CONDITION",
        spec_with(
            agent=agent(),
            workflow=graph([N1, N2], [{"from": "n1", "to": "n2", "condition": {"regex": "(["}}]),
        ),
        "workflow.edges[0].condition.regex",
        "bad-regex",
    ),
    (
        "E_UNSAFE_TOOL_IMPORT",
        spec_with(
            agent=agent(tools={"include": ["t"]}, policies={"tool": {"allow": ["t"]}}),
            components={"tools": {"t": {"implementation": "unsafe_mod:run"}}},
        ),
        "components.tools.t.implementation",
        "unsafe-tool",
    ),
    (
        "E_UNSAFE_FUNCTION_IMPORT",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "from_os_mod:run"})),
        "workflow.steps[0].ref",
        "unsafe-function-from-import",
    ),
    (
        "E_UNSAFE_FUNCTION_IMPORT",
        spec_with(
            workflow=seq({"id": "s", "kind": "function", "ref": "f"}),
            components={"functions": {"f": "unsafe_mod:run"}},
        ),
        "components.functions.f.ref",
        "unsafe-function-component",
    ),
    (
        "E_UNSAFE_FUNCTION_IMPORT",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "os:system"})),
        "workflow.steps[0].ref",
        "names-the-primitive",
    ),
    (
        "W_TOOL_POLICY_UNRESTRICTED",
        spec_with(agent=agent(tools=["summarize"])),
        "agent.tools",
        "shorthand",
    ),
    (
        "W_TOOL_POLICY_UNRESTRICTED",
        spec_with(agent=agent(tools="all", policies={"tool": {"allow": ["summarize"]}})),
        "agent.tools",
        "all",
    ),
    (
        "W_NETWORK_WITHOUT_ALLOWED_DOMAINS",
        spec_with(
            agent=agent(tools={"include": ["web_search"]}, policies={"tool": {"network": True}})
        ),
        "agent.tools.include[0]",
        "network-no-domains",
    ),
    (
        "W_SHELL_TOOL",
        spec_with(
            agent=agent(tools={"include": ["sh"]}, policies={"tool": {"shell": True}}),
            components={
                "tools": {"sh": {"implementation": "helpers:run", "capabilities": ["shell"]}}
            },
        ),
        "agent.tools.include[0]",
        "shell-tool",
    ),
    (
        "W_FILESYSTEM_WRITE",
        spec_with(
            agent=agent(
                tools={"include": ["summarize"]}, policies={"tool": {"filesystem": "write"}}
            )
        ),
        "agent.policies.tool.filesystem",
        "policy-allows-writes",
    ),
    (
        "W_TOOL_CAPABILITY_BLOCKED",
        spec_with(
            agent=agent(tools={"include": ["web_search"]}, policies={"tool": {"network": False}})
        ),
        "agent.tools.include[0]",
        "network-denied",
    ),
    (
        "W_TOOL_DENIED_BY_POLICY",
        spec_with(agent=agent(tools={"include": ["web_search", "summarize"]}, policies=POLICY)),
        "agent.tools.include[1]",
        "tool-not-in-allow",
    ),
    (
        "W_TOOL_DENIED_BY_POLICY",
        spec_with(
            agent=agent(
                tools=["ask_question", "summarize"], policies={"tool": {"deny": ["summarize"]}}
            )
        ),
        "agent.tools[1]",
        "tool-in-deny",
    ),
    (
        "W_HUMAN_APPROVAL_MISSING",
        spec_with(
            agent=agent(tools={"include": ["sh"]}, policies={"tool": {"shell": True}}),
            components={
                "tools": {"sh": {"implementation": "helpers:run", "capabilities": ["shell"]}}
            },
        ),
        "agent",
        "privileged-tool",
    ),
    (
        "W_HUMAN_APPROVAL_MISSING",
        spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "unsafe_mod:run"})),
        "workflow",
        "unsafe-import",
    ),
    (
        "W_DEPRECATED_FIELD",
        spec_with(agent=agent(instructions="hi")),
        "agent.instructions",
        "instructions",
    ),
    (
        "W_DEPRECATED_FIELD",
        spec_with(agent=agent(max_iterations=3)),
        "agent.max_iterations",
        "max-iterations",
    ),
    (
        "I_UNUSED_COMPONENT",
        spec_with(
            workflow=seq({"id": "s", "kind": "function", "ref": "helpers:run"}),
            components={"humans": {"idle": {}}},
        ),
        "components.humans.idle",
        "unused-human",
    ),
    ("I_NO_GUARDRAILS", spec_with(agent=agent()), "agent.guardrails", "no-guardrails"),
]


@pytest.fixture
def modules(project: Path) -> Path:
    (project / "helpers.py").write_text(SAFE_MODULE)
    (project / "unsafe_mod.py").write_text(UNSAFE_MODULE)
    (project / "from_os_mod.py").write_text(FROM_OS_MODULE)
    return project


def run(
    data: dict[str, Any], base: Path, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> list[Diagnostic]:
    return validate_spec(
        load_spec_data(copy.deepcopy(data)),
        tool_registry=tools,
        runtime_registry=runtimes,
        base_dir=base,
    )


@pytest.mark.parametrize(
    ("code", "data", "path"), [c[:3] for c in CASES], ids=[c[3] for c in CASES]
)
def test_each_code(
    code: str,
    data: dict[str, Any],
    path: str,
    modules: Path,
    tools: ToolRegistry,
    runtimes: RuntimeRegistry,
) -> None:
    found = run(data, modules, tools, runtimes)
    assert (code, path) in {(d.code, d.path) for d in found}, found
    match = next(d for d in found if d.code == code and d.path == path)
    assert match.severity == CODES[code][0]
    assert match.message
    assert match.to_dict()["code"] == code


def test_every_validator_code_has_a_case() -> None:
    load_time = {"E_FILE_NOT_FOUND", "E_YAML", "E_SCHEMA", "E_UNSUPPORTED_VERSION", "E_UNKNOWN_ENV"}
    load_time |= {c for c in CODES if c.startswith(("E_DOCUMENT_", "E_NOT_A_", "E_NUMBER_"))}
    policy = {c for c in CODES if c.startswith("E_POLICY_")}
    # asked of MCP servers by `spec validate|lint`: tests/mcp_tests/test_mcp_client.py
    probed = {"E_MCP_TOOL_UNKNOWN", "W_MCP_UNREACHABLE"}
    # what the project lets a spec reach: tests/policy/test_access.py
    access = {
        "E_SECRET_UNDECLARED",
        "E_MCP_SERVER_UNDECLARED",
        "E_PROCESS_UNDECLARED",
        "E_DESTINATION_NOT_ALLOWED",
        "E_URL_HAS_CREDENTIALS",
        "E_SECRET_NOT_BOUND",
        "E_FUNCTION_NOT_ALLOWED",
        "W_PROCESS_BUNDLE_ONLY",
    }
    # a signed spec's pinned code that changed: tests/controller/test_code_pins.py
    access |= {"E_CODE_DIGEST_MISMATCH"}
    assert set(CODES) - load_time - policy - probed - access == {c[0] for c in CASES}


def test_clean_spec_has_no_findings(
    modules: Path, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    data = spec_with(
        agent=agent(
            tools={"include": ["web_search"]},
            policies=POLICY,
            guardrails=[{"name": "g", "stage": "output"}],
        ),
        workflow=seq(
            N1,
            {"id": "ok", "kind": "human", "ref": "boss"},
            {"id": "f", "kind": "function", "ref": "helpers:run"},
        ),
        components={"humans": {"boss": {"assignee": "lead"}}},
    )
    assert run(data, modules, tools, runtimes) == []


def test_errors_come_first(modules: Path, tools: ToolRegistry, runtimes: RuntimeRegistry) -> None:
    data = spec_with(agent=agent(tools=["summarize", "nope"], instructions="x"))
    severities = [d.severity for d in run(data, modules, tools, runtimes)]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_registry_tool_with_unsafe_implementation(project: Path, runtimes: RuntimeRegistry) -> None:
    (project / "shell_tools.py").write_text("import os\n\ndef wipe(args):\n    return 'no'\n")
    registry = ToolRegistry()
    registry.register(
        ToolDefinition(name="wipe", implementation="shell_tools:wipe"), lambda args: "no"
    )
    data = spec_with(
        agent=agent(tools={"include": ["wipe"]}, policies={"tool": {"allow": ["wipe"]}})
    )
    found = run(data, project, registry, runtimes)
    assert ("E_UNSAFE_TOOL_IMPORT", "agent.tools.include[0]") in {(d.code, d.path) for d in found}


def test_validation_does_not_execute_user_code(
    project: Path, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    marker = project / "executed"
    pkg = project / "pkg_side_effect"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (pkg / "mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef f(text):\n    return text\n"
    )
    data = spec_with(workflow=seq({"id": "s", "kind": "function", "ref": "pkg_side_effect.mod:f"}))
    assert [d.code for d in run(data, project, tools, runtimes) if d.severity == "error"] == []
    assert not marker.exists()


def test_human_step_satisfies_approval(
    modules: Path, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    data = spec_with(
        agent=agent(tools={"include": ["sh"]}, policies={"tool": {"shell": True}}),
        workflow=seq(N1, {"id": "ok", "kind": "human", "ref": "boss"}),
        components={
            "humans": {"boss": {}},
            "tools": {"sh": {"implementation": "helpers:run", "capabilities": ["shell"]}},
        },
    )
    assert "W_HUMAN_APPROVAL_MISSING" not in {d.code for d in run(data, modules, tools, runtimes)}


def _route_spec(options: list[str], *, family: str = "graph") -> dict[str, Any]:
    nodes = [N1, {"id": "pick", "kind": "human", "ref": "router"}, N2]
    workflow = (
        graph(nodes, [{"from": "n1", "to": "pick"}, {"from": "pick", "to": "n2"}])
        if family == "graph"
        else seq(*nodes)
    )
    return spec_with(
        agent=agent(), workflow=workflow, components={"humans": {"router": {"options": options}}}
    )


@pytest.mark.parametrize(
    ("options", "family", "flagged"),
    [
        (["n1", "n2"], "graph", []),  # a route selection: every option is a node
        (["n2", "n3"], "graph", ["components.humans.router.options[1]"]),
        (
            ["n2_typo", "n1", "gone"],
            "graph",
            ["components.humans.router.options[0]", "components.humans.router.options[2]"],
        ),
        (["yes", "no"], "graph", []),  # plain answers: the choice is the node's output
        ([], "graph", []),
        (["n2", "n3"], "sequential", []),  # no graph, no routes
    ],
    ids=["all-nodes", "one-unknown", "two-unknown", "plain-choice", "no-options", "sequential"],
)
def test_route_option_unknown(
    options: list[str],
    family: str,
    flagged: list[str],
    modules: Path,
    tools: ToolRegistry,
    runtimes: RuntimeRegistry,
) -> None:
    found = run(_route_spec(options, family=family), modules, tools, runtimes)
    hits = [d for d in found if d.code == "E_ROUTE_OPTION_UNKNOWN"]
    assert [d.path for d in hits] == flagged
    assert all(d.is_error and "pick" in d.message for d in hits)
