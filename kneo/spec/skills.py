"""The skills a spec declares, as a catalog, and a run's skills overlay applied to a spec.

A run may switch declared skills on (``add``) or off (``remove``) for its agents when it
starts (``POST /v1/runs {"skills": ...}``, ``kneo run --skill/--without-skill``). The overlay
edits the spec document before it is validated and checked against the environment's policy,
so what a skill brings (its tools) passes the same checks as anything written in the file,
and the stored spec of the run is the one it ran. It never declares a skill of its own: ``add``
names only skills the spec or the project (``skills:`` in ``.kneo/config.yaml``) declares
(``E_UNKNOWN_SKILL``); a project's skill it switches on is written into the run's spec.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kneo.errors import ErrorCode, SpecError
from kneo.spec.extensions import SkillsOverlay
from kneo.spec.loader import with_project_skills
from kneo.spec.models import Spec
from kneo.spec.project import ProjectConfig

__all__ = ["apply_skills_overlay", "project_catalog", "skills_catalog"]


def skills_catalog(spec: Spec) -> list[dict[str, Any]]:
    """Each declared skill: its name, description, tools and the agents that use it."""
    users: dict[str, list[str]] = {}
    for agent in spec.all_agents().values():
        for name in agent.skills:
            users.setdefault(name, []).append(agent.name)
    return [
        {
            "name": name,
            "description": skill.description,
            "tools": list(skill.tools),
            "agents": users.get(name, []),
        }
        for name, skill in sorted(spec.skills.items())
    ]


def project_catalog(project: ProjectConfig) -> list[dict[str, Any]]:
    """The skills a project declares (``skills:`` in ``.kneo/config.yaml``), by name: what
    any of its specs' agents may switch on by name, and a run's overlay may add. Each with
    its description, instructions, tools and the file the instructions are kept in
    (``path``, relative to the project root; ``None`` when written in the config)."""
    return [
        {
            "name": name,
            "description": skill.description,
            "instructions": project.skill_spec(name).instructions,
            "tools": list(skill.tools),
            "path": skill.instructions_file,
            "source": "project",
        }
        for name, skill in sorted(project.skills.items())
    ]


def _agents(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, its mapping)`` of every agent in a raw spec document."""
    top = document.get("agent")
    if isinstance(top, dict):
        yield str(top.get("name", "")), top
    components = document.get("components")
    agents = components.get("agents") if isinstance(components, dict) else None
    for key, body in (agents or {}).items():
        if isinstance(body, dict):
            yield str(body.get("name", key)), body


def _refuse(code: str, path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}", code=code, path=path)


def apply_skills_overlay(
    document: Mapping[str, Any],
    overlay: SkillsOverlay | Mapping[str, Any],
    project: ProjectConfig | None = None,
) -> dict[str, Any]:
    """A copy of ``document`` with ``overlay`` applied to its agents' ``skills`` (to those
    ``overlay.agents`` names, else every agent). A skill ``add`` names that the spec does not
    declare but the ``project`` does is declared in the copy, as the project's skills an
    agent names are (:func:`~kneo.spec.loader.with_project_skills`). Raises
    :class:`SpecError` naming the overlay's field: a skill neither declares, an agent the
    spec does not have."""
    if not isinstance(overlay, SkillsOverlay):
        overlay = SkillsOverlay.model_validate(overlay)
    data = {**document}
    listed = data.get("skills")
    declared: dict[str, Any] = listed if isinstance(listed, dict) else {}
    known = {*declared, *(project.skills if project is not None else ())}
    for field in ("add", "remove"):
        for i, name in enumerate(getattr(overlay, field)):
            if name not in known:
                raise _refuse(
                    ErrorCode.E_UNKNOWN_SKILL,
                    f"skills.{field}[{i}]",
                    f"skill {name!r} is declared neither by the spec nor by the project "
                    f"(declared: {', '.join(sorted(known)) or 'none'})",
                )
    from_project = [n for n in dict.fromkeys(overlay.add) if n not in declared]
    if from_project and project is not None:
        data = with_project_skills(data, project, from_project)
    copied = _copy_agents(data)
    names = [name for name, _ in _agents(copied)]
    for i, name in enumerate(overlay.agents or []):
        if name not in names:
            raise _refuse(
                ErrorCode.E_UNKNOWN_REF,
                f"skills.agents[{i}]",
                f"agent {name!r} is not in the spec (agents: {', '.join(names) or 'none'})",
            )
    chosen = set(overlay.agents) if overlay.agents is not None else set(names)
    for name, body in _agents(copied):
        if name in chosen:
            current = [s for s in body.get("skills") or [] if s not in overlay.remove]
            body["skills"] = list(dict.fromkeys([*current, *overlay.add]))
    return copied


def _copy_agents(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its agent mappings copied, so the overlay never edits the caller's."""
    if isinstance(data.get("agent"), dict):
        data["agent"] = {**data["agent"]}
    components = data.get("components")
    if isinstance(components, dict) and isinstance(components.get("agents"), dict):
        data["components"] = {
            **components,
            "agents": {
                k: {**v} if isinstance(v, dict) else v for k, v in components["agents"].items()
            },
        }
    return data
