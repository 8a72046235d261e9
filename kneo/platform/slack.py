"""A Slack app receiver (``type: slack_app``): messages with decision buttons, posted and
updated through Slack's Web API with the app's bot token.

``human.requested`` posts a Block Kit message per request (its summary, prompt, assignee,
expiry, and a button per decision the request accepts) to the receiver's channel and to
each recipient the people directory gives a Slack id (an assigned person, every member of
an assigned group); where each went is kept (project metadata, per receiver and task).
``human.decision`` updates every one of those messages to say who decided what and when,
whatever surface the decision came from, and removes the buttons. Any other event is a plain
message. Calls go through the trust kernel's client (:func:`kneo.kernel.http_client`),
whose grant is the receiver's configured API origin; the token is never logged or stored.

A message is posted once, however the delivery is retried. Before each ``chat.postMessage``
the intent is recorded (where to, when), and the message carries its key in Slack's message
metadata (:func:`message_key`); its ``ts`` is recorded after. A retry skips the messages
recorded as posted and posts afresh where Slack answered that it did nothing; where an
attempt ended without knowing (a process killed between the post and its record, a timeout)
it looks for the message by its key in the conversation's recent history and, when Slack
has it, updates it (``chat.update``) instead of posting again. When the history cannot be
read (the app lacks the ``*:history`` scope), it posts nothing rather than risk a second
message: the inbox still has the task.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from kneo import jsontext
from kneo.clock import utc_iso
from kneo.errors import AccessDenied
from kneo.logs import get_logger
from kneo.platform.markup import mrkdwn
from kneo.platform.messages import DeliveryFailed
from kneo.platform.recipients import DECIDABLE
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.redaction import redact_text

if TYPE_CHECKING:
    import httpx2

    from kneo.platform.receivers import Receiver
    from kneo.platform.recipients import People
    from kneo.store import NotificationEvent
    from kneo.store.api import Store

#: ``action_id`` of each decision button: the decision it records.
BUTTONS: dict[str, tuple[str, str, str | None]] = {
    "approved": ("kneo.approve", "Approve", "primary"),
    "rejected": ("kneo.reject", "Reject", "danger"),
}
ACTIONS = {action: decision for decision, (action, _label, _style) in BUTTONS.items()}
RESPOND_ACTION = "kneo.respond"
METADATA_PREFIX = "notify.slack."
#: The ``event_type`` of the message metadata a posted request carries (its key).
MESSAGE_EVENT = "kneo_request"
#: The Web API methods Kneo sends JSON to (Slack's write methods); the others (``users.info``,
#: ``conversations.history``, ``conversations.open``) take form fields.
JSON_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"})
#: Pages of a conversation's history read to find a message whose post was not recorded.
HISTORY_PAGES = 5
log = get_logger("kneo_serv.notifications")


class SlackDidNothing(Exception):
    """Slack answered a call and did nothing (``error``: its code), or was never reached."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error[:100]}")
        self.error = error


