"""The blocks of a project config (``.kneo/config.yaml``): an environment's policy, secrets,
network, MCP servers, functions, assignments, retention, the controller's repository.

:class:`kneo.spec.project.ProjectConfig` is the whole file, made of these; each block checks
its own fields (names of variables, never values; network entries; module references).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kneo.destinations import parse_destination
from kneo.spec.notifications_config import check_env_names

#: An environment's overlay file beside a spec, unless its config names another.
DEFAULT_OVERLAY_PATTERN = "{stem}.{env}.yaml"


class ConfigModel(BaseModel):
    """A block of the config: an unknown key is an error, a field may be named by alias."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PolicyEnforcement(ConfigModel):
    """Gates an environment puts on top of diagnostics (``E_POLICY_*`` when violated).

    Evaluated by :func:`kneo.policy.enforcement.enforce` after overlays and defaults.
    """

    enabled: bool = True
    #: Any warning becomes an error.
    fail_on_warnings: bool = False
    #: Diagnostic codes that fail the spec in this environment, whatever their severity.
    blocked_diagnostic_codes: list[str] = Field(default_factory=list)
    #: The spec must contain a human step, a step review gate, or tool-call approval.
    require_human_review: bool = False
    #: Every agent that has tools must declare ``policies.tool``.
    require_tool_permissions: bool = False
    #: No ``tools: all`` and no shorthand tool list without ``policies.tool``.
    deny_unrestricted_tools: bool = False
    #: Every agent must declare at least one guardrail.
    require_guardrails: bool = False


class ServiceConfig(ConfigModel):
    default_url: str | None = None


class PathsConfig(ConfigModel):
    state_dir: str = ".kneo"
    artifacts_dir: str = ".kneo/artifacts"
    logs_dir: str = ".kneo/logs"


class RuntimeDefaults(ConfigModel):
    """Filled into each agent's ``runtime_preferences`` where the spec leaves a gap."""

    preferred_mode: str | None = None
    allowed_modes: list[str] | None = None


class ModelDefaults(ConfigModel):
    """Filled into each agent's ``model`` where the spec leaves a gap."""

    provider: str | None = None
    name: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    base_url: str | None = None
    api_key_env: str | None = None


