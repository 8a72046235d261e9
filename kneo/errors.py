"""One exception hierarchy for the whole of Kneo.

Every error a user can meet is a :class:`KneoError` with a stable ``code``, an HTTP status
and a CLI exit code. The service maps it to the envelope ``{"error": code, "message": ...,
**details}``; the CLI prints one line ``error[code]: message`` and exits ``exit_code``.
Third-party errors are translated at the boundary (``raise KneoError(...) from exc``).

Every code is a row of one table, :class:`ErrorCode`: the class that raises it (or, for a
code that is only recorded, ``run error`` / ``reconcile problem`` / ``response``), its HTTP
status, a one-line summary, and whether it is *retryable*: the operation did not happen and
may be repeated unchanged after ``retry_after`` seconds (a database outage, a service not
ready yet, a throttled client). Raise sites name codes as ``ErrorCode.<code>``, never as bare
strings (``tests/core/test_error_codes.py``); the wire carries the same plain strings as ever.
The engine, the worker and the service read ``retryable``/``retry_after`` of an error rather
than matching its class. Spec diagnostics (``E_*``/``W_*``, :mod:`kneo.spec.diagnostics`) are
their own catalogue; those written at a raise site are rows here too.

    KneoError
    ├── InvalidRequest            400 invalid_request
    │   ├── SpecError             400 E_* (spec diagnostics: file, line, path)
    │   ├── InvalidDecision       400 invalid_decision
    │   └── ConfigError           400 config_error
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    │   ├── BundleNotApproved     403 bundle_not_approved
    │   └── AccessDenied          403 E_SECRET_UNDECLARED, E_DESTINATION_NOT_ALLOWED, ...
    ├── NotFound                  404 not_found
    ├── Conflict                  409 conflict
    │   ├── IdempotencyConflict   409 idempotency_key_conflict
    │   ├── ResourceLocked        409 resource_locked
    │   ├── RequestAlreadyResolved 409 request_already_resolved
    │   ├── HumanTaskExpired      409 human_task_expired
    │   └── IllegalTransition     409 illegal_transition
    ├── PayloadTooLarge           413 payload_too_large
    ├── ValidationFailed          422 validation_error
    ├── TooManyRequests           429 too_many_requests (``retry_after`` seconds)
    │   └── ProjectLimitReached   429 project_limit_reached
    ├── BundleError               400 bundle_* (signature / digest / key problems)
    ├── ProviderError             502 provider_error
    └── NotReady                  503 not_ready
        └── DatabaseUnavailable   503 database_unavailable (transient: retry after a pause)
"""

from __future__ import annotations

from typing import Any, Final

#: Seconds a client should wait before retrying a transient error (database down, not ready):
#: the service's ``Retry-After`` on every ``503``.
RETRY_AFTER_SECONDS: Final = 2


class CodeInfo:
    """One row of the error table (:class:`ErrorCode`). A plain slotted class, not a
    dataclass: every Kneo process imports this module first, and a dataclass (importing
    ``dataclasses``, generating its methods) took 2.0 ms to run it against 0.4 ms now."""

    __slots__ = ("category", "code", "http_status", "retry_after", "retryable", "summary")

    def __init__(
        self,
        code: str,
        category: str,
        http_status: int | None,
        summary: str,
        retryable: bool = False,
        retry_after: int | None = None,
    ) -> None:
        self.code = code
        #: the ``KneoError`` subclass that raises it, or how a code that is never raised
        #: reaches a user: ``run error`` (a run's recorded error), ``reconcile problem`` (the
        #: controller's), ``response`` (an HTTP answer built without an exception)
        self.category = category
        #: the HTTP status it is answered with (``None``: it never is, or the framework's own)
        self.http_status = http_status
        self.summary = summary
        #: transient: the operation did not happen and may be repeated unchanged later
        self.retryable = retryable
        #: seconds to wait before that (``None``: the error itself says, or not retryable)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"CodeInfo({self.code!r}, {self.category!r}, {self.http_status!r}, ...)"


#: Every error code, by code: the table :class:`ErrorCode` fills.
ERRORS: Final[dict[str, CodeInfo]] = {}


def _code(
    code: str,
    category: str,
    http_status: int | None,
    summary: str,
    *,
    retry_after: int | None = None,
    retryable: bool = False,
) -> str:
    """Add a row to :data:`ERRORS`; the code itself is what a raise site names."""
    ERRORS[code] = CodeInfo(
        code, category, http_status, summary, retryable or retry_after is not None, retry_after
    )
    return code


