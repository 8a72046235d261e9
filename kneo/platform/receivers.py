"""Notification receivers: the configured ones (the project config's
``notifications.receivers`` and ``KNEO_SERV_NOTIFICATIONS_RECEIVERS``), each with its secrets
read from the variables it names, and which events each one wants (Flux Alert style filters).

Each project's events go to its own receivers (:func:`project_settings`): a project's
definition's ``notifications`` block; the host's ``.kneo/config.yaml`` and the variables
(``KNEO_SERV_NOTIFICATIONS_RECEIVERS``, ``..._PEOPLE``) are the ``default`` project's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from kneo.documents import DocumentError, parse_json
from kneo.errors import ConfigError
from kneo.notification_events import SEVERITIES
from kneo.platform.webhooks import signing_key
from kneo.spec.project import NotificationsConfig

if TYPE_CHECKING:
    from pydantic import ValidationError

    from kneo.settings import Settings
    from kneo.spec.project import ProjectConfig, ReceiverConfig
    from kneo.store import NotificationEvent

RECEIVERS_VARIABLE = "KNEO_SERV_NOTIFICATIONS_RECEIVERS"


@dataclass(frozen=True)
class Receiver:
    """A configured receiver with its secrets resolved (never printed: ``repr`` omits them)."""

    name: str
    type: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    events: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    severity: str = "info"
    format: str = "kneo"
    #: ``slack_app``: the bot token, the signing secret and the channel
    token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    channel: str | None = None
    #: ``email``: the SMTP login's password, and how the mail goes
    password: str | None = field(default=None, repr=False)
    smtp_tls: str = "starttls"
    smtp_username: str | None = None
    from_address: str | None = None
    to: tuple[str, ...] = ()
    #: a one-person endpoint may carry its recipients' personal decision links
    personal_links: bool = False

    @property
    def personal(self) -> bool:
        """Whether a message here reaches people one by one: an e-mail (one mail per
        recipient, each with its own link), a Slack app (a direct message each, with
        buttons that check the clicker) and a receiver opted in (``personal_links``). A
        channel (Teams, a Slack or shared webhook) never carries a personal link: whoever
        read it would decide as the link's recipient."""
        return self.type in ("email", "slack_app") or self.personal_links

    def wants_type(self, event_type: str) -> bool:
        """Whether the ``events`` filter (when set) lets events of ``event_type`` through."""
        return not self.events or any(fnmatchcase(event_type, p) for p in self.events)

    def wants(self, event: NotificationEvent) -> bool:
        """Whether every filter that is set matches ``event`` (Flux Alert style)."""
        if not self.wants_type(event.event_type):
            return False
        if self.environments and event.environment not in self.environments:
            return False
        if self.assignees and event.assignee not in self.assignees:
            return False
        return SEVERITIES.index(event.severity) >= SEVERITIES.index(self.severity)


def receiver_configs(
    settings: Settings, project_config: ProjectConfig | None = None
) -> list[ReceiverConfig]:
    """The project config's ``notifications.receivers`` plus those in
    ``KNEO_SERV_NOTIFICATIONS_RECEIVERS`` (a JSON list, same schema); a bad entry is a
    ``config_error`` naming the variable and the field."""
    from pydantic import ValidationError

    configured = list(getattr(getattr(project_config, "notifications", None), "receivers", []))
    raw = settings.notifications.receivers.strip()
    if raw:
        try:
            data = parse_json(raw, source=RECEIVERS_VARIABLE)
            extra = NotificationsConfig.model_validate({"receivers": data}).receivers
        except (ValueError, DocumentError) as exc:  # JSON, pydantic (a ValueError too)
            detail = _validation_text(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(
                f"{RECEIVERS_VARIABLE} is not a valid receiver list: {detail}",
                variable=RECEIVERS_VARIABLE,
            ) from None
        configured += extra
    names = [r.name for r in configured]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"notification receiver names must be unique: {', '.join(repeated)} is configured "
            f"twice (project config and {RECEIVERS_VARIABLE})",
            variable=RECEIVERS_VARIABLE,
        )
    return configured


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"receivers.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
    )


def _variable(settings: Settings, receiver: str, variable: str) -> str:
    """The value of a receiver's ``variable``; unset or empty is a ``config_error``."""
    value = settings.secret(variable)
    if not value:
        raise ConfigError(
            f"notification receiver {receiver!r}: {variable} is not set", variable=variable
        )
    return value


def load_receivers(
    settings: Settings, project_config: ProjectConfig | None = None
) -> list[Receiver]:
    """:func:`receiver_configs` with their URLs and secrets read from the environment; a
    variable that is unset is a ``config_error`` naming it (never its value)."""
    out = []
    for config in receiver_configs(settings, project_config):
        url = config.url
        if config.url_env is not None:
            url = _variable(settings, config.name, config.url_env)
        secret = None
        if config.secret_env is not None:
            secret = _variable(settings, config.name, config.secret_env)
            try:
                signing_key(secret)
            except ValueError as exc:
                raise ConfigError(
                    f"notification receiver {config.name!r}: {config.secret_env}: {exc}",
                    variable=config.secret_env,
                ) from None
        out.append(
            Receiver(
                name=config.name,
                type=config.type,
                url=str(url),
                secret=secret,
                events=tuple(config.events),
                environments=tuple(config.environments),
                assignees=tuple(config.assignees),
                severity=config.severity,
                format=config.format,
                token=_optional(settings, config.name, config.token_env),
                signing_secret=_optional(settings, config.name, config.signing_secret_env),
                channel=config.channel,
                password=_optional(settings, config.name, config.smtp_password_env),
                smtp_tls=config.smtp_tls,
                smtp_username=config.smtp_username,
                from_address=config.from_address,
                to=tuple(config.to),
                personal_links=config.personal_links,
            )
        )
    return out


def project_settings(settings: Settings) -> Settings:
    """``settings`` as a project other than the host's reads its receivers and people: the
    variables' lists (the host's, for ``default``) left out, so a team's events never reach
    another's receivers."""
    own = dataclasses.replace(settings.notifications, receivers="", people="")
    return dataclasses.replace(settings, notifications=own)


def _optional(settings: Settings, receiver: str, variable: str | None) -> str | None:
    return None if variable is None else _variable(settings, receiver, variable)


__all__ = [
    "RECEIVERS_VARIABLE",
    "Receiver",
    "load_receivers",
    "project_settings",
    "receiver_configs",
]