class SecretsConfig(ConfigModel):
    """Secret references: provider or purpose -> environment-variable name, and where each
    secret may be sent."""

    providers: dict[str, str] = Field(
        default_factory=lambda: {
            "openai": "OPENAI_API_KEY",
            "openai-agents": "OPENAI_API_KEY",
            "azure-openai": "AZURE_OPENAI_API_KEY",
            "anthropic": "ANTHROPIC_API_KEY",
            "google": "GOOGLE_API_KEY",
            "google-adk": "GOOGLE_API_KEY",
        }
    )
    extra: dict[str, str] = Field(default_factory=dict)
    #: A declared secret (its name or variable) -> the only destinations it may be sent to
    #: (allow-list entries; ``[]``: nowhere but loopback in ``dev``). Replaces what its uses
    #: imply: a provider's key its provider's endpoints, ``model.api_key_env`` the project's
    #: ``model.base_url``, an MCP server's secret that server's URL (docs/security.md).
    destinations: dict[str, list[str]] = Field(default_factory=dict, max_length=200)

    @field_validator("destinations")
    @classmethod
    def _destinations_parse(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for ref, entries in value.items():
            for i, entry in enumerate(entries):
                try:
                    parse_destination(entry)
                except ValueError as exc:
                    raise ValueError(f"secrets.destinations.{ref}[{i}]: {exc}") from None
        return value

    @field_validator("providers")
    @classmethod
    def _providers_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env_names(value, "secrets.providers")

    @field_validator("extra")
    @classmethod
    def _extra_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env_names(value, "secrets.extra")


class RetentionConfig(ConfigModel):
    """Days to keep each category; unset disables pruning. Env vars win over these."""

    runs_days: int | None = Field(default=None, ge=0)
    checkpoints_days: int | None = Field(default=None, ge=0)
    queue_days: int | None = Field(default=None, ge=0)
    continuations_days: int | None = Field(default=None, ge=0)
    artifacts_days: int | None = Field(default=None, ge=0)
    logs_days: int | None = Field(default=None, ge=0)


class NetworkConfig(ConfigModel):
    """Network destinations specs may name (``model.base_url``, MCP ``url``), beyond the model
    providers' public endpoints (and loopback, in ``dev`` only): hosts (``api.example.com``,
    ``*.example.com``, ``10.0.0.5:8080``) or URL prefixes (``https://gw.example.com/v1``)."""

    allow: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("allow")
    @classmethod
    def _entries_parse(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_destination(entry)  # raises ValueError naming the entry
        return value


class McpServerConfig(ConfigModel):
    """An MCP server specs may use by name (``mcp.imports[].server``): the only way a spec
    run from a file or through the API starts a process or reaches an MCP endpoint it does
    not name itself."""

    transport: Literal["stdio", "http", "sse"] = "stdio"
    #: ``stdio``: the command Kneo starts (argv, no shell).
    command: list[str] | None = Field(default=None, min_length=1)
    #: ``http``/``sse``: the endpoint.
    url: str | None = Field(default=None, pattern=r"^(https?|smtp)://\S+$", max_length=2048)
    #: A declared secret (its name in ``secrets``, or its variable): a stdio server gets it in
    #: its environment, an HTTP server as ``Authorization: Bearer``.
    secret: str | None = None

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        if self.transport == "stdio" and (self.command is None or self.url is not None):
            raise ValueError("a stdio server needs a command (and no url)")
        if self.transport != "stdio" and (self.url is None or self.command is not None):
            raise ValueError(f"an {self.transport} server needs a url (and no command)")
        return self


class FunctionsConfig(ConfigModel):
    """Where specs' ``module:function`` refs may point: the project's own code always (a
    source file outside the Python installation); installed modules (the standard library,
    site-packages, Kneo itself) only when listed here (a module and its submodules)."""

    modules: list[str] = Field(default_factory=list, max_length=200)
    #: The ``module:function`` refs a spec sent inline to the API (``POST /v1/runs`` with a
    #: ``spec`` document, the MCP ``start_run`` tool) may name, function steps, edge predicates
    #: and tool implementations alike; such a spec names nothing else.
    declared: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("declared")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            module, sep, name = ref.partition(":")
            if not sep or not all(p.isidentifier() for p in [*module.split("."), *name.split(".")]):
                raise ValueError(f"{ref!r} is not a function ref such as 'mycompany.steps:clean'")
        return value

    @field_validator("modules")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is not a module name such as 'mycompany.steps'")
        return value


class AssignmentPolicy(ConfigModel):
    """Who may decide a human request that names an assignee (``assignments:``, in the
    project config or an environment's block, which wins). ``advisory`` (the default): the
    assignee is who the request is for, and anyone holding ``human:write`` decides;
    ``binding``: only the assignee (a ``user:`` or key named, a member of a ``group:``) and
    the ``override`` entries may decide (docs/human_in_the_loop.md)."""

    assignees: Literal["advisory", "binding"] = "advisory"
    #: Who may decide any bound request besides its assignee: ``user:NAME``, ``group:NAME``
    #: or an API key's name.
    override: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("override")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.strip() or any(c.isspace() for c in entry):
                raise ValueError(f"{entry!r} is not a user:, group: or key name entry")
        return value


class EnvironmentConfig(ConfigModel):
    #: Overlay file name next to the spec; ``{stem}`` and ``{env}`` are substituted.
    overlay: str = DEFAULT_OVERLAY_PATTERN
    #: Whether assignees bind in this environment (instead of the project's ``assignments``).
    assignments: AssignmentPolicy | None = None
    #: Set fields override the project's top-level ``policy_enforcement`` defaults.
    policy_enforcement: dict[str, Any] | None = None
    #: Extra secret references for this environment (merged over ``secrets.extra``).
    secrets: dict[str, str] = Field(default_factory=dict)
    #: Destinations specs may name in this environment, beyond the project's ``network``.
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    description: str | None = None

    @field_validator("policy_enforcement")
    @classmethod
    def _policy_fields_known(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            PolicyEnforcement.model_validate(value)  # reject unknown fields / wrong types
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env_names(value, "environments.<env>.secrets")


class ControllerConfigBlock(ConfigModel):
    """The ``controller:`` block: which Git repository the GitOps controller reconciles.

    Read by ``kneo controller ...`` and ``kneo service serve`` (flags win); secrets are named
    by variable, never written here.
    """

    #: Git URL or local repository path (relative paths resolve against the project root).
    repo: str | None = None
    #: Branch or tag (default: the remote's HEAD).
    branch: str | None = None
    #: Poll seconds; a webhook or a local commit reconciles sooner.
    interval: float = Field(default=60.0, gt=0)
    #: Keyring directory (``*.pub`` + optional ``keyring.yaml``) on the controller's machine.
    trusted_keys: str | None = None
    #: Policy floors file on the controller's machine (``KNEO_SERV_POLICY_FLOORS`` wins):
    #: per-environment minimums the watched repository cannot lower (docs/gitops.md).
    policy_floors: str | None = None
    #: HMAC trusted keys: key id -> name of the variable holding its secret.
    trusted_hmac_keys: dict[str, str] = Field(default_factory=dict)
    #: Deactivate bundles whose file left the repository.
    prune: bool = True
    #: Prune even when a commit holds no bundles at all.
    allow_empty: bool = False
    #: Where remote repositories are fetched.
    cache_dir: str | None = None
    #: Variable holding the GitHub webhook secret (``X-Hub-Signature-256``).
    webhook_secret_env: str | None = None
    #: Leader lock lease; standbys take over after it lapses.
    lease_seconds: float = Field(default=30.0, gt=0)
    #: How often a standby looks at the leader lock (and, on SQLite, the leader for queued
    #: reconcile requests): failover after a crash takes at most lease + poll.
    poll_seconds: float = Field(default=1.0, gt=0)
    #: Controller status row and leader lock name (one per watched repository).
    name: str = Field(default="default", min_length=1, max_length=64)
    #: The repository subdirectory read (projects may share a repository: docs/gitops.md).
    path: str | None = Field(None, max_length=255, pattern=r"^[\w-][\w.-]*(/[\w-][\w.-]*)*$")

    @field_validator("trusted_hmac_keys")
    @classmethod
    def _hmac_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env_names(value, "controller.trusted_hmac_keys")
