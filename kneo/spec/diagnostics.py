"""The spec diagnostics' catalogue and the :class:`Diagnostic` every check reports.

Each diagnostic has a stable code (``E_*`` error, ``W_*`` warning, ``I_*`` info), a path into
the spec such as ``agent.tools[0]``, a message and a suggestion. ``CODES`` is the catalogue (the
table in ``docs/spec.md`` mirrors it; a test keeps them in step; ``docs/script`` reads it here).
The rules that produce them are :func:`kneo.spec.validation.validate_spec` and what it calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]

#: code -> (severity, one-line meaning). Keep ``docs/spec.md`` in step (tested).
CODES: dict[str, tuple[Severity, str]] = {
    "E_FILE_NOT_FOUND": ("error", "The spec, overlay or config file does not exist."),
    "E_YAML": ("error", "The file is not valid YAML (file and line given)."),
    "E_NOT_A_FILE": ("error", "The path is a device, pipe or socket, not a regular file."),
    "E_DOCUMENT_TOO_LARGE": ("error", "The document is over 8 MiB."),
    "E_DOCUMENT_TOO_DEEP": ("error", "The document nests more than 64 levels."),
    "E_DOCUMENT_TOO_COMPLEX": (
        "error",
        "Over 200,000 nodes (aliases expanded) or 1,000 aliases, or a recursive alias.",
    ),
    "E_NUMBER_TOO_LONG": (
        "error",
        "A number has more than 256 digits, however grouped (`1_000`, `0xFF`, `1:30:00`).",
    ),
    "E_NUMBER_OUT_OF_RANGE": ("error", "A number is not finite (`1e999`, `.inf`, `.nan`)."),
    "E_SCHEMA": ("error", "A field is unknown, missing or of the wrong type (field path given)."),
    "E_UNSUPPORTED_VERSION": (
        "error",
        "No `version`, an old one (run `kneo spec migrate`), or a future one.",
    ),
    "E_UNKNOWN_ENV": (
        "error",
        "The environment named (`--env`, `KNEO_ENV`, a run's `environment`, or the project's "
        "default when none is named) is not one the project declares.",
    ),
    "E_UNKNOWN_TOOL": (
        "error",
        "A tool name is neither registered, declared with an implementation, nor imported over MCP.",
    ),
    "E_UNKNOWN_REF": ("error", "A step, edge, selector or function ref does not resolve."),
    "E_UNKNOWN_SKILL": (
        "error",
        "An agent's `skills` names a skill neither the spec nor the project declares.",
    ),
    "E_AGENT_CYCLE": (
        "error",
        "An agent reaches itself through its agent tools or the workflow backing it.",
    ),
    "E_DUPLICATE_ID": ("error", "Two steps, nodes or participants share an id."),
    "E_UNKNOWN_RUNTIME": ("error", "A runtime mode is not registered (known: native, bridge)."),
    "E_RUNTIME_NOT_ALLOWED": ("error", "`preferred_mode` is not in `allowed_modes`."),
    "E_EMPTY_WORKFLOW": ("error", "The workflow has no steps, nodes or participants."),
    "E_GRAPH_NO_START": ("error", "A graph workflow has no `start` node, or it is not a node."),
    "E_GRAPH_UNREACHABLE": ("error", "A graph node cannot be reached from `start`."),
    "E_INVALID_CONDITION": ("error", "An edge condition's regex does not compile."),
    "E_ROUTE_OPTION_UNKNOWN": (
        "error",
        "A route-selection human node in a graph has an option that is not a node id.",
    ),
    "E_UNSAFE_TOOL_IMPORT": (
        "error",
        "A tool implementation directly imports os, subprocess, shutil, socket, importlib or builtins.",
    ),
    "E_UNSAFE_FUNCTION_IMPORT": (
        "error",
        "A function step or predicate module directly imports an unsafe primitive.",
    ),
    "E_SECRET_UNDECLARED": (
        "error",
        "`api_key_env` or `secret_env` names a secret the project does not declare (or this environment does not allow).",
    ),
    "E_MCP_SERVER_UNDECLARED": (
        "error",
        "An `mcp.imports` entry names a server the project does not declare (or this environment does not allow).",
    ),
    "E_PROCESS_UNDECLARED": (
        "error",
        "An `mcp.imports` entry defines its own command: only declared servers (or signed bundles where allowed) start processes.",
    ),
    "E_DESTINATION_NOT_ALLOWED": (
        "error",
        "A `base_url` or MCP `url` is not on the environment's network allow-list (or is not an http(s) URL).",
    ),
    "E_URL_HAS_CREDENTIALS": ("error", "A URL carries a user name or password."),
    "E_SECRET_NOT_BOUND": (
        "error",
        "A secret would travel to a destination it is not bound to (`secrets.destinations`; by default a provider key goes only to its provider's endpoints).",
    ),
    "E_FUNCTION_NOT_ALLOWED": (
        "error",
        "A function ref names a module outside the project that `functions.modules` does not list, or a name that is not a function defined in its module (an import, an alias, a class, a path through another object).",
    ),
    "E_CODE_DIGEST_MISMATCH": (
        "error",
        "A project code file a signed spec pins (`code:`) is missing or no longer has the sha256 it was signed with.",
    ),
    "E_POLICY_BLOCKED_CODE": (
        "error",
        "The environment policy blocks a diagnostic code that the spec triggers.",
    ),
    "E_POLICY_WARNING": ("error", "The environment policy fails on warnings and the spec has one."),
    "E_POLICY_HUMAN_REVIEW_REQUIRED": (
        "error",
        "The environment requires a human review step or tool approval.",
    ),
    "E_POLICY_TOOL_PERMISSIONS_REQUIRED": (
        "error",
        "The environment requires `policies.tool` on every agent with tools.",
    ),
    "E_POLICY_UNRESTRICTED_TOOLS": ("error", "The environment denies unrestricted tool selection."),
    "E_POLICY_GUARDRAILS_REQUIRED": (
        "error",
        "The environment requires guardrails on every agent.",
    ),
    "E_MCP_TOOL_UNKNOWN": (
        "error",
        "An `mcp.imports` entry lists a tool its server does not offer (`validate`/`lint` ask the server).",
    ),
    "W_MCP_UNREACHABLE": (
        "warning",
        "`validate`/`lint` could not reach an `mcp.imports` server to check its tool names.",
    ),
    "W_PROCESS_BUNDLE_ONLY": (
        "warning",
        "An `mcp.imports` command runs only from a signed bundle in this environment, never from a file or the API.",
    ),
    "W_TOOL_POLICY_UNRESTRICTED": (
        "warning",
        "`tools: all`, or a shorthand tool list without `policies.tool`.",
    ),
    "W_NETWORK_WITHOUT_ALLOWED_DOMAINS": (
        "warning",
        "A network tool is selected but `allowed_domains` is empty.",
    ),
    "W_SHELL_TOOL": ("warning", "A selected tool can run shell commands."),
    "W_FILESYSTEM_WRITE": (
        "warning",
        "A selected tool, or the tool policy, allows filesystem writes.",
    ),
    "W_TOOL_DENIED_BY_POLICY": (
        "warning",
        "An agent selects a tool its own `policies.tool` refuses (in `deny`, or not in `allow`): every call to it would be refused.",
    ),
    "W_TOOL_CAPABILITY_BLOCKED": (
        "warning",
        "A selected tool needs a capability the tool policy denies; its calls will be refused.",
    ),
    "W_HUMAN_APPROVAL_MISSING": (
        "warning",
        "Shell or file-writing tools without per-call approval, or unsafe imports, and no human step or review gate.",
    ),
    "W_DEPRECATED_FIELD": (
        "warning",
        "A v0 field (`agent.instructions`, `agent.max_iterations`); run `kneo spec migrate`.",
    ),
    "I_UNUSED_COMPONENT": ("info", "A component is declared but no step refers to it."),
    "I_NO_GUARDRAILS": ("info", "An agent declares no guardrails."),
}


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a spec: a stable code, its severity and where it is."""

    code: str
    severity: Severity
    path: str
    message: str
    suggestion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def diag(code: str, path: str, message: str, suggestion: str | None = None) -> Diagnostic:
    """A diagnostic whose severity comes from the catalogue."""
    return Diagnostic(code, CODES[code][0], path, message, suggestion)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
