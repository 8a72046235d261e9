"""``POST /hooks/slack/{receiver}/interactions``: a Slack app's interaction callbacks (a
decision button, the ``Respond…`` modal) for a ``slack_app`` receiver (docs/notifications.md).

Every callback is checked before anything is read from it: Slack's signature with the
receiver's signing secret, a timestamp within 5 minutes, never the same callback twice, in
any process or replica sharing the store, or after a restart (the store's ``seen_callbacks``:
:mod:`kneo.platform.slack_signing`; 401 ``slack_signature_invalid``). The Slack user who
clicked is then mapped to a Kneo person: the people directory's entry with their Slack id,
else the e-mail Slack has confirmed for them (``users.info``, ``is_email_confirmed``);
nobody else (403 ``slack_user_unknown``). That person, in the groups the directory of
the task's project lists them in, must hold the right to decide there
(:func:`kneo.service.deciders.check_decider`, the decision links' check) and decides through
that project's platform ``resume`` with that identity acting, as a console or API decision
does (a promotion's approver rules included). The project is the one the button's value
names (``p``, the id its message was posted with; none: the default project): a click
decides nothing in any other. A refusal is shown to the clicker alone
(``chat.postEphemeral``) with the reason; the messages are updated by the outbox's
``human.decision`` delivery, as after a decision from any surface.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kneo.engine.human import Decision
from kneo.errors import (
    ErrorCode,
    Forbidden,
    InvalidRequest,
    KneoError,
    NotFound,
    ProviderError,
)
from kneo.kernel import Origins, http_client
from kneo.logs import get_logger
from kneo.people import Identity, acting
from kneo.platform.messages import DeliveryFailed
from kneo.platform.receivers import load_receivers
from kneo.platform.slack import ACTIONS, RESPOND_ACTION, call, decision_of, project_of
from kneo.platform.slack_signing import verify
from kneo.service.deciders import check_decider, people_of
from kneo.service.dependencies import current_manager
from kneo.service.query_params import StrictQueryRoute
from kneo.service.slack_forms import FIELD_PREFIX, schema_fields, submitted_content

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager
    from kneo.platform.receivers import Receiver
    from kneo.platform.recipients import People

router = APIRouter(include_in_schema=False, route_class=StrictQueryRoute)
log = get_logger("kneo_serv.slack")
MODAL_CALLBACK = "kneo.decide"


class SlackApp:
    """The process's Slack app receivers and people directory."""

    def __init__(self, receivers: list[Receiver], people: People, timeout: float) -> None:
        self.receivers = {r.name: r for r in receivers if r.type == "slack_app"}
        self.people = people
        self.client = http_client(
            Origins.of(*(r.url for r in self.receivers.values())),
            path="notifications.receivers",
            timeout=timeout,
        )

    def person(self, receiver: Receiver, user_id: str) -> Identity:
        """The Kneo person behind a Slack user id (configured, else a confirmed e-mail)."""
        entry = self.people.by_slack.get(user_id)
        if entry is not None:
            return _identity(entry.user, user_id, "slack_mapping")
        try:
            user = call(self.client, receiver, "users.info", {"user": user_id}).get("user") or {}
        except DeliveryFailed as exc:
            raise Forbidden(
                f"Slack user {user_id} could not be looked up: {exc}",
                code=ErrorCode.slack_user_unknown,
            ) from None
        email = (user.get("profile") or {}).get("email")
        if user.get("is_email_confirmed") is not True or not isinstance(email, str) or not email:
            raise Forbidden(
                f"Slack user {user_id} is not in notifications.people and has no confirmed "
                "e-mail address in Slack",
                code=ErrorCode.slack_user_unknown,
            )
        return _identity(email, user_id, "slack_email")


def _identity(name: str, user_id: str, claim: str) -> Identity:
    """The person a Slack user is (their groups: :func:`check_decider` adds them)."""
    return Identity(
        name,
        "slack",
        subject=f"slack:{user_id}",
        email=name if "@" in name else None,
        user=name,
        user_claim=claim,
    )


def slack_app(request: Request) -> SlackApp:
    """The app's :class:`SlackApp`, built on first use from its settings."""
    state = request.app.state
    found: SlackApp | None = getattr(state, "slack_app", None)
    if found is None:
        settings = state.settings
        manager = current_manager(request.app)
        config = manager.project.config if manager is not None and manager.project else None
        found = SlackApp(
            load_receivers(settings, config),
            people_of(request.app),
            settings.notifications.timeout_seconds,
        )
        state.slack_app = found
    return found


