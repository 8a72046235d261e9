"""Human requests and decisions: the data a pause is made of.

A pause is data, not a blocked thread. When a unit needs a person, the engine builds a
:class:`HumanRequest` (kind, prompt, assignee, options or input schema, context, expiry) and
stops; the platform persists it inside a continuation. A person answers with a
:class:`HumanDecision`, which :func:`validate_decision` checks against the request before
anything changes. Decisions are stored in the execution state under the request's stable
``wait_key``, so a replayed run finds the answer instead of asking again.

Kinds, all on the same shape: ``approval`` (a ``kind: human`` step; ``route`` when its
options are graph nodes), ``confirmation`` / ``input`` / ``review`` / ``iteration`` (a
step's ``human_review`` gates; ``iteration`` reviews each visit of a graph node),
``tool_approval`` (a tool call the agent wants to make), ``tool_input`` (argument values a
person provides for a call), ``external_tool`` (a call the caller runs), ``question`` (the
agent's built-in ``ask_question`` tool), ``error`` (``on_error: pause``) and ``budget`` (a
run at a limit of its environment's budget, :mod:`kneo.engine.budgets`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from kneo.clock import utc_iso
from kneo.documents import DocumentError, parse_json
from kneo.errors import ErrorCode, InvalidDecision, KneoError, ValidationFailed
from kneo.redaction import redact_mapping

DecisionKind = Literal["approved", "rejected", "edited", "selected", "provided"]
DECISIONS: tuple[str, ...] = ("approved", "rejected", "edited", "selected", "provided")


@dataclass(frozen=True)
class HumanRequest:
    """One pending question to a person. ``wait_key`` names the wait inside the run."""

    request_id: str
    kind: str
    wait_key: str
    step_id: str
    prompt: str
    assignee: str | None = None
    options: tuple[str, ...] = ()
    input_schema: Mapping[str, Any] | None = None
    decisions: tuple[str, ...] = ("approved", "rejected", "edited")
    context: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    expires_at: str | None = None
    timeout_seconds: int | None = None
    on_timeout: str = "fail"
    #: who the request passes to when ``on_timeout: escalate`` fires (``None``: it stays)
    escalate_to: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # shallow: the containers are copied below
        data["options"] = list(self.options)
        data["decisions"] = list(self.decisions)
        data["input_schema"] = dict(self.input_schema) if self.input_schema else None
        data["context"] = dict(self.context)
        data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HumanRequest:
        """From a full dict or a stored record (:func:`compact_request`)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in complete_request(data).items() if k in known}
        values["options"] = tuple(values.get("options") or ())
        values["decisions"] = tuple(values.get("decisions") or ("approved", "rejected", "edited"))
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    """A decision as a caller gives it: which request, what decision, its content. The one
    value every resume takes (the platform, its CLI and HTTP clients, the console), so the
    four fields are named once; :class:`HumanDecision` is what is recorded from it."""

    request_id: str
    decision: str
    content: str | None = None
    selected_option: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "decision": self.decision,
            "content": self.content,
            "selected_option": self.selected_option,
        }


@dataclass(frozen=True)
class HumanDecision:
    """A person's answer to one request. ``content`` is never written to audit events."""

    request_id: str
    decision: str
    content: str | None = None
    selected_option: str | None = None
    actor: str | None = None
    decided_at: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # every field is a string but the metadata, copied below
        data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HumanDecision:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def accepted_decisions(
    *, declared: Sequence[str] | None, options: Sequence[str], input_schema: object
) -> tuple[str, ...]:
    """Decisions a human component accepts: declared ones, else derived from its shape."""
    if declared:
        return tuple(dict.fromkeys(declared))
    accepted = ["approved", "rejected", "edited"]
    if options:
        accepted.append("selected")
    if input_schema:
        accepted.append("provided")
    return tuple(accepted)