def call(
    client: httpx2.Client, receiver: Receiver, method: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """One Web API call (``chat.postMessage`` ...): its answer, or ``DeliveryFailed`` naming
    the method and Slack's error code (never the token, never the URL). When the call
    certainly did nothing (Slack refused it, or was not reached) the ``DeliveryFailed``'s
    cause is a :class:`SlackDidNothing`."""
    try:
        return _call(client, receiver, method, payload)
    except SlackDidNothing as exc:
        raise DeliveryFailed(str(exc)) from exc


def _call(
    client: httpx2.Client, receiver: Receiver, method: str, payload: dict[str, Any]
) -> dict[str, Any]:
    import httpx2

    if method in JSON_METHODS:
        content = jsontext.dumps(payload).encode()
        kind = "application/json; charset=utf-8"
    else:
        content = urlencode({k: _form(v) for k, v in payload.items()}).encode()
        kind = "application/x-www-form-urlencoded"
    try:
        response = client.post(
            f"{receiver.url.rstrip('/')}/{method}",
            content=content,
            headers={"Authorization": f"Bearer {receiver.token}", "Content-Type": kind},
        )
    except httpx2.ConnectError:
        raise SlackDidNothing(method, "ConnectError: Slack could not be reached") from None
    except httpx2.HTTPError as exc:  # sent, perhaps done: nobody knows
        raise DeliveryFailed(
            f"{method}: {type(exc).__name__}: Slack could not be reached"
        ) from None
    except AccessDenied:
        raise SlackDidNothing(method, "refused: not the receiver's configured API") from None
    if 400 <= response.status_code < 500:  # refused (429: rate limited), nothing done
        raise SlackDidNothing(method, f"HTTP {response.status_code}")
    if response.status_code != 200:
        raise DeliveryFailed(f"{method}: HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryFailed(f"{method}: Slack answered with no JSON") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise SlackDidNothing(method, str(error or "not ok"))
    return answer


def _form(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def request_blocks(
    body: dict[str, Any],
    entry: dict[str, Any],
    project_id: int = DEFAULT_PROJECT_ID,
    deciders: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The Block Kit of a pending request: what it is, for whom, until when, who alone may
    decide (``deciders``: a binding assignment's), and its buttons (a decision button per
    accepted approve/reject, ``Respond…`` for the rest), whose values name the request and
    its task's project (``p``, its id; none for the default project), where a click
    decides. Every value from the run or spec is literal text (:func:`mrkdwn`)."""
    prompt = mrkdwn(redact_text(str(entry.get("prompt") or "")))
    prompt = prompt.replace("\n", "\n>")  # each line quoted, none a markup of its own
    text = f"*{mrkdwn(body['summary'])}*" + (f"\n>{prompt}" if prompt else "")
    facts = [f"kind: {mrkdwn(entry.get('kind') or 'approval')}", f"event {body['id']}"]
    if entry.get("expires_at"):
        facts.insert(1, f"expires {mrkdwn(entry['expires_at'])}")
    if deciders:
        facts.append(f"only {mrkdwn(', '.join(deciders))} may decide")
    value = {"c": body.get("continuation_id"), "r": entry.get("request_id")}
    if project_id != DEFAULT_PROJECT_ID:
        value["p"] = project_id
    accepted = list(entry.get("decisions") or ["approved", "rejected"])
    buttons: list[dict[str, Any]] = []
    for decision in accepted:
        if decision in BUTTONS:
            action, label, style = BUTTONS[decision]
            button = _button(action, label, jsontext.dumps({**value, "d": decision}))
            buttons.append({**button, "style": style} if style else button)
    if any(d not in BUTTONS for d in accepted):
        buttons.append(_button(RESPOND_ACTION, "Respond…", jsontext.dumps(value)))
    if body.get("link"):
        buttons.append(
            {
                "type": "button",
                "action_id": "kneo.open",
                "text": {"type": "plain_text", "text": "Open in Kneo"},
                "url": body["link"],
            }
        )
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]},
        {"type": "actions", "block_id": "kneo.decide", "elements": buttons},
    ]


def _button(action: str, label: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }


def decided_blocks(text: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A decided request's message: who decided what and when, no buttons."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"event {body['id']}"}]},
    ]


def _key(receiver: Receiver, continuation_id: str) -> str:
    return f"{METADATA_PREFIX}{receiver.name}.{continuation_id}"


def message_key(receiver: Receiver, continuation_id: str, request_id: object, to: str) -> str:
    """The key of the one message about a request to one channel or person: the same on
    every attempt, carried in the message's metadata so a retry can find what it posted."""
    raw = f"{receiver.name}\0{continuation_id}\0{request_id}\0{to}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def deliver(
    client: httpx2.Client,
    receiver: Receiver,
    body: dict[str, Any],
    event: NotificationEvent,
    entry: dict[str, Any] | None,
    store: Store,
    people: People,
    now: float,
) -> None:
    """Send one event to a Slack app receiver (see the module's docstring); ``now``: Unix
    seconds, when an intent to post is recorded."""
    cont = event.continuation_id
    if event.event_type in DECIDABLE and cont and entry is not None:
        targets = [str(receiver.channel)]
        for name in people.deciders(event.event_type, entry):
            person = people.by_user.get(name)
            if person is not None and person.slack:
                targets.append(person.slack)  # a direct message from the app
        poster = _Poster(client, receiver, store, _key(receiver, cont), now)
        deciders = tuple(str(d) for d in body.get("deciders") or ())
        blocks = request_blocks(body, entry, event.project_id, deciders)
        for to in targets:
            key = message_key(receiver, cont, entry.get("request_id"), to)
            poster.post(to, entry.get("request_id"), key, mrkdwn(body["summary"]), blocks)
    elif event.event_type == "human.decision" and cont:
        _update_decided(client, receiver, body, event, store, people, cont)
    else:
        text = f"[{body['severity']}] {body['type']}: {mrkdwn(body['summary'])}"
        call(client, receiver, "chat.postMessage", {"channel": receiver.channel, "text": text})


class _Poster:
    """Posts a request's messages once each, recording the intent first (module docstring).
    ``messages`` (the store's record for the task): ``request_id``, ``to`` (the channel or
    user posted to), ``at`` (when the intent was recorded), then ``channel`` and ``ts`` (what
    Slack answered), or ``unknown`` when it could not be found out."""

    def __init__(
        self, client: httpx2.Client, receiver: Receiver, store: Store, key: str, now: float
    ) -> None:
        self.client, self.receiver, self.store, self.key, self.now = (
            client, receiver, store, key, now
        )  # fmt: skip
        self.messages: list[dict[str, Any]] = list(
            (store.metadata.get_metadata(key) or {}).get("messages", [])
        )

    def _save(self) -> None:
        with self.store.transaction() as tx:
            tx.set_metadata(self.key, {"messages": self.messages})

    def post(
        self, to: str, request_id: object, key: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        found = next(
            (
                m
                for m in self.messages
                if m.get("request_id") == request_id and (m.get("to") or m.get("channel")) == to
            ),
            None,
        )
        if found is not None and (found.get("ts") or found.get("unknown")):
            return  # posted by an earlier attempt (or given up on): never a second message
        args: dict[str, Any] = {"channel": to, "text": text, "blocks": blocks}
        if found is not None:  # an attempt ended between its intent and its record
            where = self._find(to, found, key)
            if where is None:
                self._save()  # ``unknown``: the history cannot tell; post nothing
                return
            if where:
                channel, ts = where
                call(
                    self.client,
                    self.receiver,
                    "chat.update",
                    {**args, "channel": channel, "ts": ts},
                )
                found.update(channel=channel, ts=ts)
                self._save()
                return
        else:
            found = {"request_id": request_id, "to": to, "at": self.now}
            self.messages.append(found)
            self._save()  # the intent, before the message exists
        args["metadata"] = {"event_type": MESSAGE_EVENT, "event_payload": {"key": key}}
        try:
            answer = call(self.client, self.receiver, "chat.postMessage", args)
        except Exception as exc:
            if isinstance(exc.__cause__, SlackDidNothing):  # not posted: post afresh next time
                self.messages.remove(found)
                self._save()
            raise
        found.update(channel=answer.get("channel", to), ts=answer["ts"])
        self._save()

    def _find(
        self, to: str, intent: dict[str, Any], key: str
    ) -> tuple[str, str] | tuple[()] | None:
        """Where the message with ``key`` is, if an earlier attempt posted it: ``(channel,
        ts)``; ``()`` when it is not there (post it); ``None`` when Slack will not say
        (``intent`` marked ``unknown``). A network failure is the attempt's (retried)."""
        try:
            channel = to
            if to[:1] in ("U", "W"):  # a person: their direct-message conversation's id
                opened = _call(self.client, self.receiver, "conversations.open", {"users": to})
                channel = str((opened.get("channel") or {}).get("id") or to)
            oldest = float(intent.get("at") or self.now) - 60
            cursor = ""
            for _page in range(HISTORY_PAGES):
                args: dict[str, Any] = {
                    "channel": channel,
                    "oldest": f"{oldest:.6f}",
                    "include_all_metadata": True,
                    "limit": 200,
                }
                if cursor:
                    args["cursor"] = cursor
                page = _call(self.client, self.receiver, "conversations.history", args)
                for message in page.get("messages") or []:
                    meta = message.get("metadata") or {}
                    if (
                        meta.get("event_type") == MESSAGE_EVENT
                        and (meta.get("event_payload") or {}).get("key") == key
                    ):
                        return channel, str(message["ts"])
                cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    return ()
        except SlackDidNothing as exc:
            log.warning(
                "slack: %s: whether the message to %s was posted is unknown (%s): not posted again",
                self.receiver.name,
                to,
                exc,
            )
            intent["unknown"] = True
            return None
        intent["unknown"] = True  # more history than a recovery reads: assume it is there
        return None


def _update_decided(
    client: httpx2.Client,
    receiver: Receiver,
    body: dict[str, Any],
    event: NotificationEvent,
    store: Store,
    people: People,
    cont: str,
) -> None:
    data = event.payload
    actor = event.actor or "someone"
    person = people.by_user.get(actor)
    who = f"<@{person.slack}>" if person is not None and person.slack else None
    who = who or mrkdwn(body.get("actor") or "someone")  # a mention only from the directory
    when = utc_iso(event.created_at)
    text = f"*{mrkdwn(data.get('decision') or 'decided')}* by {who} at {when}"
    messages = (store.metadata.get_metadata(_key(receiver, cont)) or {}).get("messages", [])
    for message in messages:
        if message.get("request_id") != data.get("request_id") or not message.get("ts"):
            continue  # another request's, or never known to be posted
        call(
            client,
            receiver,
            "chat.update",
            {
                "channel": message["channel"],
                "ts": message["ts"],
                "text": text,
                "blocks": decided_blocks(text, body),
            },
        )


def decision_of(value: str) -> tuple[str, str, str, int] | None:
    """A decision button's ``(continuation, request, decision, project id)``, or ``None``
    if malformed."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "crd"):
        return None
    project = project_of(data)
    return None if project is None else (data["c"], data["r"], data["d"], project)


def project_of(value: dict[str, Any]) -> int | None:
    """The project id a button's (or modal's) value names: the default project's when it
    names none (a message posted before projects); ``None`` when it is not an id."""
    project = value.get("p", DEFAULT_PROJECT_ID)
    if not isinstance(project, int) or isinstance(project, bool):
        return None
    return project


__all__ = [
    "ACTIONS",
    "BUTTONS",
    "MESSAGE_EVENT",
    "RESPOND_ACTION",
    "SlackDidNothing",
    "call",
    "decided_blocks",
    "decision_of",
    "deliver",
    "message_key",
    "project_of",
    "request_blocks",
]
