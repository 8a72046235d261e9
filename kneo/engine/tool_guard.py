"""The tool guard: the spec's tool policy enforced at call time, then the handler, isolated.

Order for every call (the handler is reached only if all pass):

1. selection — the tool is in the agent's selected tools, else ``denied``;
2. registration — the tool is registered, else ``invalid`` (the model named a tool that
   does not exist);
3. policy (``policies.tool``) — ``deny`` excludes; ``allow`` (when set) must include it;
   each claimed capability needs its permission (``network``, ``filesystem`` read/write,
   ``shell``); a ``network`` tool called with a top-level ``url``/``domain`` argument must
   target a host in ``allowed_domains`` when that list is non-empty — else ``denied``.
   With no ``policies.tool`` block, selected registered tools are allowed (the linter warns);
4. arguments — validated against the tool's JSON Schema, else ``invalid`` naming the field.

Execution by runtime mode:

* ``native`` — in-process, in a daemon worker thread joined for ``timeout_seconds``. Python
  cannot kill a thread: on timeout the outcome is ``timeout`` but the handler keeps running
  in the background until it returns (its result is discarded). Use ``bridge`` for tools
  that may hang or must be stopped.
* ``bridge`` (``RuntimeMode.isolated_tools``) — a child ``python -c`` process imports the
  handler by its ``module:function`` ref, gets the arguments as JSON on stdin and is killed
  at ``timeout_seconds``. A handler without an importable ref (a closure, a lambda, a
  ``__main__`` function) runs in-process as in ``native``, and the outcome's ``reason``
  says so. An MCP tool runs in its server's process under either mode: its handler is the
  run's MCP session, called in-process.

Handler exceptions become ``error`` outcomes with a one-line redacted message; the
approval of tools with ``requires_approval`` is the engine's job, not the guard's.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from kneo.engine.providers.base import ToolCall
from kneo.errors import ValidationFailed
from kneo.kernel import Operator, ref_of, start_process
from kneo.kernel.code import LoadedCode
from kneo.redaction import REDACTED, redact, redact_text
from kneo.runtimes import RuntimeMode
from kneo.spec.models import ToolPolicy
from kneo.tools import ToolDefinition, ToolRegistry

OutcomeStatus = Literal["ok", "denied", "invalid", "error", "timeout"]

#: Longest handler error text kept in an outcome.
_MAX_ERROR_CHARS = 500
#: the one program the bridge starts: this interpreter, with the child script below
_BRIDGE = Operator.of(programs=(sys.executable,))

# Runs in the bridge child: read {"ref", "arguments", "code", "files", "sys_path"} from stdin,
# make the run's pinned project code importable from the files sent (by digest, verified; the
# parent's sys.path, which holds no project root, serves a handler the caller registered
# in-process and installed code), resolve the
# handler through the trust kernel (as the parent would), call it with stdout pointed at
# stderr (so prints cannot corrupt the reply), and write one JSON reply
# {"ok", "content"|"error"} to the real stdout.
_CHILD = r"""
import base64, json, sys
real_stdout = sys.stdout
sys.stdout = sys.stderr
try:
    payload = json.loads(sys.stdin.read())
    sys.path[:0] = [p for p in payload["sys_path"] if p not in sys.path]
    from kneo.kernel import resolve_callable
    from kneo.kernel.code import CodeSet, load_code, remember
    remember({k: base64.b64decode(v) for k, v in payload["files"].items()})
    code = CodeSet.from_manifest(payload["code"])
    handler = resolve_callable(payload["ref"], code=load_code(code) if code else None,
                               path="implementation")
    result = handler(payload["arguments"])
    reply = {"ok": True, "content": result if isinstance(result, str) else
             ("" if result is None else json.dumps(result, default=str)
              if isinstance(result, (dict, list)) else str(result))}
except BaseException as exc:
    reply = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