def build_request(
    *,
    request_id: str,
    kind: str,
    wait_key: str,
    step_id: str,
    prompt: str,
    now: datetime,
    assignee: str | None = None,
    options: Sequence[str] = (),
    input_schema: Mapping[str, Any] | None = None,
    decisions: Sequence[str] | None = None,
    context: Mapping[str, Any] | None = None,
    timeout_seconds: int | None = None,
    on_timeout: str = "fail",
    escalate_to: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> HumanRequest:
    """A request with ``created_at`` now and ``expires_at`` from ``timeout_seconds``."""
    expires = now + timedelta(seconds=timeout_seconds) if timeout_seconds else None
    return HumanRequest(
        request_id=request_id,
        kind=kind,
        wait_key=wait_key,
        step_id=step_id,
        prompt=prompt,
        assignee=assignee,
        options=tuple(options),
        input_schema=dict(input_schema) if input_schema else None,
        decisions=accepted_decisions(
            declared=decisions, options=options, input_schema=input_schema
        ),
        context=dict(context or {}),
        created_at=utc_iso(now),
        expires_at=utc_iso(expires),
        timeout_seconds=timeout_seconds,
        on_timeout=on_timeout,
        escalate_to=escalate_to,
        metadata=dict(metadata or {}),
    )


# --------------------------------------------------------------------------- stored records

#: Decisions a kind accepts when its builder passes its own fixed list (approval and route
#: derive theirs from options and input_schema: :func:`accepted_decisions`).
_KIND_DECISIONS: dict[str, tuple[str, ...]] = {
    "confirmation": ("approved", "rejected"),
    "input": ("provided",),
    "review": ("approved", "edited", "rejected"),
    "question": ("provided",),
    "tool_approval": ("approved", "rejected", "edited"),
    "iteration": ("approved", "edited", "rejected"),
    "tool_input": ("provided",),
    "external_tool": ("provided", "rejected"),
    "error": ("selected",),
    "budget": ("approved", "provided", "rejected"),
}
_KIND_OPTIONS: dict[str, tuple[str, ...]] = {"error": ("retry", "skip", "fail")}
_STEP_IN_CONTEXT = (("context", "step_id", "step_id"),)
#: ``(section, key, field)``: a copy of a request field that a kind carries in a section.
_COPIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "approval": _STEP_IN_CONTEXT,
    "route": _STEP_IN_CONTEXT,
    "confirmation": _STEP_IN_CONTEXT,
    "input": _STEP_IN_CONTEXT,
    "review": _STEP_IN_CONTEXT,
    "iteration": _STEP_IN_CONTEXT,
    "question": (("context", "wait_name", "wait_key"), ("metadata", "wait_name", "wait_key")),
}
#: Fields whose absence from a stored record means this value.
_DEFAULTS: dict[str, Any] = {
    "assignee": None,
    "input_schema": None,
    "created_at": None,
    "timeout_seconds": None,
    "on_timeout": "fail",
    "escalate_to": None,
}
#: Shown only in views (``deadline_epoch`` is computed from ``expires_at``).
_VIEW_ONLY = ("deadline_epoch",)
_FIELDS = frozenset(HumanRequest.__dataclass_fields__)


def _default_decisions(kind: object, options: Sequence[str], input_schema: object) -> list[str]:
    fixed = _KIND_DECISIONS.get(str(kind))
    if fixed is not None:
        return list(fixed)
    return list(accepted_decisions(declared=None, options=options, input_schema=input_schema))


def _expiry(created_at: object, timeout_seconds: object) -> str | None:
    if not created_at or not isinstance(timeout_seconds, int) or not timeout_seconds:
        return None
    try:
        created = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return utc_iso(created + timedelta(seconds=timeout_seconds))


def complete_request(record: Mapping[str, Any]) -> dict[str, Any]:
    """The full request dict (every :class:`HumanRequest` field) of a stored record.

    Fills what :func:`compact_request` left out: defaults, ``wait_key`` (the step id),
    ``decisions`` and ``options`` implied by the kind, ``expires_at`` (``created_at`` +
    ``timeout_seconds``), copies of ``step_id``/``wait_key`` inside ``context`` and
    ``metadata``, and ``original_expires_at`` of an escalated request. A dict with every
    field (each record written before compaction existed) is taken as it is, so old rows
    read unchanged.
    """
    out = dict(record)
    if out.keys() >= _FIELDS:  # a full dict: nothing was left out
        if out.get("escalated_at") and "original_expires_at" not in out:
            out["original_expires_at"] = out["expires_at"]
        return out
    kind = out.get("kind")
    for key, value in _DEFAULTS.items():
        out.setdefault(key, value)
    if "wait_key" not in out and "step_id" in out:
        out["wait_key"] = out["step_id"]
    if "options" not in out:
        out["options"] = list(_KIND_OPTIONS.get(str(kind), ()))
    if "decisions" not in out:
        out["decisions"] = _default_decisions(kind, out["options"], out["input_schema"])
    if "expires_at" not in out:
        out["expires_at"] = _expiry(out["created_at"], out["timeout_seconds"])
    out["context"] = dict(out.get("context") or {})
    out["metadata"] = dict(out.get("metadata") or {})
    for section, key, source in _COPIES.get(str(kind), ()):
        if key not in out[section] and out.get(source) is not None:
            out[section][key] = out[source]
    if out.get("escalated_at") and "original_expires_at" not in out:
        out["original_expires_at"] = out["expires_at"]
    return out


