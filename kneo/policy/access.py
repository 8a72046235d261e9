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
                            ``dev``, ``network.allow``), every hop
a secret sent with a        a destination the secret is bound to        ``E_SECRET_NOT_BOUND``
request                     (:func:`secret_bindings`)
``module:function`` refs    the project's own code (a source file       ``E_FUNCTION_NOT_ALLOWED``
                            outside the Python installation, not
                            Kneo's), or listed in ``functions.modules``
==========================  ==========================================  =====================

The same :class:`HostAccess` answers both questions: *may this spec be admitted*
(:meth:`HostAccess.check`, diagnostics for lint, validate, sign, admission and the
controller) and *what does this call use* (:meth:`HostAccess.model_call`,
:meth:`HostAccess.server`, at the moment a run calls a model or starts an MCP session), so a
run admitted under older rules, or resumed elsewhere, still reaches nothing undeclared. The
latter give a :class:`Reach` the kernel's network door asks before every request hop.
Pure: the one filesystem look is where a function ref's module lives (no code runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from kneo.destinations import (
    DEFAULT_ENDPOINTS,
    KEYLESS_PROVIDERS,
    LOOPBACK,
    PROVIDER_ENDPOINTS,
    PROVIDER_KEY_DESTINATIONS,
    PROVIDER_KEY_NAMES,
    Destination,
    DestinationError,
    Target,
    allowed,
    parse_destination,
    parse_url,
)
from kneo.errors import AccessDenied, ErrorCode
from kneo.kernel import UNSAFE_MODULES, split_ref
from kneo.kernel.code import CodeSet, collect_code, outside_installation
from kneo.policy.environment import BudgetsPolicy, ResourcesPolicy
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import agent_locations, function_refs
from kneo.spec.models import McpImport, ModelSpec, Spec
from kneo.spec.pinning import pinned_code
from kneo.spec.prices import PriceTable
from kneo.spec.project import ProjectConfig
from kneo.spec.project_blocks import McpServerConfig
from kneo.spec.refs import find_origin

#: Where a spec comes from. ``spec``: a file run by the CLI, a spec path on the server, or
#: a document a library caller runs in-process; ``inline``: a document sent to the API
#: (``POST /v1/runs``, MCP), which names only the functions the project declares by name;
#: ``bundle``: a signed bundle (signing, the controller, bundle runs); ``source``: a spec
#: being linted or validated, which may become any of them.
Origin = Literal["spec", "inline", "source", "bundle"]

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
    #: where an ``http``/``sse`` session's requests may go, every hop (``None``: stdio)
    reach: Reach | None = None
    #: the secret's reference as the spec or project names it (the kernel's secret door
    #: asks the grant for it)
    secret_reference: str | None = None


@dataclass(frozen=True)
class Reach:
    """Where the requests of one model call or MCP session may go, asked by the kernel's
    network door (:func:`kneo.kernel.http_client`) before each request, every redirect hop
    included: the environment's allow-list (and its narrowing) and, when a secret travels
    with them, the destinations that secret is bound to. A value: equal grants share a
    pooled client."""

    environment: str
    network: tuple[Destination, ...]
    narrowed: tuple[Destination, ...] | None = None
    #: the secret's reference as the spec or project names it (``None``: no secret)
    reference: str | None = None
    bound: tuple[Destination, ...] = ()
    #: the variable holding that secret
    variable: str | None = None

    def destination(self, url: str, *, path: str) -> None:
        """Refuse ``url`` when it is not allowed here, or the secret is not bound to it."""
        target = _allowed_target(self.environment, self.network, self.narrowed, url, path)
        if self.reference is None or allowed(target, self.bound):
            return
        where = f"{target.scheme}://{target.host}:{target.port}"  # a path may hold a token
        bound = ", ".join(d.text for d in self.bound) or "no destination"
        raise AccessDenied(
            f"{path}: the secret {self.reference!r} is not sent to {where}: it is bound to {bound}",
            code=ErrorCode.E_SECRET_NOT_BOUND,
            path=path,
            suggestion=f"list the destination under secrets.destinations.{self.reference} in "
            ".kneo/config.yaml if this secret is meant for it",
        )

    def secret(self, reference: str, *, path: str) -> str:
        """The kernel's secret door asks this of a model call or MCP session: its own
        secret (by reference or variable) and no other."""
        if self.variable is not None and reference in (self.reference, self.variable):
            return self.variable
        raise AccessDenied(
            f"{path}: {reference!r} is not the secret this call was granted "
            f"({self.reference or 'none'})",
            code=ErrorCode.E_SECRET_UNDECLARED,
            path=path,
        )