real_stdout.write(json.dumps(reply))
real_stdout.flush()
"""


@dataclass(frozen=True)
class ToolOutcome:
    """What became of one tool call. ``content`` is what the model sees as the tool result."""

    status: OutcomeStatus
    content: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "content": self.content, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolOutcome:
        return cls(status=data["status"], content=data["content"], reason=data.get("reason"))


def _denied(reason: str) -> ToolOutcome:
    return ToolOutcome("denied", f"Tool call denied by policy: {reason}", reason)


def _invalid(reason: str) -> ToolOutcome:
    return ToolOutcome("invalid", f"Tool call rejected: {reason}", reason)


class ToolGuard:
    """Checks and runs one agent's tool calls under its selection, policy and runtime."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        allowed: Sequence[str],
        policy: ToolPolicy | None,
        runtime: RuntimeMode,
        timeout_seconds: float | None = None,
        code: LoadedCode | None = None,
    ) -> None:
        self._registry = registry
        self._code = code
        self._allowed = frozenset(allowed)
        self._policy = policy
        self._runtime = runtime
        self._timeout = timeout_seconds

    def definition(self, name: str) -> ToolDefinition:
        """The definition the guard checks ``name`` against (registered: see :meth:`check`)."""
        return self._registry.get(name)

    def mcp_server(self, name: str) -> str | None:
        """The ``mcp.imports`` server a registered tool is called on (``None``: local)."""
        return self._registry.get(name).mcp_server if name in self._registry else None

    def parameters(self, name: str) -> Mapping[str, Any] | None:
        """The JSON Schema of a registered tool's arguments (``None``: not registered)."""
        return self._registry.get(name).parameters if name in self._registry else None

    def check(self, call: ToolCall, *, arguments: bool = True) -> ToolOutcome | None:
        """``None`` when the call may run; otherwise the ``denied``/``invalid`` outcome.
        ``arguments=False`` stops before the schema (a person completes them first)."""
        if call.name not in self._allowed:
            return _denied(f"tool '{call.name}' is not among this agent's tools")
        if call.name not in self._registry:
            return _invalid(f"tool '{call.name}' is not registered")
        definition = self._registry.get(call.name)
        if self._policy is not None:
            refusal = _policy_refusal(definition, self._policy, call.arguments)
            if refusal is not None:
                return _denied(refusal)
        if not arguments:
            return None
        try:
            self._registry.validate_arguments(call.name, call.arguments)
        except ValidationFailed as exc:
            return _invalid(exc.message)
        return None

    def execute(self, call: ToolCall) -> ToolOutcome:
        """Check, then run the handler (never reached when the check fails)."""
        refusal = self.check(call)
        if refusal is not None:
            return refusal
        definition = self._registry.get(call.name)
        handler = self._registry.handler(call.name)
        if self._runtime.isolated_tools and definition.mcp_server is None:
            ref = definition.implementation or ref_of(handler)
            if ref is not None:
                return self._run_in_child(ref, call)
            outcome = self._run_in_thread(handler, call)
            note = (
                f"bridge runtime: tool '{call.name}' has no importable module:function ref, "
                "so it ran in-process"
            )
            reason = note if outcome.reason is None else f"{outcome.reason}; {note}"
            return ToolOutcome(outcome.status, outcome.content, reason)
        return self._run_in_thread(handler, call)

    # ------------------------------------------------------------------ runners

    def _run_in_thread(self, handler: Any, call: ToolCall) -> ToolOutcome:
        box: dict[str, ToolOutcome] = {}

        def target() -> None:
            try:
                box["outcome"] = ToolOutcome("ok", _as_text(handler(dict(call.arguments))))
            except Exception as exc:
                box["outcome"] = _error(call.name, f"{type(exc).__name__}: {exc}")

        if self._timeout is None:
            target()
            return box["outcome"]
        worker = threading.Thread(target=target, name=f"kneo-tool-{call.name}", daemon=True)
        worker.start()
        worker.join(self._timeout)
        if worker.is_alive():
            return _timeout(call.name, self._timeout, "the handler thread was left to finish")
        return box["outcome"]

    def _run_in_child(self, ref: str, call: ToolCall) -> ToolOutcome:
        code = self._code.code if self._code is not None else None
        held = self._code.files() if self._code is not None else {}
        files = {sha: base64.b64encode(data).decode() for sha, data in held.items()}
        payload = json.dumps(
            {
                "ref": ref,
                "arguments": dict(call.arguments),
                "code": code.manifest() if code is not None else [],
                "files": files,
                "sys_path": list(sys.path),
            },
            default=str,
        )
        process = start_process(
            _BRIDGE,
            [sys.executable, "-c", _CHILD],
            path=f"tool {call.name!r}",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        try:
            stdout, stderr = process.communicate(payload, timeout=self._timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            assert self._timeout is not None
            return _timeout(call.name, self._timeout, "the tool process was killed")
        try:
            reply = json.loads(stdout)
        except json.JSONDecodeError:
            last = (stderr.strip().splitlines() or [f"exit code {process.returncode}"])[-1]
            return _error(call.name, f"tool process failed: {last}")
        if not reply.get("ok"):
            return _error(call.name, str(reply.get("error", "unknown error")))
        return ToolOutcome("ok", str(reply.get("content", "")))


# ---------------------------------------------------------------------- policy


def _policy_refusal(
    definition: ToolDefinition, policy: ToolPolicy, arguments: Mapping[str, Any]
) -> str | None:
    """Why ``policy`` forbids this call, or ``None``."""
    name = definition.name
    if name in policy.deny:
        return f"tool '{name}' is in policies.tool.deny"
    if policy.allow is not None and name not in policy.allow:
        return f"tool '{name}' is not in policies.tool.allow"
    caps = definition.capabilities
    if "network" in caps and not policy.network:
        return f"tool '{name}' needs network access and policies.tool.network is false"
    if "filesystem_write" in caps and not policy.filesystem_write:
        return f"tool '{name}' writes files and policies.tool.filesystem does not allow write"
    if "filesystem_read" in caps and not policy.filesystem_read:
        return f"tool '{name}' reads files and policies.tool.filesystem does not allow read"
    if "shell" in caps and not policy.shell:
        return f"tool '{name}' runs shell commands and policies.tool.shell is false"
    if "network" in caps and policy.allowed_domains:
        for host in _target_hosts(arguments):
            if host is None:
                return f"tool '{name}' was given a url without a host"
            if not host_allowed(host, policy.allowed_domains):
                return f"host '{host}' is not in policies.tool.allowed_domains"
    return None


def _target_hosts(arguments: Mapping[str, Any]) -> list[str | None]:
    hosts: list[str | None] = []
    url = arguments.get("url")
    if isinstance(url, str):
        hosts.append(urlsplit(url if "//" in url else f"//{url}").hostname)
    domain = arguments.get("domain")
    if isinstance(domain, str):
        hosts.append(domain.strip().lower().rstrip(".") or None)
    return hosts


def host_allowed(host: str, allowed_domains: Sequence[str]) -> bool:
    """``host`` equals an allowed domain or is a subdomain of one (``*.`` prefix optional)."""
    host = host.lower().rstrip(".")
    for entry in allowed_domains:
        domain = entry.lower().strip().removeprefix("*.").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


# ---------------------------------------------------------------------- helpers


def _as_text(result: object) -> str:
    if isinstance(result, str):
        return result
    if result is None:
        return ""
    if isinstance(result, dict | list):
        return json.dumps(result, default=str)
    return str(result)


def _error(tool: str, message: str) -> ToolOutcome:
    line = " ".join(redact_text(message).split())[:_MAX_ERROR_CHARS]
    return ToolOutcome("error", f"Tool '{tool}' failed: {line}", line)


def _timeout(tool: str, seconds: float, what: str) -> ToolOutcome:
    reason = f"timed out after {seconds:g}s; {what}"
    return ToolOutcome("timeout", f"Tool '{tool}' timed out after {seconds:g}s.", reason)


def _size(value: object) -> int:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return len(text.encode("utf-8"))


def describe_for_trace(
    call: ToolCall,
    outcome: ToolOutcome | None = None,
    *,
    record_arguments: bool = False,
    record_results: bool = False,
    mcp_server: str | None = None,
) -> dict[str, Any]:
    """The trace payload of a tool call: names, ids, status and sizes by default, and the
    MCP server a remote tool is called on (its span is then a call out of the process).

    Arguments and results appear only when the flags are on (``observability.record_tool_*``
    or ``KNEO_SERV_OTEL_RECORD_*``), and even then pass through :func:`redact`.
    """
    payload: dict[str, Any] = {
        "tool_name": call.name,
        "tool_call_id": call.id,
        "arguments_bytes": _size(call.arguments),
        "arguments": redact(dict(call.arguments)) if record_arguments else REDACTED,
    }
    if mcp_server:
        payload["mcp_server"] = mcp_server
    if outcome is not None:
        payload.update(
            status=outcome.status,
            reason=redact_text(outcome.reason) if outcome.reason else None,
            result_bytes=_size(outcome.content),
            result=redact_text(outcome.content) if record_results else REDACTED,
        )
    return payload


__all__ = ["OutcomeStatus", "ToolGuard", "ToolOutcome", "describe_for_trace", "host_allowed"]