def compact_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The record to store for a request: only what :func:`complete_request` cannot derive.

    Empty and default fields, ``decisions``/``options`` the kind implies, an ``expires_at``
    that is ``created_at`` + ``timeout_seconds``, ``wait_key`` equal to the step id and
    in-context copies of ids are left out; ``deadline_epoch`` (a view field) is never
    stored. Anything the reader could not restore exactly is kept as it is.
    """
    full = complete_request(request)
    out = {k: v for k, v in full.items() if k not in _VIEW_ONLY}
    kind = out.get("kind")
    for section, key, source in _COPIES.get(str(kind), ()):
        if key in out[section] and out[section][key] == out.get(source):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    for key in ("context", "metadata"):
        if not out[key]:
            del out[key]
    if list(out["decisions"]) == _default_decisions(kind, out["options"], out["input_schema"]):
        del out["decisions"]
    if list(out["options"]) == list(_KIND_OPTIONS.get(str(kind), ())):
        del out["options"]
    if out["expires_at"] == _expiry(out["created_at"], out["timeout_seconds"]):
        del out["expires_at"]
    if out.get("original_expires_at") == full["expires_at"] and out.get("escalated_at"):
        del out["original_expires_at"]
    if out.get("wait_key") == out.get("step_id") and "step_id" in out:
        del out["wait_key"]
    for key, value in _DEFAULTS.items():
        if key in out and out[key] == value:
            del out[key]
    if complete_request(out) != {k: v for k, v in full.items() if k not in _VIEW_ONLY}:
        return {k: v for k, v in full.items() if k not in _VIEW_ONLY}  # a shape kept as is
    return out


def validate_decision(
    request: HumanRequest, decision: HumanDecision, *, max_content_chars: int | None = None
) -> HumanDecision:
    """Check a decision against what the request accepts; raise before anything changes.

    ``selected`` needs one of the request's options; ``edited`` and ``provided`` need
    content, which must match ``input_schema`` (as JSON) when the request declares one.
    """
    name = decision.decision
    if name not in DECISIONS:
        raise InvalidDecision(
            f"unknown decision {name!r}; use one of {', '.join(DECISIONS)}",
            request_id=request.request_id,
        )
    if name not in request.decisions:
        raise InvalidDecision(
            f"request {request.request_id} does not accept {name!r}; "
            f"it accepts {', '.join(request.decisions)}",
            request_id=request.request_id,
            accepted=list(request.decisions),
        )
    if (
        max_content_chars is not None
        and decision.content
        and len(decision.content) > max_content_chars
    ):
        raise InvalidDecision(
            f"decision content is longer than {max_content_chars} characters",
            request_id=request.request_id,
        )
    if name == "selected":
        if not decision.selected_option:
            raise InvalidDecision(
                "'selected' needs a selected_option", request_id=request.request_id
            )
        if decision.selected_option not in request.options:
            raise InvalidDecision(
                f"option {decision.selected_option!r} is not one of "
                f"{', '.join(request.options) or '(no options)'}",
                request_id=request.request_id,
            )
    elif decision.selected_option is not None:
        raise InvalidDecision(
            f"selected_option only goes with 'selected', not {name!r}",
            request_id=request.request_id,
        )
    if name in ("edited", "provided"):
        if decision.content is None or decision.content == "":
            raise InvalidDecision(f"{name!r} needs content", request_id=request.request_id)
        if request.input_schema:
            _check_schema(request, decision.content)
    return decision


def _check_schema(request: HumanRequest, content: str) -> None:
    from jsonschema import Draft202012Validator

    schema = dict(request.input_schema or {})
    try:
        value: Any = parse_json(content, source="content")
    except DocumentError:
        if schema.get("type") not in (None, "string"):
            raise ValidationFailed(
                "content must be JSON matching the request's input_schema",
                code=ErrorCode.invalid_human_input,
                request_id=request.request_id,
                path="<content>",
            ) from None
        value = content
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        parts = [str(p) for p in first.path]
        if first.validator == "required" and isinstance(first.instance, dict):
            # Point at the missing field itself, not at the object that lacks it.
            missing = [n for n in first.validator_value if n not in first.instance]
            parts += missing[:1]
        where = ".".join(parts) or "<content>"
        raise ValidationFailed(
            f"content invalid at {where}: {first.message}",
            code=ErrorCode.invalid_human_input,
            request_id=request.request_id,
            path=where,
        )


_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
}


def input_fields_schema(fields: Sequence[Any]) -> dict[str, Any]:
    """The JSON Schema of ``human_review.input_schema`` fields (name, type, required,
    description, enum): an object without extra properties, so a typo is refused."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for item in fields:
        data = item.model_dump() if hasattr(item, "model_dump") else dict(item)
        prop: dict[str, Any] = {"type": _JSON_TYPES.get(data.get("type") or "string", "string")}
        if data.get("description"):
            prop["description"] = data["description"]
        if data.get("enum"):
            prop["enum"] = list(data["enum"])
        properties[data["name"]] = prop
        if data.get("required", True):
            required.append(data["name"])
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


