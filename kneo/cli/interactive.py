"""Answering a run's pauses in the terminal: ``kneo run --interactive`` and
``kneo human resume --interactive``.

Nothing here changes how a pause works: the run pauses durably as always (a continuation in
the store), and each answer goes through the same ``resume`` as ``kneo human resume`` or
``POST /v1/human-tasks/{id}/resume`` — validated, locked, audited. The terminal is only
where the answer comes from. Stop answering (end of input, Ctrl-C) and the run simply stays
paused, resumable from anywhere.

Every kind of request is asked the same way: pick one of the decisions it accepts, then
give what that decision needs — a comment, edited text, an option, or typed input field by
field from the request's JSON Schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from kneo.cli.output import console as make_console
from kneo.cli.platform_client import PlatformClient
from kneo.documents import DocumentError, parse_json
from kneo.engine.human import Decision
from kneo.errors import ErrorCode, KneoError

#: The word a person types for each decision.
VERBS = {
    "approved": "approve",
    "rejected": "reject",
    "edited": "edit",
    "selected": "select",
    "provided": "provide",
}
#: Errors of an answer the person can fix by answering again.
_ASK_AGAIN = frozenset({"invalid_decision", "invalid_human_input", "validation_error"})


class Stopped(Exception):
    """The person stopped answering (end of input or Ctrl-C): the run stays paused."""


class Terminal:
    """Questions and notes on stderr, answers from stdin (stdout keeps the command's result)."""

    def __init__(self, console: Any | None = None) -> None:
        self.out = console or make_console(stderr=True)

    def say(self, text: str, style: str | None = None) -> None:
        self.out.print(text, style=style, markup=False, highlight=False)

    def ask(
        self,
        question: str,
        *,
        choices: list[str] | None = None,
        default: str = "",
        allow_empty: bool = False,
    ) -> str:
        """One line of input (``choices``: one of them, or empty when ``allow_empty``;
        asked again until it is)."""
        hint = f" [{'/'.join(choices)}]" if choices else ""
        shown = f" ({default})" if default else ""
        while True:
            try:
                line = self.out.input(f"{question}{hint}{shown}: ", markup=False)
            except (EOFError, KeyboardInterrupt):
                raise Stopped from None
            answer = line.strip() or default
            if choices is None or answer in choices or (allow_empty and not answer):
                return answer
            self.say(f"  please type one of: {', '.join(choices)}")


def describe(request: Mapping[str, Any], term: Terminal) -> None:
    """What a decider needs to see: the prompt, and the context that goes with the kind."""
    term.say("")
    term.say(f"paused: {request.get('kind')} request {request.get('request_id')}", "bold")
    term.say(f"  {request.get('prompt')}")
    context = request.get("context") or {}
    for key in ("question", "input_preview", "output_preview", "tool_name", "error"):
        if context.get(key):
            term.say(f"  {key}: {_text(context[key])}")
    if context.get("arguments") is not None:
        term.say(f"  arguments: {_text(context['arguments'])}")


def _text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 500 else text[:499] + "…"


def ask_answer(request: Mapping[str, Any], term: Terminal) -> dict[str, Any]:
    """The decision, content and selected option for ``request``, asked in the terminal."""
    decisions = [d for d in request.get("decisions") or [] if d in VERBS]
    if not decisions:
        raise KneoError(
            f"request {request.get('request_id')} accepts no decision",
            code=ErrorCode.invalid_decision,
        )
    if len(decisions) == 1:
        decision = decisions[0]
    else:
        verbs = [VERBS[d] for d in decisions]
        chosen = term.ask("decision", choices=verbs, default=verbs[0])
        decision = decisions[verbs.index(chosen)]
    content: str | None = None
    selected: str | None = None
    schema = request.get("input_schema")
    if decision == "selected":
        selected = term.ask("option", choices=list(request.get("options") or []))
    elif decision in ("edited", "provided"):
        if _is_object_schema(schema):
            content = json.dumps(ask_fields(schema, term), sort_keys=True)
        else:
            label = {"question": "answer", "external_tool": "result"}.get(
                str(request.get("kind")), "text"
            )
            content = _required_text(term, "edited text" if decision == "edited" else label)
    elif decision == "rejected":
        content = term.ask("comment (optional)", allow_empty=True) or None
    return {"decision": decision, "content": content, "selected_option": selected}


def _required_text(term: Terminal, label: str) -> str:
    while True:
        text = term.ask(label)
        if text:
            return text
        term.say("  an answer is required")


def _is_object_schema(schema: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping)


def ask_fields(schema: Mapping[str, Any], term: Terminal) -> dict[str, Any]:
    """One value per property of an object schema, typed as the schema says (a required one
    is asked again until given; an optional one may be left empty)."""
    required = set(schema.get("required") or [])
    values: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = str(prop.get("type") or "string")
        enum = [str(v) for v in prop.get("enum") or []] or None
        label = name + (f" ({prop['description']})" if prop.get("description") else "")
        label += f" [{kind}{'' if name in required else ', optional'}]"
        while True:
            raw = term.ask(label, choices=enum, allow_empty=True)
            if not raw:
                if name in required:
                    term.say(f"  {name} is required")
                    continue
                break
            try:
                values[name] = _typed(raw, kind)
                break
            except ValueError:
                term.say(f"  {name} must be a {kind}")
    return values


def _typed(raw: str, kind: str) -> Any:
    if kind == "integer":
        return int(raw)
    if kind == "number":
        number = float(raw)
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in ("y", "yes", "true", "1"):
            return True
        if lowered in ("n", "no", "false", "0"):
            return False
        raise ValueError(raw)
    if kind in ("object", "array"):
        try:
            return parse_json(raw, source=kind)
        except DocumentError as exc:  # not JSON, or a key given twice
            raise ValueError(exc.message) from None
    return raw


def answer_pauses(client: PlatformClient, data: dict[str, Any], term: Terminal) -> dict[str, Any]:
    """While the run ``data`` describes is paused: ask each pending request of its
    continuation and resume with the answer, through ``client``'s ordinary resume. Returns
    the last run response (finished, or still paused when the person stopped)."""
    while data.get("status") == "paused" and data.get("continuation_id"):
        continuation = str(data["continuation_id"])
        task = client.get_human_task(continuation)
        pending = [r for r in task.get("requests") or [] if r.get("status") == "pending"]
        if not pending:
            return data
        request = pending[0]
        describe(request, term)
        try:
            answer = ask_answer(request, term)
        except Stopped:
            term.say("")
            term.say(f"stopped: {_still_paused(continuation)}")
            return data
        try:
            decision = Decision(str(request["request_id"]), **answer)
            data = client.resume(continuation, decision)
        except KneoError as exc:
            if exc.code not in _ASK_AGAIN:
                # e.g. an operator's key may start runs but not decide: the answer is lost,
                # the pause is not; say so before the error itself
                who = " with a key that may decide" if exc.code == "forbidden" else ""
                term.say(f"not answered: {_still_paused(continuation)}{who}")
                raise
            term.say(f"  not accepted: {exc.message}")
    return data


def _still_paused(continuation: str) -> str:
    return (
        f"the run stays paused; resume later with: kneo human resume {continuation} --interactive"
    )
