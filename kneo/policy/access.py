"""What a spec may reach on the host: the project's grant, narrowed by the environment.

A spec is code. It reaches the host through four kinds of reference, and each must be one the
project declared in ``.kneo/config.yaml`` (and the environment's policy file, which can only
narrow, allows):

==========================  ==========================================  =====================
a spec names                allowed when                                refused as
==========================  ==========================================  =====================
``model.api_key_env``,      a declared secret: its name or variable     ``E_SECRET_UNDECLARED``
``mcp.imports[].secret_env``  (``secrets.*``; never a ``KNEO_*`` one)
``mcp.imports[]`` server    a declared ``mcp_servers`` entry; a         ``E_MCP_SERVER_UNDECLARED``,
                            command of the spec's own only from a       ``E_PROCESS_UNDECLARED``
                            signed bundle where ``resources.
                            bundle_processes`` allows it
``model.base_url``, MCP     on the environment's network allow-list     ``E_DESTINATION_NOT_ALLOWED``,
``url``                     (providers' endpoints, ``loopback`` in      ``E_URL_HAS_CREDENTIALS``
                            ``dev``, ``network.allow``)
``module:function`` refs    the project's own code (a source file       ``E_FUNCTION_NOT_ALLOWED``
                            outside the Python installation, not
                            Kneo's), or listed in ``functions.modules``
==========================  ==========================================  =====================

The same :class:`HostAccess` answers both questions: *may this spec be admitted*
(:meth:`HostAccess.check`, diagnostics for lint, validate, sign, admission and the
controller) and *what does this call use* (:meth:`HostAccess.model`,
:meth:`HostAccess.server`, at the moment a run calls a model or starts an MCP session), so a
run admitted under older rules, or resumed elsewhere, still reaches nothing undeclared.
Pure: the one filesystem look is where a function ref's module lives (no code runs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from kneo.destinations import (
    DEFAULT_ENDPOINTS,
    LOOPBACK,
    PROVIDER_ENDPOINTS,
    Destination,
    DestinationError,
    allowed,
    parse_destination,
    parse_url,
)
from kneo.errors import AccessDenied, ErrorCode
from kneo.policy.environment import BudgetsPolicy, ResourcesPolicy
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import agent_locations, function_refs
from kneo.spec.models import McpImport, ModelSpec, Spec
from kneo.spec.project import McpServerConfig, ProjectConfig
from kneo.spec.refs import UNSAFE_MODULES, find_origin, split_ref

#: Where a spec comes from. ``spec``: a file run by the CLI or a document sent to the API;
#: ``bundle``: a signed bundle (signing, the controller, bundle runs); ``source``: a spec
#: being linted or validated, which may become either.
Origin = Literal["spec", "source", "bundle"]

#: The environment where loopback destinations are allowed without being listed.
LOOPBACK_ENVIRONMENT = "dev"


@dataclass(frozen=True)
class ResolvedServer:
    """An MCP import as it may run: what to start or where to connect, and the variable
    holding its secret."""

    name: str
    transport: Literal["stdio", "http", "sse"]
    command: tuple[str, ...] = ()
    url: str | None = None
    secret_variable: str | None = None


@dataclass(frozen=True)
class HostAccess:
    """The host resources specs of one origin may reach in one environment."""

    environment: str
    origin: Origin
    #: secret reference (declared name or variable) -> variable
    secrets: Mapping[str, str]
    servers: Mapping[str, McpServerConfig]
    network: tuple[Destination, ...]
    #: the environment file's narrowing (``None``: it sets none)
    narrowed_network: tuple[Destination, ...] | None = None
    function_modules: tuple[str, ...] = ()
    bundle_processes: bool = False
    #: what one run may spend here (the environment file's ``budgets:``); ``None``: no limit
    budgets: BudgetsPolicy | None = None
    _origins: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_environment(
        cls,
        config: ProjectConfig,
        environment: str,
        *,
        origin: Origin,
        resources: ResourcesPolicy | None = None,
        budgets: BudgetsPolicy | None = None,
    ) -> HostAccess:
        """The grant of ``config`` in ``environment``, narrowed by ``resources`` (the
        environment policy file's ``resources:`` block), with its ``budgets:``."""
        resources = resources or ResourcesPolicy()
        secrets = config.declared_secrets(environment)
        if resources.secrets is not None:
            keep = set(resources.secrets)
            secrets = {ref: var for ref, var in secrets.items() if ref in keep or var in keep}
        servers = dict(config.mcp_servers)
        if resources.mcp_servers is not None:
            servers = {n: s for n, s in servers.items() if n in resources.mcp_servers}
        env_config = config.environments.get(environment)
        entries = [
            *PROVIDER_ENDPOINTS,
            *([LOOPBACK] if environment == LOOPBACK_ENVIRONMENT else []),
            *config.network.allow,
            *(env_config.network.allow if env_config is not None else []),
            *(s.url for s in config.mcp_servers.values() if s.url),
            *([config.model.base_url] if config.model.base_url else []),
        ]
        narrowed = resources.network
        return cls(
            environment=environment,
            origin=origin,
            secrets=secrets,
            servers=servers,
            network=tuple(parse_destination(e) for e in entries),
            narrowed_network=None
            if narrowed is None
            else tuple(parse_destination(e) for e in narrowed),
            function_modules=tuple(config.functions.modules),
            bundle_processes=resources.bundle_processes,
            budgets=budgets if budgets is not None and budgets.limits else None,
        )

    # ------------------------------------------------------------------ one reference each

    def secret(self, reference: str, *, path: str) -> str:
        """The variable a declared secret ``reference`` names; refused otherwise."""
        variable = self.secrets.get(reference)
        if variable is None:
            declared = sorted({r for r in self.secrets if r != self.secrets[r]})
            raise AccessDenied(
                f"{path}: {reference!r} is not a secret declared for specs in "
                f"{self.environment!r} (declared: {', '.join(declared) or 'none'})",
                code=ErrorCode.E_SECRET_UNDECLARED,
                path=path,
                suggestion="declare it under secrets.extra in .kneo/config.yaml (never a "
                "KNEO_* variable), and refer to it by that name",
            )
        return variable

    def destination(self, url: str, *, path: str) -> None:
        """Refuse a URL that is not http(s), carries credentials, or is not allowed here."""
        try:
            target = parse_url(url)
        except DestinationError as exc:
            raise AccessDenied(f"{path}: {exc}", code=exc.code, path=path) from None
        narrowed = self.narrowed_network
        if allowed(target, self.network) and (narrowed is None or allowed(target, narrowed)):
            return
        where = f"{target.scheme}://{target.host}:{target.port}"
        raise AccessDenied(
            f"{path}: {where} is not an allowed destination in {self.environment!r}",
            code=ErrorCode.E_DESTINATION_NOT_ALLOWED,
            path=path,
            suggestion="add the host or URL prefix to network.allow (or "
            f"environments.{self.environment}.network.allow) in .kneo/config.yaml",
        )

    def model(self, model: ModelSpec, *, path: str) -> ModelSpec:
        """``model`` with ``api_key_env`` resolved to its variable, once its destination and
        secret are allowed; what a provider is called with."""
        url = model.base_url or DEFAULT_ENDPOINTS.get(model.provider)
        if url is not None:
            self.destination(url, path=f"{path}.base_url")
        if not model.api_key_env:
            return model
        variable = self.secret(model.api_key_env, path=f"{path}.api_key_env")
        if variable == model.api_key_env:
            return model
        return model.model_copy(update={"api_key_env": variable})

    def server(self, imp: McpImport, *, path: str) -> ResolvedServer:
        """What an import starts or connects to, once the project allows it."""
        name = imp.declared_server
        if name is not None:
            return self._declared_server(imp, name, path=path)
        if imp.transport == "stdio":
            if not (self.origin == "bundle" and self.bundle_processes):
                raise AccessDenied(
                    f"{path}.command: a spec may not start its own process in "
                    f"{self.environment!r}; declare the server under mcp_servers in "
                    ".kneo/config.yaml and name it with `server:`",
                    code=ErrorCode.E_PROCESS_UNDECLARED,
                    path=f"{path}.command",
                )
            if not imp.command:
                raise AccessDenied(
                    f"{path}.command: a stdio import needs a command",
                    code=ErrorCode.E_PROCESS_UNDECLARED,
                    path=f"{path}.command",
                )
        else:
            if not imp.url:
                raise AccessDenied(
                    f"{path}.url: an {imp.transport} import needs a url",
                    code=ErrorCode.E_DESTINATION_NOT_ALLOWED,
                    path=f"{path}.url",
                )
            self.destination(imp.url, path=f"{path}.url")
        variable = (
            self.secret(imp.secret_env, path=f"{path}.secret_env") if imp.secret_env else None
        )
        return ResolvedServer(imp.name, imp.transport, tuple(imp.command or ()), imp.url, variable)

    def _declared_server(self, imp: McpImport, name: str, *, path: str) -> ResolvedServer:
        declared = self.servers.get(name)
        if declared is None:
            where = f"{path}.server" if imp.server is not None else f"{path}.name"
            raise AccessDenied(
                f"{where}: {name!r} is not an MCP server declared for {self.environment!r} "
                f"(declared: {', '.join(sorted(self.servers)) or 'none'})",
                code=ErrorCode.E_MCP_SERVER_UNDECLARED,
                path=where,
                suggestion="declare it under mcp_servers in .kneo/config.yaml",
            )
        if declared.url:
            self.destination(declared.url, path=f"mcp_servers.{name}.url")
        variable = (
            self.secret(declared.secret, path=f"mcp_servers.{name}.secret")
            if declared.secret
            else None
        )
        return ResolvedServer(
            imp.name, declared.transport, tuple(declared.command or ()), declared.url, variable
        )

    def function(self, ref: str, *, path: str, roots: Sequence[Path]) -> None:
        """Refuse a ``module:function`` ref outside the project's tree and ``functions.modules``."""
        parsed = split_ref(ref)
        if parsed is None:
            return  # not a ref: validation reports it
        module = parsed[0]
        if module.split(".")[0] not in UNSAFE_MODULES and any(
            module == m or module.startswith(m + ".") for m in self.function_modules
        ):
            return
        if self._project_module(module, roots):
            return
        raise AccessDenied(
            f"{path}: module {module!r} is not part of the project; a function ref names a "
            "module in the project's own tree or one listed under functions.modules",
            code=ErrorCode.E_FUNCTION_NOT_ALLOWED,
            path=path,
            suggestion="move the function into the project, or list its installed module "
            "under functions.modules in .kneo/config.yaml",
        )

    def _project_module(self, module: str, roots: Sequence[Path]) -> bool:
        """Whether ``module`` is the project's own code: a source file outside the Python
        installation (the standard library, site-packages, the virtual environment) and not
        Kneo itself. Installed code is reached only through ``functions.modules``."""
        if module.split(".")[0] == "kneo":
            return False
        key = f"{module}\0{','.join(map(str, roots))}"
        if key not in self._origins:
            self._origins[key] = find_origin(module, roots)[0]
        origin = self._origins[key]
        if origin is None:
            return False
        where = Path(origin).resolve()
        if any(part in ("site-packages", "dist-packages") for part in where.parts):
            return False
        return not any(where.is_relative_to(prefix) for prefix in _installation())

    # ------------------------------------------------------------------ a whole spec

    def check(self, spec: Spec, roots: Sequence[Path]) -> list[Diagnostic]:
        """A diagnostic for every reference of ``spec`` this grant refuses."""
        out: list[Diagnostic] = []
        for agent, at in agent_locations(spec):
            out += _refused(self.model, agent.model, path=f"{at}.model")
        for i, imp in enumerate(spec.mcp.imports):
            path = f"mcp.imports[{i}]"
            if (
                self.origin == "source"
                and self.bundle_processes
                and imp.declared_server is None
                and imp.transport == "stdio"
            ):
                out.append(
                    diag(
                        "W_PROCESS_BUNDLE_ONLY",
                        f"{path}.command",
                        f"MCP import '{imp.name}' starts its own command: it runs only from a "
                        f"signed bundle in {self.environment!r}, never from a file or the API.",
                        "declare the server under mcp_servers to run it from a file too",
                    )
                )
                if imp.secret_env:
                    out += _refused(self.secret, imp.secret_env, path=f"{path}.secret_env")
                continue
            out += _refused(self.server, imp, path=path)
        for path, ref in function_refs(spec):
            out += _refused(self.function, ref, path=path, roots=roots)
        return out

    def allowed_servers(self, imports: Iterable[McpImport]) -> dict[str, ResolvedServer]:
        """The imports this grant allows, resolved, by name (refused ones left out)."""
        resolved: dict[str, ResolvedServer] = {}
        for i, imp in enumerate(imports):
            try:
                resolved[imp.name] = self.server(imp, path=f"mcp.imports[{i}]")
            except AccessDenied:
                continue
        return resolved


@lru_cache(maxsize=1)
def _installation() -> tuple[Path, ...]:
    """Where this Python's own and installed modules live."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return tuple(Path(p).resolve() for p in prefixes)


def _refused(attempt: Callable[..., object], *args: Any, **kwargs: Any) -> list[Diagnostic]:
    """``attempt(*args, **kwargs)`` as diagnostics: none when it passes, its refusal otherwise."""
    try:
        attempt(*args, **kwargs)
    except AccessDenied as exc:
        path = str(exc.details.get("path", ""))
        message = exc.message.removeprefix(f"{path}: ")
        return [diag(exc.code, path, message, exc.details.get("suggestion"))]
    return []
