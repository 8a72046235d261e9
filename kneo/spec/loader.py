"""Load a spec: YAML -> environment overlay -> project defaults -> ``Spec``.

Order matters and is the same everywhere (CLI, HTTP, controller): the overlay
``<stem>.<env>.yaml`` is deep-merged over the base, then the project's runtime and model
defaults fill only what the spec leaves unset, then the result is validated as v1.
Environment *policy* is applied later, on diagnostics (see ``kneo.policy.check``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kneo.documents import parse_yaml
from kneo.errors import ErrorCode, SpecError
from kneo.spec.models import SPEC_VERSION, Spec
from kneo.spec.project import ProjectConfig, declared_environments, judge_environment
from kneo.spec.project_blocks import DEFAULT_OVERLAY_PATTERN
from kneo.spec.yaml_io import read_yaml_mapping, validation_error_to_spec_error


@dataclass(frozen=True)
class LoadedSpec:
    """A spec as loaded: where from, for which environment, and the resolved data."""

    path: Path
    env: str | None
    overlays: list[Path]
    #: Fully resolved (overlays merged, project defaults applied); what ``spec`` was built from.
    data: dict[str, Any]
    spec: Spec
    #: ``(file, text)`` of every file read, overlay first, for line lookups in diagnostics.
    sources: list[tuple[str, str]] = field(default_factory=list, repr=False, compare=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def deep_merge(base: Any, overlay: Any) -> Any:
    """Overlay wins. Mappings merge recursively; lists of mappings that all carry ``id``
    (steps, nodes, participants) merge item by item on ``id`` (base order kept, new ids
    appended); any other list, and any scalar, is replaced. ``base`` is not modified."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if _id_list(base) and _id_list(overlay):
        by_id = {item["id"]: item for item in overlay}
        out = [
            deep_merge(item, by_id.pop(item["id"])) if item["id"] in by_id else item
            for item in base
        ]
        out.extend(copy.deepcopy(item) for item in overlay if item["id"] in by_id)
        return out
    return copy.deepcopy(overlay)


def _id_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in value)
    )