class ErrorCode:
    """Every error code Kneo's CLI, API and run records can carry: one row each (raising
    class or category, HTTP status, summary, retryability). Codes are a stable contract: a
    row is added, never renamed. A new code: a row here, then
    ``python docs/script/generate_troubleshooting.py`` and its what-to-do cells in
    ``docs/troubleshooting.md``."""

    # fmt: off
    access_denied: Final = _code("access_denied", "AccessDenied", 403, "a spec names a secret, process, destination or module the project does not allow (the specific `E_*` code is usually given instead)")
    agent_error: Final = _code("agent_error", "AgentStepError", 400, "an agent's loop failed (the message says how)")
    agent_max_iterations: Final = _code("agent_max_iterations", "AgentStepError", 400, "the agent did not finish within `strategy.max_iterations`")
    already_active: Final = _code("already_active", "Conflict", 409, "the revision to roll back to carries the digest that is already active")
    already_decided: Final = _code("already_decided", "Conflict", 409, "this approver already decided on the promotion")
    already_exists: Final = _code("already_exists", "Conflict", 409, "a run with this id exists")
    backup_failed: Final = _code("backup_failed", "InvalidRequest", 400, "the SQLite backup could not be written")
    bad_response: Final = _code("bad_response", "response", None, "over MCP (`kneo mcp serve`) or A2A (`--a2a`): the API answered something that is not JSON")
    agent_rate_limited: Final = _code("agent_rate_limited", "RateLimited", 400, "an agent reached its `rate_limit` (model calls per minute) with `on_exceeded: fail`")
    budget_exceeded: Final = _code("budget_exceeded", "BudgetExceeded", 400, "the run reached a limit of its environment's `budgets:` (model calls, tool calls or tokens) with `on_exceeded: fail`, or a person stopped it at one")
    bundle_alg_mismatch: Final = _code("bundle_alg_mismatch", "BundleError", 400, "the bundle's algorithm does not match the trusted key's")
    bundle_attestation_mismatch: Final = _code("bundle_attestation_mismatch", "BundleError", 400, "an eval result attached to a bundle was measured against another digest (the spec changed after its suite ran), or its counts do not add up")
    bundle_digest_mismatch: Final = _code("bundle_digest_mismatch", "BundleError", 400, "the bundle's content does not match its digest: it was edited after signing")
    bundle_environment_mismatch: Final = _code("bundle_environment_mismatch", "BundleError", 400, "the bundle was signed for another environment than `--env`")
    bundle_insufficient_signatures: Final = _code("bundle_insufficient_signatures", "BundleError", 400, "fewer trusted signatures than the environment requires")
    bundle_invalid: Final = _code("bundle_invalid", "BundleError", 400, "a bundle failed verification (the generic code: a `bundle_*` code says why)")
    bundle_key_exists: Final = _code("bundle_key_exists", "BundleError", 400, "`kneo keys generate` would overwrite a key")
    bundle_key_expired: Final = _code("bundle_key_expired", "BundleError", 400, "the only signature(s) are by keys outside their validity window")
    bundle_key_invalid: Final = _code("bundle_key_invalid", "BundleError", 400, "a key file is not a valid key")
    bundle_key_missing: Final = _code("bundle_key_missing", "BundleError", 400, "the signing or verifying key is not available (variable unset or file missing)")
    bundle_key_not_accepted: Final = _code("bundle_key_not_accepted", "BundleError", 400, "the signing key is trusted but the environment file does not accept it")
    bundle_keyring_invalid: Final = _code("bundle_keyring_invalid", "BundleError", 400, "the trusted keyring directory or its `keyring.yaml` is malformed")
    bundle_malformed: Final = _code("bundle_malformed", "BundleError", 400, "the bundle file is not a bundle document")
    bundle_not_approved: Final = _code("bundle_not_approved", "BundleNotApproved", 403, "the bundle has no approval for this environment")
    bundle_path_invalid: Final = _code("bundle_path_invalid", "reconcile problem", None, "a file under `bundles/` is not at `bundles/<name>/<env>.json` (or has an invalid name)")
    bundle_path_mismatch: Final = _code("bundle_path_mismatch", "reconcile problem", None, "a validly signed bundle sits at another bundle's or environment's path")
    bundle_signature_invalid: Final = _code("bundle_signature_invalid", "BundleError", 400, "a signature does not verify with the trusted key")
    bundle_spec_rejected: Final = _code("bundle_spec_rejected", "BundleError", 400, "the spec inside the bundle fails validation or the environment's policy")
    bundle_unknown_key: Final = _code("bundle_unknown_key", "BundleError", 400, "signed by a key id that is not in the keyring")
    bundle_unreadable: Final = _code("bundle_unreadable", "reconcile problem", None, "an unforeseen fault while judging the file (logged with its traceback)")
    bundle_unsigned: Final = _code("bundle_unsigned", "BundleError", 400, "the bundle has no signature")
    config_error: Final = _code("config_error", "ConfigError", 400, "a setting or the project config is invalid")
    config_exists: Final = _code("config_exists", "ConfigError", 400, "`kneo config init` found `.kneo/config.yaml` already")
    conflict: Final = _code("conflict", "Conflict", 409, "the thing changed under the request (a concurrent writer won)")
    controller_not_configured: Final = _code("controller_not_configured", "NotFound", 404, "this process runs no controller (no `controller.repo`)")
    csrf_failed: Final = _code("csrf_failed", "Forbidden", 403, "a console form was posted without this session's token (an old tab, or a forged post)")
    database_unavailable: Final = _code("database_unavailable", "DatabaseUnavailable", 503, "the database cannot be reached or dropped the connection", retry_after=RETRY_AFTER_SECONDS)
    decision_link_expired: Final = _code("decision_link_expired", "LinkExpired", 410, "the decision link is older than `KNEO_SERV_DECISION_LINK_SECONDS`")
    decision_link_invalid: Final = _code("decision_link_invalid", "NotFound", 404, "the decision link was altered, or signed with another `KNEO_SERV_CONSOLE_SECRET` (a secret rotated since it was sent)")
    device_sign_in_refused: Final = _code("device_sign_in_refused", "Unauthorized", 401, "the provider refused the CLI's device sign-in, the person declined, or the code expired before they entered it")
    digest_blocked: Final = _code("digest_blocked", "Conflict", 409, "the digest is blocked (`kneo registry block`): rollbacks to it are refused, and the controller refuses to promote it (`Promoted=False Blocked`, naming who blocked it and why)")
    E_CODE_DIGEST_MISMATCH: Final = _code("E_CODE_DIGEST_MISMATCH", "Conflict", 409, "a project code file does not have the sha256 its code set pins (a signed bundle's or a run's): it changed since it was judged, or the store does not hold it")
    E_DESTINATION_NOT_ALLOWED: Final = _code("E_DESTINATION_NOT_ALLOWED", "AccessDenied", 403, "a `base_url`, MCP `url` or A2A push `url` is not on its allow-list (the environment's network allow-list; the operator's push destinations) or is not an http(s) URL")
    E_DOCUMENT_INVALID: Final = _code("E_DOCUMENT_INVALID", "DocumentError", 400, "a JSON or YAML document breaks a limit or is not a document at all")
    E_DOCUMENT_TOO_COMPLEX: Final = _code("E_DOCUMENT_TOO_COMPLEX", "DocumentError", 400, "over 200,000 nodes (aliases expanded) or 1,000 aliases, or a recursive alias")
    E_DOCUMENT_TOO_DEEP: Final = _code("E_DOCUMENT_TOO_DEEP", "DocumentError", 400, "the document nests more than 64 levels")
    E_DOCUMENT_TOO_LARGE: Final = _code("E_DOCUMENT_TOO_LARGE", "DocumentTooLarge", 413, "the document is over 8 MiB")
    E_DUPLICATE_KEY: Final = _code("E_DUPLICATE_KEY", "DocumentError", 400, "a YAML or JSON mapping holds one key twice (both lines given): one reading only")
    E_EVAL_SUITE: Final = _code("E_EVAL_SUITE", "EvalSuiteError", 400, "an eval suite file does not match the format (the message names the file and the field), or a case scripts an agent the spec does not declare")
    E_FILE_NOT_FOUND: Final = _code("E_FILE_NOT_FOUND", "SpecError", 400, "the spec, overlay or config file does not exist")
    E_FILE_NOT_ALLOWED: Final = _code("E_FILE_NOT_ALLOWED", "AccessDenied", 403, "a file the project config names (a skill's `instructions_file`) is not inside the project: an absolute path, `..`, or a symlink out of it")
    E_FUNCTION_NOT_ALLOWED: Final = _code("E_FUNCTION_NOT_ALLOWED", "AccessDenied", 403, "a function ref names a module outside the project that `functions.modules` does not list, or a name that is not a function defined in its module (an import, an alias, a class, a path through another object)")
    E_JSON: Final = _code("E_JSON", "DocumentError", 400, "a file or body is not valid JSON (line and column given)")
    E_MCP_SERVER_UNDECLARED: Final = _code("E_MCP_SERVER_UNDECLARED", "AccessDenied", 403, "an `mcp.imports` entry names a server the project does not declare (or this environment does not allow)")
    E_NOT_A_FILE: Final = _code("E_NOT_A_FILE", "DocumentError", 400, "the path is a device, pipe or socket, not a regular file")
    E_NUMBER_OUT_OF_RANGE: Final = _code("E_NUMBER_OUT_OF_RANGE", "DocumentError", 400, "a number is not finite (`1e999`, `.inf`, `.nan`)")
    E_NUMBER_TOO_LONG: Final = _code("E_NUMBER_TOO_LONG", "DocumentError", 400, "a number has more than 256 digits, however grouped (`1_000`, `0xFF`, `1:30:00`)")
    E_PROCESS_UNDECLARED: Final = _code("E_PROCESS_UNDECLARED", "AccessDenied", 403, "an `mcp.imports` entry defines its own command: only declared servers (or signed bundles where allowed) start processes")
    E_SCHEMA: Final = _code("E_SCHEMA", "SpecError", 400, "a field is unknown, missing or of the wrong type (field path given)")
    E_SECRET_NOT_BOUND: Final = _code("E_SECRET_NOT_BOUND", "AccessDenied", 403, "a secret would travel to a destination it is not bound to (`secrets.destinations`; by default a provider key goes only to its provider's endpoints)")
    E_SECRET_UNDECLARED: Final = _code("E_SECRET_UNDECLARED", "AccessDenied", 403, "`api_key_env` or `secret_env` names a secret the project does not declare (or this environment does not allow)")
    E_TOOL_FACTORY: Final = _code("E_TOOL_FACTORY", "ConfigError", 400, "`tool_registry` (or `--tools`) names a module or factory that cannot be imported, raised, or returned no `ToolRegistry`")
    E_UNKNOWN_ENV: Final = _code("E_UNKNOWN_ENV", "SpecError", 400, "an environment the project does not declare: `--env`, `KNEO_ENV`, a run's `environment` (or, omitted, the project's default), a bundle run's or an eval's")
    E_UNKNOWN_FUNCTION_REF: Final = _code("E_UNKNOWN_FUNCTION_REF", "FunctionImportError", 400, "a function step's `module:function` cannot be imported when the run reaches it")
    E_UNKNOWN_REF: Final = _code("E_UNKNOWN_REF", "KneoError", 400, "a step, edge, selector or function ref does not resolve")
    E_UNKNOWN_RUNTIME: Final = _code("E_UNKNOWN_RUNTIME", "AgentStepError", 400, "a runtime mode is not registered (known: native, bridge)")
    E_UNKNOWN_SKILL: Final = _code("E_UNKNOWN_SKILL", "SpecError", 400, "a skill named by an agent's `skills` or a run's skills overlay is declared neither by the spec nor by the project")
    E_UNKNOWN_TOOL: Final = _code("E_UNKNOWN_TOOL", "KneoError", 400, "a tool name is neither registered, declared with an implementation, nor imported over MCP")
    E_UNSUPPORTED_VERSION: Final = _code("E_UNSUPPORTED_VERSION", "SpecError", 400, "no `version`, an old one (run `kneo spec migrate`), or a future one")
    E_URL_HAS_CREDENTIALS: Final = _code("E_URL_HAS_CREDENTIALS", "AccessDenied", 403, "a URL carries a user name or password")
    E_WRITE_FAILED: Final = _code("E_WRITE_FAILED", "KneoError", 400, "the output file cannot be written")
    E_YAML: Final = _code("E_YAML", "SpecError", 400, "the file is not valid YAML (file and line given)")
    empty_desired_state: Final = _code("empty_desired_state", "reconcile problem", None, "the watched commit holds no bundles, so nothing would stay active")
    environment_invalid: Final = _code("environment_invalid", "reconcile problem", 400, "an `environments/<env>.yaml` file in the watched repository is invalid")
    environment_missing: Final = _code("environment_missing", "reconcile problem", None, "the bundle is for an environment with no `environments/<env>.yaml` in the repository")
    environment_policy_conflict: Final = _code("environment_policy_conflict", "ConfigError", 400, "the project config and the environment file set a policy field differently")
    eval_results_malformed: Final = _code("eval_results_malformed", "BundleError", 400, "a `bundles/<name>/evals/<env>.json` file is not signed eval results (not JSON, a repeated member, or not the `KneoEvalResults` v1 schema)")
    eval_results_mismatch: Final = _code("eval_results_mismatch", "BundleError", 400, "an eval results file names another bundle, environment or digest than the bundle beside it (the spec changed after its suite ran), or its counts do not add up")
    forbidden: Final = _code("forbidden", "Forbidden", 403, "the key is valid but its role lacks the scope")
    graph_max_visits: Final = _code("graph_max_visits", "KneoError", 400, "a graph node would run more often than `max_visits`")
    graph_unknown_node: Final = _code("graph_unknown_node", "KneoError", 400, "a graph edge leads to a node that does not exist")
    guardrail_blocked: Final = _code("guardrail_blocked", "GuardrailBlocked", 400, "an agent's input or final answer was blocked by a `guardrail` middleware (`agent.middleware`)")
    http_error: Final = _code("http_error", "response", None, "an HTTP error without a Kneo code of its own")
    human_continue_failed: Final = _code("human_continue_failed", "run error", None, "a task that timed out with `on_timeout: continue` could not resume")
    human_intervention_required: Final = _code("human_intervention_required", "HumanInterventionRequiredError", 409, "the run paused for a person (not an error when it comes with `status: paused`)")
    human_rejected: Final = _code("human_rejected", "HumanRejected", 400, "a person rejected the step and the spec says a rejection fails the run (`on_reject`)")
    human_task_expired: Final = _code("human_task_expired", "HumanTaskExpired", 409, "the human request's `timeout_seconds` passed (`on_timeout: fail`, `continue` or `reject`): a decision after `expires_at` is refused, before the timeout sweep and after it; a run the sweep expired (`fail`) carries it as its error")
    idempotency_key_conflict: Final = _code("idempotency_key_conflict", "IdempotencyConflict", 409, "the `Idempotency-Key` was used before with a different body")
    identity_provider_unavailable: Final = _code("identity_provider_unavailable", "NotReady", 503, "the OpenID provider could not be reached for its signing keys, and none were fetched before", retry_after=RETRY_AFTER_SECONDS)
    illegal_transition: Final = _code("illegal_transition", "IllegalTransition", 409, "the run or task is not in a state that allows this (a finished run cannot be cancelled)")
    internal_error: Final = _code("internal_error", "KneoError", 500, "an unexpected failure")
    invalid: Final = _code("invalid", "reconcile problem", None, "a rejection without a recorded reason (defensive; should not happen)")
    invalid_backup: Final = _code("invalid_backup", "InvalidRequest", 400, "the file to restore is not a Kneo SQLite backup")
    invalid_condition: Final = _code("invalid_condition", "KneoError", 400, "an edge condition cannot be evaluated")
    invalid_decision: Final = _code("invalid_decision", "InvalidDecision", 400, "the decision is not one this request accepts, or not exactly one was given")
    invalid_human_input: Final = _code("invalid_human_input", "ValidationFailed", 422, "typed input does not match the request's `input_schema` (the field is named)")
    invalid_name: Final = _code("invalid_name", "InvalidRequest", 400, "a name (bundle, environment, profile, receiver) has characters outside `A-Z a-z 0-9 . _ -` or is too long")
    invalid_payload: Final = _code("invalid_payload", "InvalidRequest", 400, "a stored checkpoint is not JSON (a damaged database)")
    invalid_request: Final = _code("invalid_request", "InvalidRequest", 400, "the request is malformed (the message names the field)")
    kneo_error: Final = _code("kneo_error", "KneoError", 400, "an error without a more specific code")
    mcp_tool_error: Final = _code("mcp_tool_error", "McpToolError", 400, "an MCP tool answered with an error")
    mcp_unavailable: Final = _code("mcp_unavailable", "McpUnavailable", 400, "the MCP server cannot be started or reached")
    method_not_allowed: Final = _code("method_not_allowed", "response", 405, "the route exists but not with this HTTP method")
    migration_failed: Final = _code("migration_failed", "NotReady", 503, "a schema migration failed", retry_after=RETRY_AFTER_SECONDS)
    model_output_truncated: Final = _code("model_output_truncated", "AgentStepError", 400, "the model stopped at its output limit before finishing")
    no_role: Final = _code("no_role", "Forbidden", 403, "a person the provider vouched for, whom `KNEO_SERV_OIDC_ROLES` gives no role (the message names their groups)")
    not_an_approver: Final = _code("not_an_approver", "Forbidden", 403, "the caller is not among the environment's approvers (of a promotion, a rollback or a rollout)")
    not_found: Final = _code("not_found", "NotFound", 404, "no run, task, bundle, profile or route with that id or path")
    not_leader: Final = _code("not_leader", "KneoError", 400, "the controller lost its leader lock mid-reconcile")
    not_ready: Final = _code("not_ready", "NotReady", 503, "a dependency is not ready, or no controller leads yet", retry_after=RETRY_AFTER_SECONDS)
    notification_failed: Final = _code("notification_failed", "KneoError", 400, "a test notification could not be delivered")
    offset_too_deep: Final = _code("offset_too_deep", "InvalidRequest", 400, "the page offset is beyond `KNEO_SERV_MAX_LIST_OFFSET`")
    oidc_flow_expired: Final = _code("oidc_flow_expired", "Unauthorized", 401, "the provider sent the browser back without the sign-in's cookie: it took over 10 minutes, or started in another browser")
    oidc_sign_in_refused: Final = _code("oidc_sign_in_refused", "Unauthorized", 401, "the provider refused the sign-in (the message has its `error`), e.g")
    oidc_state_mismatch: Final = _code("oidc_state_mismatch", "Unauthorized", 401, "the answer's `state` is not the one this browser's sign-in sent: replayed or forged")
    oidc_token_exchange_failed: Final = _code("oidc_token_exchange_failed", "Unauthorized", 401, "the provider's token endpoint refused the code or could not be reached")
    payload_too_large: Final = _code("payload_too_large", "PayloadTooLarge", 413, "the body (or a field of it) is over its limit")
    pinned: Final = _code("pinned", "reconcile problem", None, "the bundle is pinned in this environment (`kneo registry pin`, or a rollback): the controller promotes nothing else there (`Promoted=False Pinned`)")
    policy_approval_malformed: Final = _code("policy_approval_malformed", "BundleError", 400, "an `environments/approvals/<env>.json` file is not a policy approval (not JSON, a repeated member, or not the `KneoPolicyApproval` v1 schema)")
    policy_approval_mismatch: Final = _code("policy_approval_mismatch", "BundleError", 400, "a policy approval is for another environment, or another policy than the one at the commit (sign the change again)")
    policy_below_floor: Final = _code("policy_below_floor", "reconcile problem", None, "an environment's policy in the repository is below a floor of the controller's own configuration: refused whole, the policy in force stays")
    policy_held: Final = _code("policy_held", "reconcile problem", None, "a policy change loosens gates: it waits for the signatures (and approvals) the policy in force demands, which keeps judging every bundle meanwhile")
    policy_kept: Final = _code("policy_kept", "reconcile problem", None, "an environment file was deleted or cannot be read: the last verified policy stays in force")
    policy_not_in_force: Final = _code("policy_not_in_force", "reconcile problem", None, "the environment has no verified policy in force (a new environment awaiting approval, or one below a floor): nothing is promoted there")
    policy_violation: Final = _code("policy_violation", "reconcile problem", None, "the bundle's spec breaks the environment's policy (`E_POLICY_*`)")
    project_config_invalid: Final = _code("project_config_invalid", "reconcile problem", None, "the controller's own `.kneo/config.yaml` cannot be read")
    project_limit_reached: Final = _code("project_limit_reached", "ProjectLimitReached", 429, "the project is at one of its `limits:` (`limit` names it: runs running or queued at once, or today's model calls or tokens): retry after `retry_after` seconds", retryable=True)
    project_mismatch: Final = _code("project_mismatch", "InvalidRequest", 400, "the path (`/v1/projects/<name>/...`) and the `X-Kneo-Project` header name two projects")
    project_config_not_found: Final = _code("project_config_not_found", "ConfigError", 400, "no `.kneo/config.yaml` here or above (and no `KNEO_PROJECT_CONFIG`)")
    project_not_found: Final = _code("project_not_found", "NotFound", 404, "the request names a project (`X-Kneo-Project`) that does not exist, is archived, or in which the caller holds no grant: one answer for all three, so a caller never learns another project exists")
    promotion_cycle: Final = _code("promotion_cycle", "reconcile problem", None, "`promotion.require_approved_in` chains form a cycle")
    promotion_rejected: Final = _code("promotion_rejected", "reconcile problem", None, "an approver rejected the promotion")
    provider_auth_failed: Final = _code("provider_auth_failed", "ProviderError", 502, "the provider refused the key (401/403)")
    provider_bad_request: Final = _code("provider_bad_request", "ProviderError", 502, "the provider refused the request itself (400, 404, 413, 422): an unknown model, too long an input, a bad parameter")
    provider_bad_response: Final = _code("provider_bad_response", "ProviderError", 502, "the provider answered without a usable choice")
    provider_config_invalid: Final = _code("provider_config_invalid", "ProviderError", 502, "the model block lacks a setting or names one the provider cannot take (`model.base_url` for Azure OpenAI and llama-cpp, a `tool_choice` tool not offered)")
    provider_error: Final = _code("provider_error", "ProviderError", 502, "the model provider answered with an error")
    provider_rate_limited: Final = _code("provider_rate_limited", "ProviderError", 502, "the provider rate-limited the call (429), after retries")
    provider_sdk_missing: Final = _code("provider_sdk_missing", "ConfigError", 400, "the provider's SDK is not installed")
    provider_secret_missing: Final = _code("provider_secret_missing", "ProviderError", 502, "the provider's key variable is not set")
    provider_timeout: Final = _code("provider_timeout", "ProviderError", 502, "the provider did not answer within `model.timeout_seconds`, else `KNEO_SERV_PROVIDER_TIMEOUT_SECONDS` (120 s)")
    provider_unavailable: Final = _code("provider_unavailable", "ProviderError", 502, "the provider answered 5xx after the retries")
    provider_unreachable: Final = _code("provider_unreachable", "ProviderError", 502, "no network path to the provider's endpoint")
    remote_agent_failed: Final = _code("remote_agent_failed", "RemoteAgentError", 400, "a remote (A2A) agent failed, rejected or cancelled its task, asked for authentication, or could not be reached")
    request_already_resolved: Final = _code("request_already_resolved", "RequestAlreadyResolved", 409, "the human request (or promotion) was decided already")
    resource_locked: Final = _code("resource_locked", "ResourceLocked", 409, "another process is resuming the same task, or a request with this key is still running")
    restore_failed: Final = _code("restore_failed", "InvalidRequest", 400, "the restore could not complete")
    review_limit_reached: Final = _code("review_limit_reached", "HumanRejected", 400, "a step's output was rejected `max_reviews` times")
    rollback: Final = _code("rollback", "reconcile problem", None, "not an error: the diagnostic on a revision a rollback created, naming the revision it copies and who rolled back")
    rollback_target_invalid: Final = _code("rollback_target_invalid", "Conflict", 409, "only a revision that was in force (active, inactive or pruned) can be rolled back to")
    rollback_untrusted: Final = _code("rollback_untrusted", "Conflict", 409, "the revision no longer verifies against today's trust: its signing key was removed or expired, is no longer accepted in the environment, there are too few signatures, or the stored spec does not hash to its digest")
    run_interrupted: Final = _code("run_interrupted", "run error", None, "the process running the run stopped (a crash or a kill) before it finished")
    run_stopped: Final = _code("run_stopped", "KneoError", 400, "a workflow run in Python (`Workflow.run`) stopped without an answer (paused or failed)")
    run_timed_out: Final = _code("run_timed_out", "run error", None, "the run missed its run-level deadline (`timeout_seconds` of the run)")
    schema_too_new: Final = _code("schema_too_new", "NotReady", 503, "the database was migrated by a newer Kneo than this one", retry_after=RETRY_AFTER_SECONDS)
    service_error: Final = _code("service_error", "ServiceError", 400, "the service answered with an error the CLI passes on")
    service_mode_unavailable: Final = _code("service_mode_unavailable", "ServiceModeUnavailable", 400, "this command runs locally only, but a service was selected")
    service_unavailable: Final = _code("service_unavailable", "ServiceError", 400, "the CLI cannot reach the service at the selected URL")
    slack_signature_invalid: Final = _code("slack_signature_invalid", "SlackSignatureInvalid", 401, "a Slack interaction callback whose `X-Slack-Signature` does not match the app's signing secret, whose timestamp is more than 5 minutes away, or that was received before (a replay)")
    not_the_assignee: Final = _code("not_the_assignee", "Forbidden", 403, "the environment makes assignees binding and the caller is neither the request's assignee (a `user:`, a key, a member of its `group:`) nor one of its `assignments.override` entries")
    slack_call_failed: Final = _code("slack_call_failed", "ProviderError", 502, "Slack refused or did not answer a Web API call made for a click (`views.open` answers `expired_trigger_id` after 3 s); the clicker is told, nothing is decided")
    slack_user_unknown: Final = _code("slack_user_unknown", "Forbidden", 403, "the Slack user who clicked is in no `notifications.people` entry and Slack shows no confirmed e-mail address for them")
    source_error: Final = _code("source_error", "SourceError", 502, "the controller cannot read the Git source")
    source_not_a_repository: Final = _code("source_not_a_repository", "SourceError", 502, "`controller.repo` is not a Git repository")
    source_ref_not_found: Final = _code("source_ref_not_found", "SourceError", 502, "the branch or tag does not exist")
    source_unreachable: Final = _code("source_unreachable", "SourceError", 502, "the Git remote cannot be reached")
    source_unreadable: Final = _code("source_unreadable", "SourceError", 502, "a file in the repository cannot be read as a bundle or environment file")
    spec_invalid: Final = _code("spec_invalid", "reconcile problem", None, "the bundle's spec does not validate")
    spec_path_not_allowed: Final = _code("spec_path_not_allowed", "Forbidden", 403, "the service reads spec files only under its project root")
    stale_state: Final = _code("stale_state", "Conflict", 409, "another writer changed the run or registry row first (optimistic concurrency)")
    step_error: Final = _code("step_error", "run error", None, "a step raised an unexpected exception (its type is in `type`)")
    step_failed: Final = _code("step_failed", "StepFailure", 400, "a step failed (the message says why)")
    step_timeout: Final = _code("step_timeout", "StepFailure", 400, "a step ran past its `timeout_seconds`")
    token_audience_mismatch: Final = _code("token_audience_mismatch", "Unauthorized", 401, "the bearer JWT is for another API (its `aud` lacks `KNEO_SERV_OIDC_AUDIENCE`)")
    token_claims_invalid: Final = _code("token_claims_invalid", "Unauthorized", 401, "the bearer JWT lacks `exp` or `sub`, or a claim has the wrong type")
    token_expired: Final = _code("token_expired", "Unauthorized", 401, "the bearer JWT's `exp` is past, beyond the clock skew")
    token_issuer_mismatch: Final = _code("token_issuer_mismatch", "Unauthorized", 401, "another provider issued the bearer JWT")
    token_key_unknown: Final = _code("token_key_unknown", "Unauthorized", 401, "the issuer's JWKS does not list the key the JWT names (`kid`)")
    token_malformed: Final = _code("token_malformed", "Unauthorized", 401, "the bearer value is not a JWT, or uses a refused algorithm (`none`, HMAC)")
    token_not_yet_valid: Final = _code("token_not_yet_valid", "Unauthorized", 401, "the JWT's `nbf` or `iat` is in the future, beyond the skew")
    token_signature_invalid: Final = _code("token_signature_invalid", "Unauthorized", 401, "the JWT's signature does not verify with the issuer's key")
    too_many_requests: Final = _code("too_many_requests", "TooManyRequests", 429, "too many wrong keys from this client address", retryable=True)
    tool_arguments_invalid: Final = _code("tool_arguments_invalid", "ValidationFailed", 422, "the model called a tool with arguments its JSON Schema refuses")
    unauthorized: Final = _code("unauthorized", "Unauthorized", 401, "no API key, or one the service does not know (or a webhook with a bad signature)")
    unknown_predicate: Final = _code("unknown_predicate", "KneoError", 400, "an edge condition names a predicate that does not exist")
    unknown_provider: Final = _code("unknown_provider", "InvalidRequest", 400, "`model.provider` is not a known provider")
    unknown_query_parameters: Final = _code("unknown_query_parameters", "ValidationFailed", 422, "the query names a parameter the route does not take (`parameters` lists them, `allowed` what it takes): never ignored")
    unsupported_backend: Final = _code("unsupported_backend", "InvalidRequest", 400, "backup or restore of this database is not Kneo's job (PostgreSQL)")
    unsupported_media_type: Final = _code("unsupported_media_type", "response", 415, "the body is not `application/json`")
    upstream_changed: Final = _code("upstream_changed", "KneoError", 400, "the revision is no longer active upstream, so it is not promoted")
    upstream_environment_missing: Final = _code("upstream_environment_missing", "reconcile problem", None, "`require_approved_in` names an environment that does not exist")
    usage_error: Final = _code("usage_error", "UsageError", 400, "missing or contradictory arguments (exit 2)")
    validation_error: Final = _code("validation_error", "ValidationFailed", 422, "the body or query does not match the route's schema")
    would_overwrite: Final = _code("would_overwrite", "InvalidRequest", 400, "the restore target exists")
    # fmt: on


