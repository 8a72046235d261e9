"""Migrate unversioned and ``v0`` specs to ``v1``; a ``v1`` spec only loses deprecated fields.

Each rewrite is listed as a human-readable change so ``kneo spec migrate --check`` can say
exactly what would move. Unknown future versions fail fast (``E_UNSUPPORTED_VERSION``)
rather than being guessed at. Pure: data in, data out.

Rewrites:

* unversioned specs that put agent fields at the top level (``name``, ``instructions``,
  ``model``, ``tools``, ...) are nested under ``agent``;
* ``agent.instructions`` -> ``agent.system_prompt``;
* ``agent.max_iterations`` -> ``agent.strategy.max_iterations``;
* ``model: "provider/name"`` (or ``provider:name``, or a bare name) -> ``{provider, name}``;
* ``strategy: react`` -> ``strategy: {type: react}``;
* v0 steps ``{name, agent|function|human}`` -> ``{id, kind, ref}``;
* ``version: v1`` is set first in the document.
"""

from __future__ import annotations

import copy
from typing import Any

from kneo.errors import ErrorCode, SpecError
from kneo.spec.models import SPEC_VERSION

#: Top-level keys of an unversioned single-agent spec that belong under ``agent``.
_LEGACY_AGENT_KEYS = (
    "name",
    "description",
    "instructions",
    "system_prompt",
    "model",
    "strategy",
    "max_iterations",
    "tools",
    "policies",
    "guardrails",
    "memory",
    "runtime_preferences",
    "approval_required",
)
_V0_STEP_KINDS = ("agent", "function", "human")


def detect_version(data: dict[str, Any]) -> str:
    """``unversioned``, ``v0`` or ``v1``; anything else raises ``E_UNSUPPORTED_VERSION``."""
    version = data.get("version")
    if version is None:
        return "unversioned"
    text = str(version).strip().lower()
    if text in {"v0", "0", "0.0"}:
        return "v0"
    if text in {"v1", "1", "1.0"}:
        return "v1"
    raise SpecError(
        f"unsupported spec version {version!r}: migrate understands unversioned, v0 and v1",
        code=ErrorCode.E_UNSUPPORTED_VERSION,
        path="version",
        version=version,
    )


def migrate_spec(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return ``(v1 data, changes)``; ``changes`` is empty when nothing needed rewriting."""
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping", code=ErrorCode.E_SCHEMA, path="<root>")
    source = detect_version(data)
    out = copy.deepcopy(data)
    changes: list[str] = []
    if source == "unversioned" and "agent" not in out:
        moved = [k for k in _LEGACY_AGENT_KEYS if k in out]
        if moved:
            out["agent"] = {k: out.pop(k) for k in moved}
            changes.append(f"moved top-level {', '.join(moved)} under 'agent'")
    agents: list[tuple[str, dict[str, Any]]] = []
    if isinstance(out.get("agent"), dict):
        agents.append(("agent", out["agent"]))
    comps = out.get("components")
    if isinstance(comps, dict) and isinstance(comps.get("agents"), dict):
        agents += [
            (f"components.agents.{k}", v) for k, v in comps["agents"].items() if isinstance(v, dict)
        ]
    for at, agent in agents:
        changes += _migrate_agent(agent, at)
    wf = out.get("workflow")
    if isinstance(wf, dict):
        for key in ("steps", "nodes", "participants"):
            if isinstance(wf.get(key), list):
                for i, step in enumerate(wf[key]):
                    if isinstance(step, dict):
                        changes += _migrate_step(step, f"workflow.{key}[{i}]")
    if out.get("version") != SPEC_VERSION:
        changes.insert(0, f"set version: {SPEC_VERSION} (was {source})")
    out.pop("version", None)
    return {"version": SPEC_VERSION, **out}, changes


def _migrate_agent(agent: dict[str, Any], at: str) -> list[str]:
    changes: list[str] = []
    if "instructions" in agent:
        value = agent.pop("instructions")
        if agent.get("system_prompt"):
            changes.append(f"dropped {at}.instructions (system_prompt already set)")
        else:
            agent["system_prompt"] = value
            changes.append(f"renamed {at}.instructions -> {at}.system_prompt")
    if isinstance(agent.get("strategy"), str):
        agent["strategy"] = {"type": agent["strategy"]}
        changes.append(f"expanded {at}.strategy to a mapping")
    if "max_iterations" in agent:
        value = agent.pop("max_iterations")
        strategy = agent.setdefault("strategy", {})
        if isinstance(strategy, dict) and "max_iterations" not in strategy:
            strategy["max_iterations"] = value
            changes.append(f"moved {at}.max_iterations -> {at}.strategy.max_iterations")
        else:
            changes.append(f"dropped {at}.max_iterations (strategy.max_iterations already set)")
    model = agent.get("model")
    if isinstance(model, str):
        for sep in ("/", ":"):
            if sep in model:
                provider, name = model.split(sep, 1)
                break
        else:
            provider, name = ("dummy" if model == "dummy" else "openai"), model
        agent["model"] = {"provider": provider, "name": name}
        changes.append(f"expanded {at}.model {model!r} to provider/name")
    _reorder(agent, _AGENT_KEY_ORDER)
    return changes


_AGENT_KEY_ORDER = (
    "name",
    "description",
    "system_prompt",
    "model",
    "strategy",
    "runtime_preferences",
    "tools",
)


def _reorder(mapping: dict[str, Any], first: tuple[str, ...]) -> None:
    """Put well-known keys first so migrated YAML reads like a hand-written spec."""
    ordered = {k: mapping[k] for k in first if k in mapping}
    rest = {k: v for k, v in mapping.items() if k not in ordered}
    mapping.clear()
    mapping.update(ordered)
    mapping.update(rest)


def _migrate_step(step: dict[str, Any], at: str) -> list[str]:
    changes: list[str] = []
    if "id" not in step and "name" in step:
        step["id"] = step.pop("name")
        changes.append(f"renamed {at}.name -> {at}.id")
    if "ref" not in step:
        for kind in _V0_STEP_KINDS:
            if kind in step:
                step["kind"] = kind
                step["ref"] = step.pop(kind)
                changes.append(f"rewrote {at}.{kind} -> kind: {kind}, ref")
                break
    _reorder(step, ("id", "kind", "ref"))
    return changes