def _allowed_target(
    environment: str,
    network: tuple[Destination, ...],
    narrowed: tuple[Destination, ...] | None,
    url: str,
    path: str,
) -> Target:
    """``url``'s target, once the allow-list (and its narrowing) lets it through."""
    try:
        target = parse_url(url)
    except DestinationError as exc:
        raise AccessDenied(f"{path}: {exc}", code=exc.code, path=path) from None
    if allowed(target, network) and (narrowed is None or allowed(target, narrowed)):
        return target
    where = f"{target.scheme}://{target.host}:{target.port}"
    raise AccessDenied(
        f"{path}: {where} is not an allowed destination in {environment!r}",
        code=ErrorCode.E_DESTINATION_NOT_ALLOWED,
        path=path,
        suggestion="add the host or URL prefix to network.allow (or "
        f"environments.{environment}.network.allow) in .kneo/config.yaml",
    )


@dataclass(frozen=True)
class DailySpend:
    """A project's spending on one UTC day against its daily budgets (``limits:``), by what
    they count (``model_calls``, ``tokens``, ``cost`` in nanos): used so far, the limit in force (as a person
    raised it that day, else the definition's) and the definition's own."""

    day: str
    used: Mapping[str, int]
    limits: Mapping[str, int]
    base: Mapping[str, int]


