"""Project config (``.kneo/config.yaml``): who owns the project, where things live, which
environments exist and what each one enforces, defaults applied to every spec, and the
*names* of the environment variables that hold secrets (never their values).

Discovery walks upward from the working directory, or takes ``KNEO_PROJECT_CONFIG``.
Which environments a project declares, and which one a run is in, is answered here too
(:func:`judge_environment`), for every door that starts or checks a run.
Contract layer: pydantic models plus reading one YAML file and listing the names of the
project's environment files; no other I/O.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kneo.errors import ConfigError, ErrorCode, SpecError
from kneo.kernel import read_project_file
from kneo.names import NAME_PATTERN, check_name, is_valid_name
from kneo.settings import Settings as _Settings
from kneo.spec.extensions import SKILL_INSTRUCTIONS_CHARS, ProjectSkill, SkillSpec
from kneo.spec.limits import ProjectLimits
from kneo.spec.notifications_config import ENV_NAME as _ENV_NAME
from kneo.spec.notifications_config import SECRET_FIELDS as SECRET_FIELDS  # re-exported
from kneo.spec.notifications_config import NotificationsConfig as NotificationsConfig
from kneo.spec.notifications_config import PersonConfig as PersonConfig
from kneo.spec.notifications_config import ReceiverConfig as ReceiverConfig
from kneo.spec.prices import PriceTable
from kneo.spec.project_blocks import (
    DEFAULT_OVERLAY_PATTERN,
    AssignmentPolicy,
    ConfigModel,
    ControllerConfigBlock,
    EnvironmentConfig,
    FunctionsConfig,
    McpServerConfig,
    ModelDefaults,
    NetworkConfig,
    PathsConfig,
    PolicyEnforcement,
    RetentionConfig,
    RuntimeDefaults,
    SecretsConfig,
    ServiceConfig,
)
from kneo.spec.suggest import guess_suffix
from kneo.spec.yaml_io import read_yaml_mapping, validate_mapping
from kneo.tools.factory import load_tool_registry

if TYPE_CHECKING:
    from kneo.settings import Settings
    from kneo.tools import ToolRegistry

CONFIG_DIR = ".kneo"
CONFIG_FILE = "config.yaml"
#: Where a project's environment policy files live: ``<root>/environments/<env>.yaml``.
ENVIRONMENTS_DIR = "environments"
#: The one environment of a project that declares none (the quickstart's).
IMPLICIT_ENVIRONMENT = "dev"

#: Kneo's own variables (keys, the database URL, the console and signing secrets) are never a
#: spec's to read: a project cannot declare one as a spec secret.
RESERVED_VARIABLE_PREFIX = "KNEO_"
#: The validation context key of the variables a host reserves beyond the config's own
#: (variable -> what reads it): its receivers' from ``KNEO_SERV_NOTIFICATIONS_RECEIVERS``, and
#: for a project's definition the host config's own.
RESERVED_CONTEXT = "reserved_variables"


class ProjectConfig(ConfigModel):
    """The whole ``.kneo/config.yaml``."""

    version: Literal["v1"] = "v1"
    name: str = Field(default="kneo-serv-project", min_length=1)
    owner: str | None = None
    description: str | None = None
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    default_spec: str | None = None
    default_environment: str | None = None
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    runtime: RuntimeDefaults = Field(default_factory=RuntimeDefaults)
    model: ModelDefaults = Field(default_factory=ModelDefaults)
    #: Defaults for every environment's ``policy_enforcement``.
    policy_enforcement: PolicyEnforcement | None = None
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    #: Where notifications go (receivers and filters; docs/notifications.md).
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    #: Whether a request's assignee binds (``environments.<env>.assignments`` wins).
    assignments: AssignmentPolicy = Field(default_factory=AssignmentPolicy)
    #: GitOps controller settings (``kneo controller``, ``kneo service serve``).
    controller: ControllerConfigBlock | None = None
    #: Runs at once and spending per UTC day (docs/projects.md#limits).
    limits: ProjectLimits = Field(default_factory=ProjectLimits)
    #: What model calls cost: prices per million tokens by provider and model
    #: (docs/project_config.md#prices); ``None``: costs are not computed (shown ``null``).
    prices: PriceTable | None = None
    #: ``module:factory`` returning the project's :class:`~kneo.tools.ToolRegistry`: used by
    #: ``kneo spec``, ``kneo run`` and the service instead of the example tools
    #: (``--tools`` overrides it).
    tool_registry: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    #: MCP servers specs may use by name (docs/security.md).
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict, max_length=200)
    #: Network destinations specs may name in every environment (docs/security.md).
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    #: Installed modules specs' function refs may name (docs/security.md).
    functions: FunctionsConfig = Field(default_factory=FunctionsConfig)
    #: Skills any spec's agents may switch on by name, as if the spec declared them
    #: (docs/project_config.md#skills); a spec's own skill of the same name wins.
    skills: dict[str, ProjectSkill] = Field(default_factory=dict, max_length=500)
    #: the text of each ``instructions_file``, read by :meth:`read_skill_files`
    _skill_texts: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("skills")
    @classmethod
    def _skill_names(cls, value: dict[str, ProjectSkill]) -> dict[str, ProjectSkill]:
        for name in value:
            if not is_valid_name(name):
                raise ValueError(f"skills: {name!r} is not a valid name ({NAME_PATTERN})")
        return value

    def read_skill_files(self, root: Path) -> None:
        """Read each skill's ``instructions_file`` under the project ``root`` through the
        trust kernel (``E_FILE_NOT_ALLOWED`` outside it, ``E_FILE_NOT_FOUND``, ...)."""
        self._skill_texts = {
            name: read_project_file(
                root,
                skill.instructions_file,
                field=f"skills.{name}.instructions_file",
                max_chars=SKILL_INSTRUCTIONS_CHARS,
            )
            for name, skill in self.skills.items()
            if skill.instructions_file is not None
        }

    def skill_spec(self, name: str) -> SkillSpec:
        """The project's skill ``name`` as a spec declares one (its file's text read)."""
        skill = self.skills[name]
        text = skill.instructions
        if text is None:
            text = self._skill_texts.get(name)
        if text is None:
            raise ConfigError(
                f"skills.{name}.instructions_file: not read (this config was not loaded "
                "from its file)",
                field=f"skills.{name}.instructions_file",
            )
        return SkillSpec(description=skill.description, instructions=text, tools=skill.tools)

    @model_validator(mode="after")
    def _spec_secrets_confined(self, info: ValidationInfo) -> ProjectConfig:
        """No spec secret is one of Kneo's own variables (nor, validated with the context
        ``reserved_variables``, one the host's receivers or controller read), and every
        server's name is a plain name and its secret one the project declares."""
        own = self.reserved_variables()
        context = info.context if isinstance(info.context, dict) else {}
        own.update(context.get(RESERVED_CONTEXT) or {})
        for where, mapping in self.secret_sources():
            for name, variable in mapping.items():
                if variable.upper().startswith(RESERVED_VARIABLE_PREFIX):
                    raise ValueError(
                        f"{where}.{name}: {variable} holds one of Kneo's own secrets and can "
                        "never be a spec secret (KNEO_* variables are Kneo's)"
                    )
                if variable in own:
                    raise ValueError(
                        f"{where}.{name}: {variable} is {own[variable]} and can never be a "
                        "spec secret (a spec that reads it could sign or send as Kneo)"
                    )
        declared = self.declared_secrets()
        for ref in self.secrets.destinations:
            if ref not in declared:
                raise ValueError(
                    f"secrets.destinations.{ref}: {ref!r} is not a declared secret (declare it "
                    "under secrets.providers, secrets.extra or environments.<env>.secrets)"
                )
        for name, server in self.mcp_servers.items():
            if not is_valid_name(name):
                raise ValueError(f"mcp_servers: {name!r} is not a valid name ({NAME_PATTERN})")
            if server.secret is not None and server.secret not in declared:
                raise ValueError(
                    f"mcp_servers.{name}.secret: {server.secret!r} is not a declared secret "
                    "(add it under secrets.extra)"
                )
        return self

    def secret_sources(self) -> list[tuple[str, dict[str, str]]]:
        """Every map of declared spec secrets (name -> variable), with where it is written;
        the project's own ``model.api_key_env`` default counts as declared."""
        sources = [
            ("secrets.providers", self.secrets.providers),
            ("secrets.extra", self.secrets.extra),
        ]
        sources += [(f"environments.{n}.secrets", e.secrets) for n, e in self.environments.items()]
        default_key = self.model.api_key_env
        if default_key and _ENV_NAME.match(default_key):
            sources.append(("model.api_key_env", {default_key: default_key}))
        return sources

    def declared_secrets(self, env: str | None = None) -> dict[str, str]:
        """Secret reference -> variable for specs in ``env`` (any environment's when
        ``None``): a declared name, or the variable it maps to, refers to that variable.
        Names come first, so a name that is also another secret's variable is the name."""
        names: dict[str, str] = {}
        variables: dict[str, str] = {}
        for where, source in self.secret_sources():
            other_env = where.startswith("environments.") and where != f"environments.{env}.secrets"
            if env is not None and other_env:
                continue
            for name, variable in source.items():
                names.setdefault(name, variable)
                variables.setdefault(variable, variable)
        return {**variables, **names}

    def kneo_variables(self) -> set[str]:
        """Variables this config names for Kneo's own use (never a spec's)."""
        return set(self.reserved_variables())

    def reserved_variables(self, whose: str = "") -> dict[str, str]:
        """Variables this config names for Kneo's own use -> what reads it (``whose``
        prefixes it: ``the host's``), for the error that refuses one as a spec secret."""
        own: dict[str, str] = {}
        if self.controller is not None:
            if self.controller.webhook_secret_env:
                own[self.controller.webhook_secret_env] = (
                    f"{whose}controller.webhook_secret_env".lstrip()
                )
            for key, variable in self.controller.trusted_hmac_keys.items():
                own[variable] = f"{whose}controller.trusted_hmac_keys.{key}"
        for receiver in self.notifications.receivers:
            for variable, name in receiver.variables().items():
                own[variable] = f"the {name} of {whose}notification receiver {receiver.name!r}"
        return own

    def assignments_for(self, env: str | None) -> AssignmentPolicy:
        """Whether assignees bind in ``env``: its own block, else the project's."""
        own = self.environments.get(env or "")
        return own.assignments if own is not None and own.assignments else self.assignments

    def policy_for(self, env: str) -> PolicyEnforcement | None:
        """The environment's policy: top-level defaults with the environment's fields on top."""
        env_cfg = self.environments.get(env)
        env_policy = env_cfg.policy_enforcement if env_cfg else None
        if self.policy_enforcement is None and env_policy is None:
            return None
        base = self.policy_enforcement.model_dump() if self.policy_enforcement else {}
        return PolicyEnforcement.model_validate({**base, **(env_policy or {})})

    def overlay_pattern(self, env: str) -> str:
        env_cfg = self.environments.get(env)
        return env_cfg.overlay if env_cfg else DEFAULT_OVERLAY_PATTERN