def _payload(body: bytes) -> dict[str, Any]:
    try:
        raw = parse_qs(body.decode(), strict_parsing=True)["payload"][0]
        payload = json.loads(raw)
    except (ValueError, KeyError, UnicodeDecodeError):
        raise InvalidRequest("a Slack callback carries a JSON payload", field="payload") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict):
        raise InvalidRequest("a Slack callback names its user", field="payload.user")
    return payload


@router.post("/hooks/slack/{receiver}/interactions")
async def interactions(request: Request, receiver: str) -> JSONResponse:
    """One interaction callback (see the module's docstring); Slack wants 200 at once."""
    body = await request.body()
    app = slack_app(request)
    found = app.receivers.get(receiver)
    if found is None or not found.signing_secret:
        raise NotFound(f"no slack_app receiver named {receiver!r}")
    manager = current_manager(request.app)
    if manager is None:
        raise NotFound("no platform is configured")
    headers = {k.lower(): v for k, v in request.headers.items()}
    from starlette.concurrency import run_in_threadpool

    secret, now = found.signing_secret, time.time()
    # before anything is read from the body; the replay check is the store's (a thread)
    await run_in_threadpool(
        verify, secret, headers, body, now, manager.store.idempotency, scope=receiver
    )
    payload = _payload(body)
    answer = await run_in_threadpool(handle, request, app, found, payload)
    return JSONResponse(answer)


def handle(
    request: Request, app: SlackApp, receiver: Receiver, payload: dict[str, Any]
) -> dict[str, Any]:
    """A verified callback: a decision button decides, ``Respond…`` opens the modal, the
    modal's submission decides with its content; a refusal is told to the clicker alone."""
    user_id = str(payload["user"].get("id") or "")
    kind = payload.get("type")
    try:
        if kind == "view_submission":
            target, decision, project_id = _submitted(payload)
        elif kind == "block_actions":
            action = (payload.get("actions") or [{}])[0]
            if action.get("action_id") == RESPOND_ACTION:  # who clicked, before any form
                _open_modal(request, app, receiver, payload, action, user_id)
                return {"ok": True, "opened": "modal"}
            found = decision_of(str(action.get("value") or ""))
            if found is None or ACTIONS.get(str(action.get("action_id"))) != found[2]:
                raise InvalidRequest("not a Kneo decision button", field="actions")
            target, decision, project_id = found[0], Decision(found[1], found[2]), found[3]
        else:
            raise InvalidRequest(f"Kneo does not handle {kind!r} callbacks", field="type")
        manager = _project_manager(request, project_id)  # the task's project, only there
        who = _decider(request, app, receiver, user_id, manager)
        acting(who)
        try:
            manager.resume(target, decision, actor=who.name)
        finally:
            acting(None)
    except KneoError as exc:
        _tell(app, receiver, payload, user_id, exc.message)
        if kind == "view_submission":  # shown under the field it is about
            return {
                "response_action": "errors",
                "errors": {_block_of(payload, exc): exc.message[:150]},
            }
        return {"ok": False, "error": exc.code, "message": exc.message}
    return {"ok": True, "decided": decision.decision, "by": who.name}


def _block_of(payload: dict[str, Any], exc: KneoError) -> str:
    """The modal's block an error belongs under: the typed field it names (its ``path`` or
    ``field``), else the free text, else the decision."""
    blocks = {b.get("block_id") for b in (payload.get("view") or {}).get("blocks") or []}
    named = str(exc.details.get("path") or exc.details.get("field") or "").split(".")[0]
    for block in (FIELD_PREFIX + named, "content"):
        if block in blocks:
            return block
    return "decision"


def _decider(
    request: Request, app: SlackApp, receiver: Receiver, user_id: str, manager: PlatformManager
) -> Identity:
    """The clicker as the Kneo person who may decide in ``manager``'s project (403 else)."""
    project = str(manager.store.project)
    return check_decider(
        request.app.state.authenticator,
        app.person(receiver, user_id),
        people_of(request.app, project),
        project=project,
    )


def _tell(app: SlackApp, receiver: Receiver, payload: dict[str, Any], user: str, text: str) -> None:
    """Show ``text`` to the clicker alone, in the channel of the click (best effort)."""
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get(
        "channel_id"
    )
    if not channel:
        return
    try:
        call(
            app.client,
            receiver,
            "chat.postEphemeral",
            {"channel": channel, "user": user, "text": f"Kneo refused this: {text}"},
        )
    except DeliveryFailed as exc:
        log.warning("slack: the refusal could not be shown: %s", exc)