class ProjectBudget(Protocol):
    """A project's daily budgets as a run meets them (:mod:`kneo.platform.limits`): read
    before each model call, added to after it, raised by a person's decision."""

    @property
    def project(self) -> str: ...

    @property
    def on_exceeded(self) -> str: ...

    def spend(self) -> DailySpend: ...

    def record(self, model_calls: int, tokens: int, cost: int = 0) -> None: ...

    def raise_limit(self, day: str, counter: str, limit: int) -> int: ...


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
    #: ``functions.declared``: what an ``inline`` spec's refs may name
    declared_functions: frozenset[str] = frozenset()
    bundle_processes: bool = False
    #: what one run may spend here (the environment file's ``budgets:``); ``None``: no limit
    budgets: BudgetsPolicy | None = None
    #: what the project may spend per UTC day (its ``limits:``); ``None``: no daily budget
    project_budget: ProjectBudget | None = field(default=None, compare=False, repr=False)
    #: what model calls cost (the project config's ``prices:``); ``None``: not computed
    prices: PriceTable | None = field(default=None, repr=False)
    #: secret variable -> the destinations it may be sent to (:func:`secret_bindings`)
    bindings: Mapping[str, tuple[Destination, ...]] = field(default_factory=dict)
    _origins: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    #: (ref, roots) this grant allowed: the kernel asks at every call, and the answer of a
    #: frozen grant never changes
    _allowed: set[tuple[str, tuple[Path, ...], str]] = field(
        default_factory=set, compare=False, repr=False
    )
    _reaches: dict[str | None, Reach] = field(default_factory=dict, compare=False, repr=False)
    _installed_at: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

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
            declared_functions=frozenset(config.functions.declared),
            bundle_processes=resources.bundle_processes,
            budgets=budgets if budgets is not None and budgets.limits else None,
            prices=config.prices,
            bindings={
                variable: tuple(parse_destination(e) for e in entries)
                for variable, entries in secret_bindings(config, environment).items()
            },
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

    def process(self, argv: Sequence[str], *, path: str) -> None:
        """Refuse starting ``argv`` unless it is a declared ``stdio`` server's command, or a
        signed bundle's own command where the environment allows bundle processes (the
        kernel's process door asks this; :meth:`server` says which command)."""
        if self.origin == "bundle" and self.bundle_processes and argv:
            return
        declared = {tuple(s.command) for s in self.servers.values() if s.command}
        if tuple(argv) in declared:
            return
        program = argv[0] if argv else ""
        raise AccessDenied(
            f"{path}: {program!r} is not the command of an MCP server declared for "
            f"{self.environment!r}",
            code=ErrorCode.E_PROCESS_UNDECLARED,
            path=path,
            suggestion="declare the server under mcp_servers in .kneo/config.yaml",
        )

    def destination(self, url: str, *, path: str) -> None:
        """Refuse a URL that is not http(s), carries credentials, or is not allowed here."""
        _allowed_target(self.environment, self.network, self.narrowed_network, url, path)

    def reach(self, secret: str | None = None, variable: str | None = None) -> Reach:
        """Where requests carrying ``secret`` (its reference; its ``variable``) may go: the
        allow-list, and the secret's bound destinations. Kept per secret."""
        found = self._reaches.get(secret)
        if found is None:
            bound = self.bindings.get(variable or "", ()) if secret is not None else ()
            found = Reach(
                self.environment, self.network, self.narrowed_network, secret, bound, variable
            )
            self._reaches[secret] = found
        return found

    def model(self, model: ModelSpec, *, path: str) -> ModelSpec:
        """``model`` with its key resolved to a declared variable, once its destination and
        secret are allowed (:meth:`model_call`)."""
        return self.model_call(model, path=path)[0]

    def model_call(self, model: ModelSpec, *, path: str) -> tuple[ModelSpec, Reach]:
        """What a provider is called with: ``model`` with ``api_key_env`` set to the declared
        variable holding its key (the spec's, else the one the project declares for its
        provider), and where the call's requests may go. Refused when the destination is not
        allowed, the key is not declared, or the key is not bound to the destination."""
        url = model.base_url or DEFAULT_ENDPOINTS.get(model.provider)
        if url is not None:
            self.destination(url, path=f"{path}.base_url")
        reference = model.api_key_env or self._provider_key(model.provider, path=path)
        if reference is None:
            return model, self.reach()
        variable = self.secret(reference, path=f"{path}.api_key_env")
        reach = self.reach(reference, variable)
        if url is not None:
            reach.destination(url, path=f"{path}.base_url")
        if variable != model.api_key_env:
            model = model.model_copy(update={"api_key_env": variable})
        return model, reach

    def _provider_key(self, provider: str, *, path: str) -> str | None:
        """The declared name of the key a ``provider`` model without ``api_key_env`` uses;
        ``None`` for a provider that takes no key (``dummy``, one registered in-process) or
        may go without (:data:`~kneo.destinations.KEYLESS_PROVIDERS`, none declared)."""
        if provider not in PROVIDER_KEY_DESTINATIONS:
            return None
        for name in (provider, PROVIDER_KEY_NAMES.get(provider)):
            if name is not None and name in self.secrets:
                return name
        if provider in KEYLESS_PROVIDERS:
            return None
        raise AccessDenied(
            f"{path}.api_key_env: provider {provider!r} needs a key and none is declared for "
            f"it in {self.environment!r}",
            code=ErrorCode.E_SECRET_UNDECLARED,
            path=f"{path}.api_key_env",
            suggestion=f"declare it under secrets.providers.{provider} in .kneo/config.yaml, "
            "or name a declared secret with model.api_key_env",
        )

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
        return self._resolved(
            imp, imp.transport, imp.command, imp.url, imp.secret_env, path, "secret_env"
        )

    def _resolved(
        self,
        imp: McpImport,
        transport: Literal["stdio", "http", "sse"],
        command: Sequence[str] | None,
        url: str | None,
        secret: str | None,
        path: str,
        secret_field: str,
    ) -> ResolvedServer:
        """The server with its secret's variable and, for an HTTP server, where its session
        may go (``None``: stdio) once the secret, if any, is bound to ``url``: the same for
        a spec's own server and a project-declared one (``path``: where it is declared)."""
        variable = self.secret(secret, path=f"{path}.{secret_field}") if secret else None
        reach = None
        if url is not None:
            reach = self.reach(secret, variable)
            reach.destination(url, path=f"{path}.url")
        return ResolvedServer(
            imp.name, transport, tuple(command or ()), url, variable, reach, secret
        )

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
        return self._resolved(
            imp,
            declared.transport,
            declared.command,
            declared.url,
            declared.secret,
            f"mcp_servers.{name}",
            "secret",
        )

    def function(
        self, ref: str, *, path: str, roots: Sequence[Path] = (), code: CodeSet | None = None
    ) -> None:
        """Refuse a ``module:function`` ref that is neither the project's own code (a file in
        ``roots``, the spec's directory up to the project root, found by path; at run time a
        module of the run's ``code`` set) nor under ``functions.modules`` (and, from an
        ``inline`` spec, one the project does not declare by name). A project file named
        like an installed or standard-library module is the project's: it is loaded from its
        path, never the other one."""
        key = (ref, tuple(roots), code.digest if code is not None else "")
        if key in self._allowed:
            return
        parsed = split_ref(ref)
        if parsed is None:
            return  # not a ref: validation reports it
        if self.origin == "inline" and ref not in self.declared_functions:
            raise AccessDenied(
                f"{path}: {ref!r} is not a function the project declares for specs sent to "
                "the API; an inline spec names only functions listed under functions.declared",
                code=ErrorCode.E_FUNCTION_NOT_ALLOWED,
                path=path,
                suggestion="list the ref under functions.declared in .kneo/config.yaml, or run "
                "the spec from a file or a signed bundle",
            )
        module = parsed[0]
        project = (
            code.get(module) is not None
            if code is not None
            else self._project_module(module, roots)
        )
        if project or self._installed(module):
            self._allowed.add(key)
            return
        raise AccessDenied(
            f"{path}: module {module!r} is not part of the project; a function ref names a "
            "module in the project's own tree or one listed under functions.modules",
            code=ErrorCode.E_FUNCTION_NOT_ALLOWED,
            path=path,
            suggestion="move the function into the project, or list its installed module "
            "under functions.modules in .kneo/config.yaml",
        )

    def _installed(self, module: str) -> bool:
        """Whether ``functions.modules`` lists ``module`` (or a package of it)."""
        return module.split(".")[0] not in UNSAFE_MODULES and any(
            module == m or module.startswith(m + ".") for m in self.function_modules
        )

    def installed_origin(self, module: str) -> str | None:
        """The file a listed installed module is found at (judged once per grant): the
        kernel refuses the module when an import finds it anywhere else."""
        if module not in self._installed_at:
            origin = find_origin(module, ())[0] if self._installed(module) else None
            self._installed_at[module] = str(Path(origin).resolve()) if origin else None
        return self._installed_at[module]

    def _project_module(self, module: str, roots: Sequence[Path]) -> bool:
        """Whether ``module`` is the project's own code: a source file found by path in
        ``roots`` (first match), outside the Python installation (the standard library,
        site-packages, the virtual environment) and not Kneo itself. The verdict is kept
        per module and roots: the kernel asks at every call."""
        if module.split(".")[0] == "kneo":
            return False
        key = f"{module}\0{','.join(map(str, roots))}"
        verdict = self._origins.get(key)
        if verdict is None:
            code, _ = collect_code([module], roots, accept=outside_installation)
            verdict = self._origins[key] = code.get(module) is not None
        return verdict

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
        # a signed spec's refs are judged against the code it pins, wherever its files are now
        code = pinned_code(spec)
        for path, ref in function_refs(spec):
            out += _refused(self.function, ref, path=path, roots=roots, code=code)
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