def find_project_config(start: Path, settings: Settings | None = None) -> Path | None:
    """``KNEO_PROJECT_CONFIG`` if set, else the nearest ``.kneo/config.yaml`` at or above
    ``start``. An explicit path that does not exist is an error, not a silent fallback."""
    if settings is not None and settings.project_config is not None:
        explicit = settings.project_config
        if not os.path.lexists(explicit):
            raise ConfigError(
                f"KNEO_PROJECT_CONFIG points at {explicit}, which does not exist",
                code=ErrorCode.E_FILE_NOT_FOUND,
                file=str(explicit),
            )
        return explicit
    here = start.resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_DIR / CONFIG_FILE
        if os.path.lexists(candidate):  # read (and refused) even if not a regular file
            return candidate
    return None


def host_reserved_variables(settings: Settings | None) -> dict[str, str]:
    """The variables the receivers in ``KNEO_SERV_NOTIFICATIONS_RECEIVERS`` read -> which
    (none when it is unset or not a valid list: loading the receivers says so)."""
    import json

    raw = settings.notifications.receivers.strip() if settings is not None else ""
    if not raw:
        return {}
    try:
        receivers = NotificationsConfig.model_validate({"receivers": json.loads(raw)}).receivers
    except ValueError:
        return {}
    return {
        variable: f"the {name} of the host's notification receiver {r.name!r} "
        "(KNEO_SERV_NOTIFICATIONS_RECEIVERS)"
        for r in receivers
        for variable, name in r.variables().items()
    }


