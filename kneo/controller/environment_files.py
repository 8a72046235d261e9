"""The environments at one commit: each ``environments/<env>.yaml`` judged with the project
config's policies, and the promotion chains they form checked.

An environment's policy is its file merged with ``.kneo/config.yaml`` (which can only make
it stricter, :func:`kneo.policy.ratchet.effective_policy`). Whatever a file holds is that
environment's :class:`Problem`, never an exception: its bundles are then rejected, the
other environments judged as usual. Judgements are cached by (path, file blob, config blob).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePosixPath

from pydantic import ValidationError

from kneo.controller.bundle_paths import path_parts
from kneo.controller.model import DesiredEnvironment, Problem
from kneo.controller.source import ENVIRONMENTS_DIR, PROJECT_CONFIG, Source, SourceError, TreeFile
from kneo.documents import parse_yaml
from kneo.errors import ErrorCode, KneoError
from kneo.names import is_valid_name
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import effective_policy
from kneo.spec.project import ProjectConfig


class EnvironmentReader:
    """Reads a commit's environment files; keeps each judgement between commits."""

    def __init__(self) -> None:
        self._environments: dict[tuple[str, str, str | None], DesiredEnvironment] = {}

    def read(
        self,
        source: Source,
        files: Mapping[str, TreeFile],
        config_sha: str | None,
        problems: list[Problem],
    ) -> dict[str, DesiredEnvironment]:
        """Every ``environments/<name>.yaml`` judged (with the project config's policies);
        a file that cannot name an environment is a problem of the whole state."""
        project_policies, config_problem = self._project_policies(source, config_sha)
        environments: dict[str, DesiredEnvironment] = {}
        for path, file in sorted(files.items()):
            if not path.startswith(ENVIRONMENTS_DIR + "/"):
                continue
            if len(path_parts(path)) != 2:
                continue  # a policy approval (environments/approvals/), read by the ratchet
            env_name = PurePosixPath(path).stem
            if not is_valid_name(env_name):
                problems.append(
                    Problem(
                        ErrorCode.environment_invalid,
                        f"{path}: not read; {env_name!r} is not a valid environment name",
                    )
                )
                continue
            if env_name in environments:
                environments[env_name] = replace(
                    environments[env_name],
                    problems=(
                        Problem(
                            ErrorCode.environment_invalid,
                            f"environment {env_name!r} has both a .yaml and a .yml file",
                        ),
                    ),
                )
                continue
            environments[env_name] = self._environment(
                source, env_name, path, file.blob_sha, config_sha, project_policies, config_problem
            )
        return environments

    def _project_policies(
        self, source: Source, config_sha: str | None
    ) -> tuple[ProjectConfig | None, Problem | None]:
        """The watched repo's ``.kneo/config.yaml`` (it can only make environments stricter)."""
        if config_sha is None:
            return None, None

        try:
            data = parse_yaml(source.read_blob(config_sha).decode("utf-8"), source=PROJECT_CONFIG)
            return ProjectConfig.model_validate(data or {}), None
        except SourceError:
            raise
        except Exception as exc:  # whatever the file holds, it is the file's problem only
            return None, Problem(
                ErrorCode.project_config_invalid, f"{PROJECT_CONFIG}: {_message(exc)}"
            )

    def _environment(
        self,
        source: Source,
        name: str,
        path: str,
        blob_sha: str,
        config_sha: str | None,
        project: ProjectConfig | None,
        config_problem: Problem | None,
    ) -> DesiredEnvironment:
        cache_key = (path, blob_sha, config_sha)
        cached = self._environments.get(cache_key)
        if cached is not None:
            return cached
        policy: EnvironmentPolicy | None = None
        problem = config_problem
        if problem is None:
            try:
                policy = effective_policy(
                    _parse_environment(name, path, source.read_blob(blob_sha)),
                    project.policy_for(name) if project is not None else None,
                )
            except SourceError:
                raise
            except Exception as exc:  # whatever the file holds, it is the file's problem only
                problem = Problem(ErrorCode.environment_invalid, f"{path}: {_message(exc)}")
                policy = None
        if policy is None:
            env = DesiredEnvironment(
                name,
                path,
                blob_sha,
                problems=(problem,) if problem else (),
                config_sha=config_sha,
            )
        else:
            env = DesiredEnvironment.of(name, path, blob_sha, policy, config_sha)
        self._environments[cache_key] = env
        return env


def check_chains(environments: dict[str, DesiredEnvironment]) -> dict[str, DesiredEnvironment]:
    """Promotion chains must name existing environments and must not loop."""
    out = dict(environments)
    for name, env in environments.items():
        upstream = env.promotion.require_approved_in
        if upstream is None or env.problems:
            continue
        if upstream not in environments:
            out[name] = replace(
                env,
                problems=(
                    Problem(
                        ErrorCode.upstream_environment_missing,
                        f"{env.path}: require_approved_in names {upstream!r}, which has no "
                        f"{ENVIRONMENTS_DIR}/{upstream}.yaml",
                    ),
                ),
            )
            continue
        seen: set[str] = {name}
        current: str | None = upstream
        while current is not None and current in environments:
            if current in seen:
                out[name] = replace(
                    env,
                    problems=(
                        Problem(
                            ErrorCode.promotion_cycle,
                            f"{env.path}: require_approved_in forms a cycle through {current!r}",
                        ),
                    ),
                )
                break
            seen.add(current)
            current = environments[current].promotion.require_approved_in
    return out


def _parse_environment(name: str, path: str, raw: bytes) -> EnvironmentPolicy:
    data = parse_yaml(raw.decode("utf-8"), source=path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KneoError(f"{path} must be a YAML mapping", code=ErrorCode.environment_invalid)
    policy = EnvironmentPolicy.model_validate(data)
    if policy.environment is not None and policy.environment != name:
        raise KneoError(
            f"environment is {policy.environment!r} but the file is named for {name!r}",
            code=ErrorCode.environment_invalid,
        )
    return policy.model_copy(update={"environment": name})


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"{where}: {first['msg']}"
    if isinstance(exc, KneoError):
        return exc.message
    return str(exc)