def secret_bindings(config: ProjectConfig, environment: str) -> dict[str, tuple[str, ...]]:
    """Secret variable -> the allow-list entries it may be sent to in ``environment``: what
    ``secrets.destinations`` lists for it, else what its declared uses imply (a provider's
    key: its provider's endpoints; ``model.api_key_env``, or the key of the project's
    ``model.provider``: the project's ``model.base_url``; an HTTP MCP server's secret: that
    server's URL). Where loopback needs no listing (``dev``), loopback too. A variable with
    none is never sent over the network."""
    declared = config.declared_secrets(environment)
    implied: dict[str, list[str]] = {}
    for provider, variable in config.secrets.providers.items():
        implied.setdefault(variable, []).extend(PROVIDER_KEY_DESTINATIONS.get(provider, ()))
    provider = config.model.provider or ""
    url = config.model.base_url or DEFAULT_ENDPOINTS.get(provider)
    names = (config.model.api_key_env, provider, PROVIDER_KEY_NAMES.get(provider))
    key = next((n for n in names if n and n in declared), None)
    if key is not None and url:
        implied.setdefault(declared[key], []).append(url)
    for server in config.mcp_servers.values():
        if server.secret in declared and server.url:
            implied.setdefault(declared[server.secret], []).append(server.url)
    explicit: dict[str, list[str]] = {}
    for ref, entries in config.secrets.destinations.items():
        if ref in declared:
            explicit.setdefault(declared[ref], []).extend(entries)
    bindings = {**implied, **explicit}
    if environment == LOOPBACK_ENVIRONMENT:
        bindings = {v: [*bindings.get(v, []), LOOPBACK] for v in {*declared.values(), *bindings}}
    return {variable: tuple(dict.fromkeys(entries)) for variable, entries in bindings.items()}


def _refused(attempt: Callable[..., object], *args: object, **kwargs: object) -> list[Diagnostic]:
    """``attempt(*args, **kwargs)`` as diagnostics: none when it passes, its refusal otherwise."""
    try:
        attempt(*args, **kwargs)
    except AccessDenied as exc:
        path = str(exc.details.get("path", ""))
        message = exc.message.removeprefix(f"{path}: ")
        return [diag(exc.code, path, message, exc.details.get("suggestion"))]
    return []