def load_project_config(path: Path, reserved: Mapping[str, str] | None = None) -> ProjectConfig:
    """Read and validate one project config, and the files its skills name; errors name
    the file, line and field path. ``reserved``: variables the host reads for itself
    (:func:`host_reserved_variables`), refused as spec secrets too."""
    data, text = read_yaml_mapping(path, what="project config")
    config = validate_mapping(
        ProjectConfig,
        data,
        file=path,
        text=text,
        kind="project config",
        context={RESERVED_CONTEXT: dict(reserved or {})},
    )
    config.read_skill_files(project_root(path))
    return config


def project_root(config_path: Path) -> Path:
    """The root of the project whose config is ``config_path``: the directory holding
    ``.kneo/`` for ``.kneo/config.yaml``, else the file's own directory."""
    if config_path.parent.name == CONFIG_DIR:
        return config_path.resolve().parent.parent
    return config_path.resolve().parent


@dataclass(frozen=True)
class ProjectContext:
    """Where the project is and which environment a command works on.

    ``env`` is the selected environment (``--env``, else ``KNEO_ENV``, else the project's
    ``default_environment``, else ``dev``); ``env_explicit`` says whether a flag or
    ``KNEO_ENV`` chose it, because only an explicit choice applies spec overlays.
    """

    root: Path
    config_path: Path | None
    config: ProjectConfig
    env: str = "dev"
    env_explicit: bool = False
    settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def discover(
        cls, *, cwd: Path | None = None, settings: Settings | None = None, env: str | None = None
    ) -> ProjectContext:
        settings = settings or _Settings.from_env()
        cwd = (cwd or Path.cwd()).resolve()
        path = find_project_config(cwd, settings)
        reserved = host_reserved_variables(settings)
        config = load_project_config(path, reserved) if path else ProjectConfig()
        # ``.kneo/config.yaml`` lives in the root; an explicit file elsewhere marks its own dir.
        root = cwd if path is None else project_root(path)
        chosen = env or settings.environ.get("KNEO_ENV") or None
        # The environment names overlay files (``<spec>.<env>.yaml``) and policy files.
        resolved = check_name(
            chosen or config.default_environment or settings.default_env, kind="environment"
        )
        return cls(
            root=root,
            config_path=path,
            config=config,
            env=resolved,
            env_explicit=chosen is not None,
            settings=settings,
        )

    def of_project(self, name: str, definition: Mapping[str, Any] | None) -> ProjectContext:
        """The context of project (tenant) ``name`` on this host: its ``definition`` is a
        project config document (the schema of ``.kneo/config.yaml``, written by a platform
        administrator), validated here, errors naming the field. Its root is
        ``<state_dir>/projects/<name>`` under this host's root, so none of the host's own
        files (``environments/*.yaml``, skill instructions) becomes the project's by
        accident; an administrator may put the project's files there."""
        settings = self.settings or _Settings.from_env()
        reserved = {  # the host's own receivers and controller: never a tenant's spec secret
            **self.config.reserved_variables("the host's "),
            **host_reserved_variables(settings),
        }
        config = validate_mapping(
            ProjectConfig,
            dict(definition) if definition is not None else {"name": name},
            file=Path(f"project {name}"),
            text="",
            kind="project definition",
            context={RESERVED_CONTEXT: reserved},
        )
        root = self.resolve_path(self.config.paths.state_dir) / "projects" / name
        if root.is_dir():
            config.read_skill_files(root)
        env = check_name(config.default_environment or settings.default_env, kind="environment")
        return ProjectContext(
            root=root, config_path=None, config=config, env=env, settings=settings
        )

    def known_environments(self) -> list[str]:
        """The environments this project declares (:func:`declared_environments`)."""
        return list(self.declared_environments())

    def declared_environments(self) -> tuple[str, ...]:
        """The environments this project declares (:func:`declared_environments`)."""
        return declared_environments(self.config, self.root)

    def run_environment(self, requested: str | None, *, also: Collection[str] = ()) -> str:
        """The environment a run is judged and recorded under (:func:`judge_environment`):
        ``requested``, else this project's default (:attr:`env`)."""
        return judge_environment(requested, self.env, self.declared_environments(), also=also)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the config is relative to the project root."""
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def default_spec_path(self) -> Path | None:
        return self.resolve_path(self.config.default_spec) if self.config.default_spec else None

    def tool_registry(self, ref: str | None = None) -> ToolRegistry:
        """The project's tools: ``ref`` (``--tools``), else ``tool_registry`` from the config,
        else the example tools; the project root is importable for the factory."""
        return load_tool_registry(ref or self.config.tool_registry, import_roots=[self.root])


# --------------------------------------------------------------------------- environments
#
# The one answer to "which environments does this project declare, and which one does a run
# name": every door that starts or checks a run asks it (docs/security.md, "Environments").


def declared_environments(config: ProjectConfig | None, root: Path | None) -> tuple[str, ...]:
    """The environments a project declares, sorted: the names under ``environments:`` in
    its config and of its ``environments/<env>.yaml`` (or ``.yml``) files; exactly
    :data:`IMPLICIT_ENVIRONMENT` when it declares none. Nothing else makes one: not a spec
    overlay file, not a name a caller sends. Without ``root`` only the config is asked."""
    names = tuple(config.environments) if config is not None else ()
    return _declared(names, _environment_files(root) if root is not None else frozenset())


@functools.lru_cache(maxsize=64)
def _declared(names: tuple[str, ...], files: frozenset[str]) -> tuple[str, ...]:
    """:func:`declared_environments` of one config and one listing (every run asks)."""
    return tuple(sorted({*names, *files})) or (IMPLICIT_ENVIRONMENT,)


def _environment_files(root: Path) -> frozenset[str]:
    """The names of ``<root>/environments/*.yaml|yml``, read again when the directory
    changes (a file added, removed or renamed changes its stamp)."""
    folder = os.path.join(root, ENVIRONMENTS_DIR)
    try:
        st = os.stat(folder)
    except OSError:
        return frozenset()
    return _listed(folder, (st.st_dev, st.st_ino, st.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _listed(folder: str, stamp: tuple[int, int, int]) -> frozenset[str]:
    del stamp  # part of the cache key only
    try:
        entries = os.listdir(folder)
    except OSError:
        return frozenset()
    stems = (name.rsplit(".", 1)[0] for name in entries if name.endswith((".yaml", ".yml")))
    return frozenset(stem for stem in stems if is_valid_name(stem))


def judge_environment(
    requested: str | None,
    default: str,
    declared: Collection[str],
    *,
    also: Collection[str] = (),
    file: str | None = None,
) -> str:
    """The environment a run is judged and recorded under: ``requested``, else the
    project's ``default``; one of ``declared`` (or of ``also``: the watched repository's, for
    a bundle run), else ``E_UNKNOWN_ENV`` naming the declared ones (and the spec ``file``
    that asked, if one did)."""
    env = check_name(requested or default, kind="environment", field="environment")
    if env in declared or env in also:
        return env
    known = sorted({*declared, *also})
    where = f"environments: in .kneo/config.yaml, or {ENVIRONMENTS_DIR}/<env>.yaml"
    if requested:
        why = (
            f"unknown environment {env!r}: the project declares {', '.join(known)} ({where})"
            + guess_suffix(env, known)
        )
    else:
        why = (
            f"no environment given, and the project's default environment {env!r} is not one "
            f"it declares ({', '.join(known)}; {where}): name one, or set default_environment"
        )
    raise SpecError(
        why,
        code=ErrorCode.E_UNKNOWN_ENV,
        field="environment",
        environment=env,
        known=known,
        file=file,
    )