class KneoError(Exception):
    """Base of all user-facing errors: stable ``code``, ``http_status`` and ``exit_code``."""

    code: str = ErrorCode.kneo_error
    http_status: int = 400
    exit_code: int = 1
    #: transient (the code's row says): the same operation may succeed after ``retry_after``
    retryable: bool = False
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}
        row = ERRORS.get(self.code)
        if row is not None:
            self.retryable = row.retryable
            self.retry_after = row.retry_after

    def to_dict(self) -> dict[str, Any]:
        """The HTTP error envelope (and the CLI's ``--json`` error shape)."""
        return {"error": self.code, "message": self.message, **self.details}

    def __str__(self) -> str:
        return self.message


class InvalidRequest(KneoError):
    code = ErrorCode.invalid_request
    http_status = 400


class SpecError(InvalidRequest):
    """A spec or config file cannot be read: the message names file and line or field path."""

    code = ErrorCode.E_SCHEMA


class ConfigError(InvalidRequest):
    code = ErrorCode.config_error


class InvalidDecision(InvalidRequest):
    code = ErrorCode.invalid_decision


class Unauthorized(KneoError):
    code = ErrorCode.unauthorized
    http_status = 401


class Forbidden(KneoError):
    code = ErrorCode.forbidden
    http_status = 403


