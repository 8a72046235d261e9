"""The groups of :class:`kneo.settings.Settings`: request and checkpoint limits, retention,
notification delivery, A2A push, OpenID sign-in.

Each group is a frozen value with its defaults, named by the ``KNEO_SERV_*`` prefix its
variables share; :mod:`kneo.settings` reads the environment into them (the one reader of
``KNEO_*`` variables), and a collaborator that needs only one group takes only that.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Limits:
    """Request limits (``KNEO_SERV_MAX_*``)."""

    max_body_bytes: int = 1_048_576
    max_input_chars: int = 20_000
    max_human_content_chars: int = 20_000
    max_inline_spec_bytes: int = 262_144
    max_overrides_bytes: int = 65_536
    max_metadata_bytes: int = 32_768
    max_list_items: int = 100
    #: the deepest ``offset`` of the keyset listings (runs, human tasks, audit events)
    max_list_offset: int = 10_000
    #: ``0`` (the default): a listing's ``total`` is exact. ``N``: counted up to ``N`` rows
    #: past the page's end, then capped (``total_capped``), for a store so large that the
    #: count would cost more than the page (docs/performance.md#list-totals)
    max_list_count: int = 0
    max_path_chars: int = 4_096
    #: the longest ``Prefer: wait=N`` a decision or continue handed to the workers waits for
    #: its run's pause or end before answering ``202`` (a longer one is cut to this)
    max_wait_seconds: int = 60
    #: how long a decision or continue handed to the workers waits for its run's pause or end
    #: when the caller states no preference (the seed's synchronous answer); ``0``: ``202`` at
    #: once. At most ``max_wait_seconds``.
    decision_wait_seconds: int = 30


@dataclass(frozen=True)
class CheckpointLimits:
    """Checkpoint storage limits (``KNEO_SERV_CHECKPOINT_*``)."""

    compress_bytes: int = 65_536
    max_bytes: int = 1_048_576
    preview_chars: int = 1_200
    max_list_items: int = 20
    max_dict_items: int = 50


@dataclass(frozen=True)
class RetentionDays:
    """Retention windows in days; ``None`` disables pruning for that category."""

    runs_days: int | None = None
    checkpoints_days: int | None = None
    queue_days: int | None = None
    continuations_days: int | None = None
    artifacts_days: int | None = None
    logs_days: int | None = None

    def overlay(self, base: RetentionDays) -> RetentionDays:
        """Field by field, a value set here wins over ``base`` (env var > project config)."""
        return RetentionDays(
            **{
                f.name: getattr(self, f.name)
                if getattr(self, f.name) is not None
                else getattr(base, f.name)
                for f in fields(self)
            }
        )


@dataclass(frozen=True)
class NotificationSettings:
    """Notification delivery (``KNEO_SERV_NOTIFICATIONS_*``; see docs/notifications.md)."""

    #: how often a dispatcher looks for due deliveries; 0: this process delivers nothing
    poll_seconds: float = 0.5
    #: attempts before a delivery is ``dead``
    max_attempts: int = 8
    #: first retry delay; doubles per attempt (full jitter), capped at ``backoff_max_seconds``
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    #: a claimed delivery's lease: a process killed mid-delivery loses it after this
    lease_seconds: float = 30.0
    #: one HTTP attempt's timeout (keep it below the lease)
    timeout_seconds: float = 10.0
    #: deliveries one dispatcher has in flight at once, over all its receivers
    concurrency: int = 64
    #: deliveries in flight to one receiver (per dispatcher): a receiver that hangs holds
    #: these, never the others'
    receiver_concurrency: int = 32
    #: ``human.expiring`` is sent this long before a pending request's ``expires_at``
    expiring_lead_seconds: float = 900.0
    #: receivers as JSON (a list, the project config's ``notifications.receivers`` schema)
    receivers: str = field(default="", repr=False)
    #: people as JSON (a list, the project config's ``notifications.people`` schema)
    people: str = field(default="", repr=False)


@dataclass(frozen=True)
class A2aPushSettings:
    """A2A push notifications (``KNEO_SERV_A2A_PUSH_*``; docs/a2a.md#push-notifications)."""

    #: the origins an A2A client may name as its push URL (the network grant of push
    #: notifications: :class:`kneo.kernel.AllowList`); empty: no push notifications
    destinations: tuple[str, ...] = ()
    #: seals a push config's token and credentials in the store (AES-GCM); needed with
    #: ``destinations``, the same on every process
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an OpenID provider (``KNEO_SERV_OIDC_*``; see docs/identity.md)."""

    #: the provider's issuer URL (``iss``); empty: no OIDC, API keys only
    issuer: str = ""
    #: the ``aud`` an API bearer token must carry (the console's client id when empty)
    audience: str = ""
    #: the console's OAuth client
    client_id: str = ""
    #: the *name* of the variable holding the client secret (never the secret itself)
    client_secret_env: str = ""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    #: the claim naming the person (``email``; ``sub`` when the token lacks it or, for
    #: ``email``, when ``email_verified`` is not true)
    user_claim: str = "email"
    #: take ``email`` without ``email_verified: true`` (providers that issue only addresses
    #: they own and omit the flag); off: an unverified address names nobody
    trust_unverified_email: bool = False
    #: the claim listing the person's groups
    groups_claim: str = "groups"
    #: claims -> roles: ``group:NAME=role[,role];user:EMAIL=role;*=role``
    roles: str = ""
    #: tolerated clock difference for ``exp``/``nbf``/``iat``
    clock_skew_seconds: float = 60.0
    #: how long fetched signing keys are trusted before they are fetched again
    jwks_cache_seconds: float = 300.0

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @property
    def token_audience(self) -> str:
        return self.audience or self.client_id