def _agent_mappings(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The mapping of every agent of a spec document (``agent`` and ``components.agents``)."""
    agents: list[dict[str, Any]] = []
    if isinstance(data.get("agent"), dict):
        agents.append(data["agent"])
    components = data.get("components")
    if isinstance(components, dict) and isinstance(components.get("agents"), dict):
        agents.extend(a for a in components["agents"].values() if isinstance(a, dict))
    return agents


def project_skills_used(data: dict[str, Any], project: ProjectConfig) -> list[str]:
    """The project's skills a spec document's agents name and the spec does not declare
    itself (its own skill of a name wins over the project's)."""
    if not project.skills:
        return []
    own = data.get("skills")
    declared = own if isinstance(own, dict) else {}
    named: list[str] = []
    for agent in _agent_mappings(data):
        listed = agent.get("skills")
        if isinstance(listed, list):
            named += [name for name in listed if isinstance(name, str)]
    return [n for n in dict.fromkeys(named) if n in project.skills and n not in declared]


def with_project_skills(
    data: dict[str, Any], project: ProjectConfig, names: list[str]
) -> dict[str, Any]:
    """``data`` (not copied) with the project's skills ``names`` written under its
    ``skills:``, so the stored (and signed) document holds what its agents were given."""
    own = data.get("skills")
    if own is not None and not isinstance(own, dict):
        return data  # (the spec's validation names the field)
    data["skills"] = {
        **(own or {}),
        **{n: project.skill_spec(n).model_dump(exclude_defaults=True) for n in names},
    }
    return data


def apply_project_defaults(data: dict[str, Any], project: ProjectConfig | None) -> dict[str, Any]:
    """Fill each agent's ``model`` and ``runtime_preferences`` gaps from the project config,
    and declare the project's skills the agents name (:func:`project_skills_used`)."""
    if project is None:
        return data
    model_defaults = project.model.model_dump(exclude_none=True)
    runtime_defaults = project.runtime.model_dump(exclude_none=True)
    skills = project_skills_used(data, project)
    if not model_defaults and not runtime_defaults and not skills:
        return data
    out = copy.deepcopy(data)
    if skills:
        with_project_skills(out, project, skills)
    for agent in _agent_mappings(out):
        for key, defaults in (("model", model_defaults), ("runtime_preferences", runtime_defaults)):
            if not defaults:
                continue
            current = agent.get(key)
            if current is None:
                agent[key] = dict(defaults)
            elif isinstance(current, dict):
                agent[key] = {**defaults, **current}
    return out


def check_version(data: dict[str, Any], *, source: str) -> None:
    """Only ``version: v1`` loads; older shapes point at ``kneo spec migrate``."""
    version = data.get("version")
    if version == SPEC_VERSION:
        return
    if version is None:
        message = f"{source}: spec has no 'version'; add 'version: v1' or run 'kneo spec migrate'"
    elif str(version) in {"v0", "0", "0.0"}:
        message = f"{source}: spec version {version!r} is no longer loaded; run 'kneo spec migrate'"
    else:
        message = (
            f"{source}: unsupported spec version {version!r} (this Kneo reads '{SPEC_VERSION}')"
        )
    raise SpecError(
        message, code=ErrorCode.E_UNSUPPORTED_VERSION, file=source, path="version", version=version
    )


def overlay_path(path: Path, env: str, project: ProjectConfig | None) -> Path:
    pattern = project.overlay_pattern(env) if project else DEFAULT_OVERLAY_PATTERN
    return path.parent / pattern.format(stem=path.stem, env=env, name=path.stem)


def overlay_base(
    path: Path, environments: Collection[str], project: ProjectConfig | None
) -> tuple[Path, str] | None:
    """``(spec, env)`` when ``path`` is the ``env`` overlay of a spec beside it (the file
    :func:`overlay_path` names for that spec), else ``None``: an overlay is checked as the
    spec it overlays, in its environment, never as a spec of its own."""
    if not path.is_file():
        return None
    for env in sorted(environments):
        for sibling in sorted(path.parent.glob(f"*{path.suffix}")):
            if sibling != path and overlay_path(sibling, env, project).name == path.name:
                return sibling, env
    return None


def _check_env(env: str, declared: Collection[str], path: Path) -> None:
    """``E_UNKNOWN_ENV`` unless the project declares ``env`` (an overlay file next to the
    spec declares nothing: :func:`~kneo.spec.project.declared_environments`)."""
    judge_environment(env, env, declared, file=str(path))


def load_spec(
    path: str | Path,
    *,
    env: str | None = None,
    project: ProjectConfig | None = None,
    declared: Collection[str] | None = None,
) -> LoadedSpec:
    """Load, overlay, default and validate one spec file. Raises :class:`SpecError`.

    ``env`` must be one of ``declared`` (the project's environments,
    :meth:`~kneo.spec.project.ProjectContext.declared_environments`; without it, those
    ``project`` declares in the config alone), else ``E_UNKNOWN_ENV``."""
    path = Path(path)
    data, text = read_yaml_mapping(path)
    sources = [(str(path), text)]
    overlays: list[Path] = []
    if env is not None:
        known = declared if declared is not None else declared_environments(project, None)
        _check_env(env, known, path)
        candidate = overlay_path(path, env, project)
        if os.path.lexists(candidate):  # a device or FIFO there is refused, not skipped
            overlay, overlay_text = read_yaml_mapping(candidate, what="overlay")
            overlay.pop("version", None)
            data = deep_merge(data, overlay)
            overlays.append(candidate)
            sources.insert(0, (str(candidate), overlay_text))
    check_version(data, source=str(path))
    resolved = apply_project_defaults(data, project)
    spec = _validate(resolved, file=str(path), texts=sources)
    return LoadedSpec(
        path=path, env=env, overlays=overlays, data=resolved, spec=spec, sources=sources
    )


#: The provider that runs in-process from a script in the spec: no key, no network.
OFFLINE_PROVIDER = "dummy"


def offline_environments(loaded: LoadedSpec, project: ProjectConfig | None) -> list[str]:
    """The environments whose overlay of ``loaded``'s file runs every agent on the offline
    ``dummy`` provider, when ``loaded`` itself needs a real one: what to suggest when the
    run cannot reach its provider (``examples/research_agent.yaml`` -> ``["dev"]``). Empty
    when the spec is offline already or no overlay makes it so. Overlays are read and merged
    but not validated (this is a hint, not a check; a broken overlay counts as none)."""
    if _offline(loaded.data):
        return []
    found = []
    for env in declared_environments(project, None):
        candidate = overlay_path(loaded.path, env, project)
        if env == loaded.env or not candidate.is_file():
            continue
        try:
            overlay, _ = read_yaml_mapping(candidate, what="overlay")
        except SpecError:
            continue
        if _offline(deep_merge(loaded.data, overlay)):
            found.append(env)
    return found


def _offline(data: dict[str, Any]) -> bool:
    """Whether every agent of a spec document names the offline provider."""
    components = data.get("components") if isinstance(data.get("components"), dict) else {}
    agents = [data.get("agent"), *((components or {}).get("agents") or {}).values()]
    models = [a.get("model") for a in agents if isinstance(a, dict)]
    return all(isinstance(m, dict) and m.get("provider") == OFFLINE_PROVIDER for m in models)


def load_spec_data(
    data: object, *, source: str = "<inline>", project: ProjectConfig | None = None
) -> Spec:
    """Validate an in-memory spec (HTTP inline specs); errors carry field paths, no lines."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: a spec must be a mapping", code=ErrorCode.E_SCHEMA, path="<root>"
        )
    check_version(data, source=source)
    return _validate(apply_project_defaults(data, project), file=source, texts=())


def load_spec_text(
    text: str, *, source: str = "<inline>", project: ProjectConfig | None = None
) -> Spec:
    """Validate a spec given as YAML text (HTTP ``spec_yaml``); errors carry lines."""
    data = parse_yaml(text, source=source)
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}:1: a spec must be a YAML mapping", code=ErrorCode.E_SCHEMA, path="<root>"
        )
    check_version(data, source=source)
    return _validate(apply_project_defaults(data, project), file=source, texts=[(source, text)])


def _validate(data: dict[str, Any], *, file: str, texts: list[tuple[str, str]] | tuple[()]) -> Spec:
    from pydantic import ValidationError

    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_spec_error(
            exc, data, file=file, texts=list(texts), model=Spec
        ) from None