def _open_modal(
    request: Request,
    app: SlackApp,
    receiver: Receiver,
    payload: dict[str, Any],
    action: dict[str, Any],
    user_id: str,
) -> None:
    """``views.open``: the request's own form, for a clicker who may decide it (checked
    first: nobody else sees the request's form). Slack's refusal (``expired_trigger_id``
    after 3 s) is told to the clicker, never a ``500``."""
    try:
        value = json.loads(str(action.get("value") or "{}"))
    except ValueError:
        value = None
    project_id = project_of(value) if isinstance(value, dict) else None
    if value is None or project_id is None:
        raise InvalidRequest("not a Kneo request", field="actions")
    manager = _project_manager(request, project_id)
    _decider(request, app, receiver, user_id, manager)
    task = manager.get_human_task(str(value.get("c")))
    requests: list[dict[str, Any]] = task.get("requests", [])
    entry = next((r for r in requests if r.get("request_id") == value.get("r")), {})
    try:
        call(
            app.client,
            receiver,
            "views.open",
            {"trigger_id": payload.get("trigger_id"), "view": modal(value, entry)},
        )
    except DeliveryFailed as exc:
        raise ProviderError(
            f"Slack did not open the form ({exc}): click Respond… again, or answer in the console",
            code=ErrorCode.slack_call_failed,
        ) from None


def modal(value: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The modal of a request that wants more than approve/reject: a choice of the decisions
    it accepts, of its options, and its content: a typed field per property of its
    ``input_schema`` (:mod:`kneo.service.slack_forms`), else a text."""
    accepted = [d for d in entry.get("decisions") or [] if d not in ("approved", "rejected")]
    blocks: list[dict[str, Any]] = [
        _input(
            "decision",
            "Decision",
            {
                "type": "static_select",
                "action_id": "value",
                "options": [_option(d) for d in accepted or ["provided"]],
            },
        )
    ]
    if entry.get("options"):
        element: dict[str, Any] = {"type": "static_select", "action_id": "value"}
        element["options"] = [_option(str(o)) for o in entry["options"]]
        blocks.append({**_input("option", "Option", element), "optional": True})
    fields, kinds = schema_fields(entry.get("input_schema"))
    if fields:
        blocks += fields
    else:
        text = {"type": "plain_text_input", "action_id": "value", "multiline": True}
        blocks.append({**_input("content", "Content", text), "optional": True})
    meta: dict[str, Any] = {k: value[k] for k in ("c", "r", "p") if k in value}  # p: where
    if kinds:
        meta["f"] = kinds
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": "Kneo request"},
        "submit": {"type": "plain_text", "text": "Decide"},
        "blocks": blocks,
    }


def _input(block_id: str, label: str, element: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


def _option(text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": text[:150]}


def _project_manager(request: Request, project_id: int) -> Any:
    """The platform manager of the project a button names (``project_not_found`` when it
    is archived or unknown)."""
    manager = current_manager(request.app)
    if manager is None:
        raise NotFound("no platform is configured")
    return manager.for_project(str(manager.store.for_project(project_id).project))


def _submitted(payload: dict[str, Any]) -> tuple[str, Decision, int]:
    """The modal's submission as a decision on its request, in its project."""
    view = payload.get("view") or {}
    if view.get("callback_id") != MODAL_CALLBACK:
        raise InvalidRequest("not a Kneo modal", field="view.callback_id")
    meta = json.loads(view.get("private_metadata") or "{}")
    values = (view.get("state") or {}).get("values") or {}

    def picked(block: str) -> str | None:
        field = (values.get(block) or {}).get("value") or {}
        chosen = field.get("selected_option") or {}
        return chosen.get("value") or field.get("value")

    decision = picked("decision")
    project_id = project_of(meta) if isinstance(meta, dict) else None
    if project_id is None or not isinstance(meta.get("c"), str) or not decision:
        raise InvalidRequest("the modal names no request or decision", field="view")
    kinds = meta.get("f") if isinstance(meta.get("f"), dict) else {}
    content = submitted_content(values, kinds) if kinds else picked("content")
    chosen = Decision(str(meta.get("r")), decision, content, picked("option"))
    return meta["c"], chosen, project_id


__all__ = ["SlackApp", "handle", "interactions", "modal", "router", "slack_app"]
