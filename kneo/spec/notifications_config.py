"""The project config's ``notifications:`` block (receivers, the people directory) and
the check every secret reference shares: a variable's *name*, never a value. Split from
:mod:`kneo.spec.project` (which re-exports these names); contract layer, no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kneo.notification_events import NOTIFICATION_EVENTS

#: A secret reference must look like an environment-variable name.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_env_names(value: dict[str, str], where: str) -> dict[str, str]:
    for key, name in value.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            # Never echo the value: it may be the secret itself pasted by mistake.
            raise ValueError(
                f"{where}.{key} must be an environment-variable NAME such as OPENAI_API_KEY, "
                "not a secret value"
            )
    return value


#: The fields of a receiver that name a variable holding one of its secrets.
SECRET_FIELDS = ("url_env", "secret_env", "token_env", "signing_secret_env", "smtp_password_env")


class ReceiverConfig(_Model):
    """One place notifications go (``notifications.receivers[]``, or the JSON list in
    ``KNEO_SERV_NOTIFICATIONS_RECEIVERS``), with Flux-Alert-style filters: an event is sent
    when every filter that is set matches. Secrets are named by variable, never written."""

    #: Stable name: a delivery row is keyed by (event, receiver name).
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    #: ``webhook``: JSON signed with HMAC-SHA256; ``slack``: an incoming-webhook message;
    #: ``slack_app``: a Slack app's bot (Web API at ``url``): messages with decision buttons,
    #: updated once the request is decided; ``teams``: a Microsoft Teams incoming webhook
    #: (an Adaptive Card); ``email``: mail through the SMTP server at ``url``
    #: (``smtp://host:port``), a text and an HTML part, a decision link per recipient.
    type: Literal["webhook", "slack", "slack_app", "teams", "email"] = "webhook"
    #: A webhook's body: ``kneo`` (the Kneo message) or ``cloudevents`` (CloudEvents 1.0,
    #: structured JSON, the Kneo message as ``data``).
    format: Literal["kneo", "cloudevents"] = "kneo"
    #: Where to POST (http or https). A Slack webhook URL is itself a secret: use ``url_env``.
    url: str | None = Field(default=None, pattern=r"^(https?|smtp)://\S+$", max_length=2048)
    #: Variable holding the URL instead of ``url``.
    url_env: str | None = None
    #: Variable holding the webhook's HMAC key (``webhook-signature``, Standard Webhooks;
    #: ``whsec_<base64>`` or any text), also used for ``X-Kneo-Signature-256``.
    secret_env: str | None = None
    #: ``slack_app``: variables holding the bot token (``xoxb-...``) and the app's signing
    #: secret (verifies its interaction callbacks), and the channel id messages go to.
    token_env: str | None = None
    signing_secret_env: str | None = None
    channel: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,32}$")
    #: ``email``: how the connection is secured (``starttls``, ``tls`` from the first byte,
    #: ``none`` on a trusted local relay only), the login (the password by variable), the
    #: sender, and who gets every message (besides the request's own recipients).
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = Field(default=None, max_length=255)
    smtp_password_env: str | None = None
    from_address: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(default_factory=list, max_length=100)
    #: Event types (``*`` wildcards, e.g. ``human.*``); empty: every event.
    events: list[str] = Field(default_factory=list)
    #: Only events of these environments (events with no environment never match).
    environments: list[str] = Field(default_factory=list)
    #: Only events assigned to one of these (human tasks).
    assignees: list[str] = Field(default_factory=list)
    #: Lowest severity sent: ``info`` (everything), ``warning`` or ``error``.
    severity: Literal["info", "warning", "error"] = "info"
    #: ``webhook``, ``slack``, ``teams``: the receiver reaches one person only (a private
    #: endpoint, a direct-message webhook), so its messages may carry the personal decision
    #: links signed for the request's recipients. Off: a channel never gets anyone's link.
    personal_links: bool = False

    @field_validator(*SECRET_FIELDS)
    @classmethod
    def _env_names(cls, value: str | None) -> str | None:
        if value is not None:
            check_env_names({"env": value}, "notifications.receivers[]")
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        from fnmatch import fnmatchcase

        for pattern in value:
            if not any(fnmatchcase(kind, pattern) for kind in NOTIFICATION_EVENTS):
                raise ValueError(
                    f"{pattern!r} matches no notification event "
                    f"(events: {', '.join(NOTIFICATION_EVENTS)})"
                )
        return value

    @model_validator(mode="after")
    def _one_url(self) -> ReceiverConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"receiver {self.name!r}: set exactly one of url and url_env")
        if self.type != "webhook" and self.format != "kneo":
            raise ValueError(f"receiver {self.name!r}: format applies to webhook receivers only")
        app = (self.token_env, self.signing_secret_env, self.channel)
        if self.type == "slack_app" and None in app:
            raise ValueError(
                f"receiver {self.name!r}: a slack_app needs token_env, signing_secret_env and "
                "channel"
            )
        if self.url is not None and (self.type == "email") != self.url.startswith("smtp:"):
            raise ValueError(
                f"receiver {self.name!r}: url: smtp://host:port for an email receiver, "
                "http(s) for any other"
            )
        if self.type == "email" and self.from_address is None:
            raise ValueError(f"receiver {self.name!r}: an email receiver needs from_address")
        if self.type != "slack_app" and app != (None, None, None):
            raise ValueError(
                f"receiver {self.name!r}: token_env, signing_secret_env and channel are for "
                "slack_app receivers only"
            )
        if self.personal_links and self.type in ("slack_app", "email"):
            raise ValueError(
                f"receiver {self.name!r}: personal_links is for webhook, slack and teams "
                "receivers (a slack_app's buttons and an e-mail's links are each person's own)"
            )
        return self

    def variables(self) -> dict[str, str]:
        """Every variable this receiver reads -> its field (``token_env``): the receiver's
        secrets, never a spec's."""
        return {v: f for f in SECRET_FIELDS if (v := getattr(self, f)) is not None}


class PersonConfig(_Model):
    """One person notifications reach (``notifications.people[]``): how Kneo names them
    (``user``: what ``user:`` entries match), their Slack user id (a click from it is theirs)
    and the approver groups they are in (a ``group:`` task reaches them and is theirs in the
    inbox's *Mine*)."""

    user: str = Field(min_length=1, max_length=255, pattern=r"^[^\s:]+$")
    slack: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,32}$")
    groups: list[str] = Field(default_factory=list, max_length=100)


class NotificationsConfig(_Model):
    """The ``notifications:`` block (see docs/notifications.md)."""

    receivers: list[ReceiverConfig] = Field(default_factory=list, max_length=100)
    #: who is who across Slack and Kneo, and in which approver groups (docs/notifications.md)
    people: list[PersonConfig] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [r.name for r in self.receivers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"receiver names must be unique: {', '.join(repeated)} repeated")
        users = [p.user for p in self.people]
        twice = sorted({u for u in users if users.count(u) > 1})
        if twice:
            raise ValueError(f"people: {', '.join(twice)} is listed twice")
        return self


__all__ = [
    "ENV_NAME",
    "SECRET_FIELDS",
    "NotificationsConfig",
    "PersonConfig",
    "ReceiverConfig",
    "check_env_names",
]