class BundleNotApproved(Forbidden):
    code = ErrorCode.bundle_not_approved


class AccessDenied(Forbidden):
    """A spec names a secret, process, destination or module the project does not allow
    (its code says which: ``E_SECRET_UNDECLARED``, ``E_DESTINATION_NOT_ALLOWED``, ...)."""

    code = ErrorCode.access_denied


class NotFound(KneoError):
    code = ErrorCode.not_found
    http_status = 404


class Conflict(KneoError):
    code = ErrorCode.conflict
    http_status = 409


class IdempotencyConflict(Conflict):
    code = ErrorCode.idempotency_key_conflict


class ResourceLocked(Conflict):
    code = ErrorCode.resource_locked


class RequestAlreadyResolved(Conflict):
    code = ErrorCode.request_already_resolved


class IllegalTransition(Conflict):
    code = ErrorCode.illegal_transition


class HumanTaskExpired(Conflict):
    """A decision that came after its request's deadline (``on_timeout`` other than
    ``escalate``): too late, which a client must tell from a task that never existed."""

    code = ErrorCode.human_task_expired


class PayloadTooLarge(KneoError):
    code = ErrorCode.payload_too_large
    http_status = 413


class ValidationFailed(KneoError):
    code = ErrorCode.validation_error
    http_status = 422


class TooManyRequests(KneoError):
    """Too many failed attempts from this client: wait ``retry_after`` seconds."""

    code = ErrorCode.too_many_requests
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after  # also in the envelope: when this client may try again


class ProjectLimitReached(TooManyRequests):
    """The project is at one of its ``limits:`` (``limit`` names it): a new run may start
    after ``retry_after`` seconds (a daily budget: at the next UTC midnight)."""

    code = ErrorCode.project_limit_reached


class BundleError(KneoError):
    """Bundle verification or signing failed; ``code`` says exactly why (``bundle_*``)."""

    code = ErrorCode.bundle_invalid
    http_status = 400


class ProviderError(KneoError):
    code = ErrorCode.provider_error
    http_status = 502


class NotReady(KneoError):
    code = ErrorCode.not_ready
    http_status = 503


class DatabaseUnavailable(NotReady):
    """The database could not be reached or dropped the connection: transient. The service
    answers 503 with ``Retry-After``; workers retry the run with backoff."""

    code = ErrorCode.database_unavailable