QUESTION_TOOL = "ask_question"


def question_wait_key(call_index: int, question: str, *, unit_key: str | None = None) -> str:
    """The stable name of an ``ask_question`` wait: ``ask_question:<index>:<sha1[:8]>``.

    The index keeps two identical questions apart; the hash keeps the name identical across
    resumes and replays as long as the agent asks the same thing at the same point. A
    concurrent branch passes its ``unit_key`` and counts its own calls only
    (``ask_question:branch:<id>:<index>:<sha1[:8]>``): branches run at the same time, so a
    run-wide index would depend on which finishes first, and two branches asking the same
    question would share one answer.
    """
    digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:8]
    if unit_key is not None:
        return f"{QUESTION_TOOL}:{unit_key}:{call_index}:{digest}"
    return f"{QUESTION_TOOL}:{call_index}:{digest}"


# --------------------------------------------------------------------------- SDK shapes


@dataclass(frozen=True)
class HumanInterventionRequest:
    """What an inline resolver receives, and ``exc.request`` at a pause (SDK guide): the
    step, the prompt, the step's input and ``messages``, the earlier steps' outputs in order."""

    step_name: str
    prompt: str
    input_text: str
    messages: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    request: HumanRequest | None = None

    @property
    def config(self) -> Mapping[str, Any]:
        """What the SDK guide calls the active RunConfig: the workflow's metadata, the same
        mapping a callable prompt receives as ``config``."""
        return self.metadata


#: An inline resolver answers a human step in-process; ``None`` means "pause instead".
HumanResolver = Callable[[HumanInterventionRequest], "str | None"]


class HumanInterventionRequiredError(KneoError):
    """Raised by the SDK when a human step has no inline answer: carry it to your UI."""

    code = ErrorCode.human_intervention_required
    http_status = 409

    def __init__(
        self,
        step_name: str,
        prompt: str,
        request: HumanInterventionRequest,
        *,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"human step {step_name!r} needs a decision: {prompt}", step_name=step_name
        )
        self.step_name = step_name
        self.prompt = prompt
        self.request = request
        #: The execution state at the pause: pass it back to continue without redoing work.
        self.state = dict(state or {})


#: Request fields shown to operators (context and schema included; content never exists here).
REQUEST_FIELDS = (
    "request_id",
    "kind",
    "prompt",
    "assignee",
    "options",
    "input_schema",
    "decisions",
    "step_id",
    "wait_key",
    "context",
    "created_at",
    "expires_at",
    "timeout_seconds",
    "on_timeout",
    "escalate_to",
    "status",
    "escalated_at",
    "escalated_from",
    "original_expires_at",
    "metadata",
    "decision",
    "decided_by",
    "decided_at",
)


def public_request(request: Mapping[str, Any], *, show_personal: bool = False) -> dict[str, Any]:
    """A request as operators see it (redacted), with ``deadline_epoch``."""
    return redact_mapping(request_view(request), show_personal=show_personal)


def request_view(request: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`public_request` before redaction (for a caller that redacts several at once)."""
    request = complete_request(request)  # stored records leave out defaults and derivables
    view = {k: request.get(k) for k in REQUEST_FIELDS if k in request}
    expires = request.get("expires_at")
    if expires:
        with contextlib.suppress(ValueError):
            view["deadline_epoch"] = int(
                datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
            )
    return view
