"""Kneo: AI agent workflows under GitOps control with durable human approval.

The names below are the public API: what the docs and examples import, stable across
releases. Each is loaded on first use (``import kneo`` itself loads nothing else), so a
library user pays only for what it touches. Everything else is internal and may move.

Layers (imports point downward only; ``tests/core/test_layering.py`` checks them):
base -> contract ``kneo.spec`` -> trust ``kneo.bundle``/``kneo.policy`` -> execution
``kneo.engine`` -> adapters ``kneo.mcp`` (the MCP client) -> persistence ``kneo.store`` ->
reconcile ``kneo.controller`` -> application ``kneo.platform`` -> edges ``kneo.service`` (with
the MCP server, ``kneo.service.mcp``)/``kneo.console``/``kneo.cli``/``kneo.worker``.
"""

from kneo.lazy import lazy_exports

_ERRORS = [
    "BundleError",
    "BundleNotApproved",
    "Conflict",
    "ConfigError",
    "DatabaseUnavailable",
    "ErrorCode",
    "Forbidden",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidDecision",
    "InvalidRequest",
    "KneoError",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "ProviderError",
    "RequestAlreadyResolved",
    "ResourceLocked",
    "SpecError",
    "Unauthorized",
    "ValidationFailed",
]

_EXPORTS = {
    # running workflows in-process
    "create_platform": "kneo.platform.factory",
    "PlatformManager": "kneo.platform.manager",
    "RunResult": "kneo.platform.results",
    "Settings": "kneo.settings",
    # the Python SDK
    "WorkflowBuilder": "kneo.engine.builder",
    "StepContext": "kneo.engine.functions",
    "Decision": "kneo.engine.human",
    "HumanDecision": "kneo.engine.human",
    "HumanRequest": "kneo.engine.human",
    "HumanInterventionRequiredError": "kneo.engine.human",
    "HumanInterventionRequest": "kneo.engine.human",
    "HumanInTheLoopStep": "kneo.engine.sdk_steps",
    # tools and specs
    "ToolDefinition": "kneo.tools.registry",
    "ToolRegistry": "kneo.tools.registry",
    "create_tool_registry": "kneo.tools.defaults",
    "SpecCompiler": "kneo.spec.compiler",
    "load_spec": "kneo.spec.loader",
    # serving and calling a service
    "create_app": "kneo.service.app",
    "create_default_platform_manager": "kneo.service.factory",
    "set_platform_factory": "kneo.service.factory",
    "set_platform_manager": "kneo.service.dependencies",
    "ServiceClient": "kneo.cli.service_client",
    "ServiceError": "kneo.cli.service_client",
    # which Kneo this is (the version from the Git tag it was built from; docs/compatibility.md)
    "__version__": "kneo.version",
    "version_info": "kneo.version",
    "VersionInfo": "kneo.version",
    # the error tree
    **dict.fromkeys(_ERRORS, "kneo.errors"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("kneo", globals(), _EXPORTS)
