"""The original platform's spec dialect (``kneo-serv``) to Kneo's ``v1``: data in, data and a
report out (``kneo spec migrate --from kneo-serv``). Pure.

Rewrites (each a line of the report):

* top-level ``tools:`` -> ``components.tools``; an ``implementation`` written
  ``pkg.module.fn`` -> ``pkg.module:fn``;
* ``components.functions.<name>.implementation`` -> ``ref`` (same spelling rule);
* ``agent.as_agent`` -> ``agent.workflow``;
* ``model.token_budget: N`` (the original's per-run ceiling) -> ``agent.token_budget:
  {per_run: N}``;
* top-level ``mcp_servers`` -> ``mcp.imports`` (its ``command`` and ``args`` as one command,
  its ``url``; declaring the server in ``.kneo/config.yaml`` is better: the report says so).

Dropped with a report line (no counterpart; the report says where it went): top-level
``policies`` (Kneo's policy is the environment's file), ``model.extra``, ``agent.defaults``,
``agent.history``, ``runtime_preferences.native_provider|adapter_ref|bridge_provider``, a
step's ``fallback_ref`` and ``enabled``, ``metadata: null``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

__all__ = ["ORIGINAL_FIELDS", "is_kneo_serv_field", "migrate_kneo_serv"]

#: Paths (regular expressions over a diagnostic's dotted path) that are the original's
#: fields: ``kneo spec validate`` names the migration on them.
ORIGINAL_FIELDS = (
    r"^tools(\.|$)",
    r"^mcp_servers(\.|$)",
    r"^policies(\.|$)",
    r"^components\.functions\.[^.]+\.implementation$",
    r"(^|\.)model\.(token_budget|extra)$",
    r"(^|\.)as_agent$",
    r"(^|\.)defaults$",
    r"(^|\.)history$",
    r"(^|\.)runtime_preferences\.(native_provider|adapter_ref|bridge_provider)$",
    r"\.fallback_ref$",
    r"^workflow\.(steps|nodes|participants)\[\d+\]\.enabled$",
)
_FIELDS = tuple(re.compile(p) for p in ORIGINAL_FIELDS)


def is_kneo_serv_field(path: str) -> bool:
    """Whether a spec path is one of the original dialect's fields."""
    return any(p.search(path) for p in _FIELDS)


def _ref(value: str) -> str:
    """``pkg.module.fn`` -> ``pkg.module:fn`` (a ``:`` form is kept)."""
    if ":" in value or "." not in value:
        return value
    module, _, name = value.rpartition(".")
    return f"{module}:{name}"


def migrate_kneo_serv(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``(Kneo v1 data, report)`` of an original spec."""
    out = copy.deepcopy(data)
    report: list[str] = []
    if out.get("version") != "v1":
        report.append(f"set version: v1 (was {out.get('version')!r})")
    out["version"] = "v1"
    components = out.setdefault("components", {})
    tools = out.pop("tools", None)
    if isinstance(tools, dict):
        target = components.setdefault("tools", {})
        for name, tool in tools.items():
            if isinstance(tool, dict) and isinstance(tool.get("implementation"), str):
                before = tool["implementation"]
                tool["implementation"] = _ref(before)
                if tool["implementation"] != before:
                    report.append(f"tools.{name}.implementation {before!r} -> {_ref(before)!r}")
            target[name] = tool
        report.append(f"moved tools ({', '.join(tools)}) -> components.tools")
    for name, function in (components.get("functions") or {}).items():
        if isinstance(function, dict) and "implementation" in function:
            before = str(function.pop("implementation"))
            function["ref"] = _ref(before)
            report.append(
                f"components.functions.{name}.implementation {before!r} -> ref {_ref(before)!r}"
            )
    agents = [("agent", out.get("agent"))] + [
        (f"components.agents.{k}", v) for k, v in (components.get("agents") or {}).items()
    ]
    for at, agent in agents:
        if isinstance(agent, dict):
            report += _agent(agent, at)
    report += _mcp(out)
    if "policies" in out:
        out.pop("policies")
        report.append(
            "dropped policies: a Kneo spec names no policy; put it in the environment's "
            "policy file (environments/<env>.yaml)"
        )
    if out.get("metadata") is None and "metadata" in out:
        out.pop("metadata")
    workflow = out.get("workflow")
    if isinstance(workflow, dict):
        for key in ("steps", "nodes", "participants"):
            for i, step in enumerate(workflow.get(key) or []):
                if isinstance(step, dict):
                    report += _step(step, f"workflow.{key}[{i}]")
    if not components:
        out.pop("components")
    return out, report


def _agent(agent: dict[str, Any], at: str) -> list[str]:
    report: list[str] = []
    if "as_agent" in agent:
        agent["workflow"] = agent.pop("as_agent")
        report.append(f"{at}.as_agent -> {at}.workflow")
    model = agent.get("model")
    if isinstance(model, dict):
        if "token_budget" in model:
            budget = model.pop("token_budget")
            if budget is not None:
                agent["token_budget"] = {"per_run": budget}
                report.append(f"{at}.model.token_budget -> {at}.token_budget.per_run")
        if "extra" in model:
            model.pop("extra")
            report.append(f"dropped {at}.model.extra (no counterpart: provider options)")
    for key in ("defaults", "history"):
        if key in agent:
            agent.pop(key)
            report.append(f"dropped {at}.{key} (no counterpart)")
    prefs = agent.get("runtime_preferences")
    if isinstance(prefs, dict):
        for key in ("native_provider", "adapter_ref", "bridge_provider"):
            if key in prefs:
                prefs.pop(key)
                report.append(f"dropped {at}.runtime_preferences.{key} (no counterpart)")
    for key in ("guardrails", "memory", "strategy", "runtime_preferences"):
        if key in agent and agent[key] is None:
            agent.pop(key)
    if isinstance(agent.get("middleware"), list) and any(
        isinstance(m, str) for m in agent["middleware"]
    ):
        names = [m for m in agent.pop("middleware") if isinstance(m, str)]
        report.append(
            f"dropped {at}.middleware {names}: Kneo's middleware layers are typed objects "
            "(docs/spec.md#middleware); declare them again"
        )
    return report


def _mcp(out: dict[str, Any]) -> list[str]:
    servers = out.pop("mcp_servers", None)
    if not isinstance(servers, dict):
        return []
    imports = out.setdefault("mcp", {}).setdefault("imports", [])
    for name, server in servers.items():
        entry: dict[str, Any] = {"name": name}
        if isinstance(server, dict) and server.get("command"):
            entry["command"] = [server["command"], *(server.get("args") or [])]
        elif isinstance(server, dict) and (server.get("url") or server.get("sse_url")):
            entry["transport"] = "http" if server.get("url") else "sse"
            entry["url"] = server.get("url") or server.get("sse_url")
        imports.append(entry)
    return [
        f"moved mcp_servers ({', '.join(servers)}) -> mcp.imports; better: declare each under "
        "mcp_servers in .kneo/config.yaml and import it by name (a spec's own command runs "
        "only from a signed bundle where the environment allows it)"
    ]


def _step(step: dict[str, Any], at: str) -> list[str]:
    report: list[str] = []
    if "fallback_ref" in step:
        step.pop("fallback_ref")
        report.append(f"dropped {at}.fallback_ref (use on_error: retry, continue or pause)")
    if step.get("on_error") == "fallback":
        step["on_error"] = "fail"
        report.append(f"{at}.on_error fallback -> fail")
    if step.pop("enabled", True) is False:
        report.append(f"dropped {at}.enabled: false (remove the step to disable it)")
    return report
