"""The one place that reads ``KNEO_*`` environment variables.

Everything else receives a :class:`Settings` (or the values it needs) by injection, so tests
build one from a dict instead of patching ``os.environ``. Defaults follow
``docs/environment.md``; a malformed value is a :class:`~kneo.errors.ConfigError` naming the
variable.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, overload

from kneo.errors import ConfigError
from kneo.redaction import redact_text
from kneo.setting_groups import (
    A2aPushSettings,
    CheckpointLimits,
    Limits,
    NotificationSettings,
    OidcSettings,
    RetentionDays,
)

#: The groups are :mod:`kneo.setting_groups`' and named here too: a :class:`Settings` holds them.
__all__ = [
    "CONTINUATION_MODES",
    "DEFAULT_PROVIDER_TIMEOUT_SECONDS",
    "FORWARDED_HEADERS",
    "ROLE_POOL_SIZES",
    "SEMICOLON_LISTS",
    "A2aPushSettings",
    "CheckpointLimits",
    "Limits",
    "NotificationSettings",
    "OidcSettings",
    "RetentionDays",
    "Settings",
    "forwarded_allow_ips",
    "forwarded_header",
    "semicolon_list",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}", variable=name)


#: The ``;``-separated lists: in an env file a shell sources, a ``;`` ends the command, so
#: they are written quoted there (deploy/production.env.example).
#: Seconds one model call may take when neither ``KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`` nor the
#: model's ``timeout_seconds`` says: a server that never answers must not hold a run forever.
DEFAULT_PROVIDER_TIMEOUT_SECONDS = 120.0
SEMICOLON_LISTS = ("KNEO_SERV_API_KEYS", "KNEO_SERV_OIDC_ROLES")


def semicolon_list(env: Mapping[str, str], name: str) -> str:
    """``name``'s value without one pair of quotes around it all. A shell and Docker Compose
    remove the quotes of ``NAME='a;b'``; podman, ``docker run --env-file`` and kubectl's
    ``--from-env-file`` keep them, and no valid list starts and ends with the same quote
    (its last entry ends with a role or scope), so each reads the same list here."""
    value = (env.get(name) or "").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].strip()
    return value


#: The connections one process opens at most, by role, when ``KNEO_SERV_DATABASE_POOL_SIZE``
#: is unset: an API replica serves concurrent requests; a worker runs ``--concurrency`` runs
#: (this is for one) beside its lease, sweep and notification threads; a controller reconciles
#: and holds its lease; anything else (the CLI, the library) keeps SQLAlchemy's 5 + 10.
ROLE_POOL_SIZES: dict[str, int] = {"api": 10, "worker": 3, "controller": 3, "library": 15}


def _pooler(env: Mapping[str, str]) -> str:
    value = env.get("KNEO_SERV_DATABASE_POOLER", "").strip().lower()
    if value not in ("", "transaction"):
        raise ConfigError(
            f"KNEO_SERV_DATABASE_POOLER must be empty or transaction, got {value!r}",
            variable="KNEO_SERV_DATABASE_POOLER",
        )
    return value


#: The headers a trusted proxy may state the client in (``forwarded``: RFC 7239).
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")


def forwarded_allow_ips(
    raw: str, *, source: str = "KNEO_SERV_FORWARDED_ALLOW_IPS"
) -> tuple[str, ...]:
    """The proxies whose forwarded client address is believed: IP addresses and CIDR
    networks (comma- or space-separated, normalised), or ``*`` for any peer. ``source`` names
    the variable or flag in the error an entry that is neither gets."""
    found: list[str] = []
    for item in raw.replace(",", " ").split():
        if item == "*":
            found.append(item)
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{source} entry {item!r} is not an IP address, a CIDR network or *",
                variable=source,
            ) from None
    return tuple(found)


def forwarded_header(raw: str, *, source: str = "KNEO_SERV_FORWARDED_HEADER") -> str:
    """``x-forwarded-for`` (the default) or ``forwarded``: the one header read."""
    value = (raw or FORWARDED_HEADERS[0]).strip().lower()
    if value not in FORWARDED_HEADERS:
        raise ConfigError(
            f"{source} must be x-forwarded-for or forwarded, got {raw!r}", variable=source
        )
    return value


#: Where the rest of a run executes after a decision or a continue (``KNEO_SERV_CONTINUATIONS``):
#: ``auto``, on the workers when the service has any (its own, or ``--no-worker``'s), else in
#: the request; ``queue``, always on the workers; ``request``, always in the request.
CONTINUATION_MODES = ("auto", "queue", "request")


def _continuations(env: Mapping[str, str]) -> str:
    name = "KNEO_SERV_CONTINUATIONS"
    value = (env.get(name) or "auto").strip().lower()
    if value not in CONTINUATION_MODES:
        raise ConfigError(
            f"{name} must be one of {', '.join(CONTINUATION_MODES)}, got {value!r}", variable=name
        )
    return value


def _sqlite_synchronous(env: Mapping[str, str]) -> str:
    name = "KNEO_SERV_SQLITE_SYNCHRONOUS"
    value = (env.get(name) or "normal").strip().lower()
    if value not in ("normal", "full"):
        raise ConfigError(f"{name} must be normal or full, got {value!r}", variable=name)
    return value


_N = TypeVar("_N", int, float)


@overload
def _int(env: Mapping[str, str], name: str, default: int) -> int: ...
@overload
def _int(env: Mapping[str, str], name: str, default: None) -> int | None: ...
def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    return _nonnegative(env, name, default, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    return _nonnegative(env, name, default, float, "a number")


def _nonnegative(
    env: Mapping[str, str],
    name: str,
    default: _N | None,
    parse: Callable[[str], _N],
    what: str,
) -> _N | None:
    """Variable ``name`` parsed as ``what`` and zero or greater (unset or blank:
    ``default``): integers and numbers are read, and refused, the same way."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}", variable=name) from None
    if value < 0:
        raise ConfigError(f"{name} must be zero or greater, got {value}", variable=name)
    return value


def _limit(env: Mapping[str, str], name: str) -> float | None:
    """A model call's timeout: 120 s unless set; ``0`` is no limit."""
    return _float(env, name, DEFAULT_PROVIDER_TIMEOUT_SECONDS) or None


def _port(env: Mapping[str, str], name: str) -> int | None:
    value = _int(env, name, None)
    if value is not None and not 1 <= value <= 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}", variable=name)
    return value


def _num(env: Mapping[str, str], suffix: str, default: float) -> float:
    """``KNEO_SERV_NOTIFICATIONS_<suffix>`` as a number (``default`` when unset)."""
    value = _float(env, f"KNEO_SERV_NOTIFICATIONS_{suffix}", default)
    return default if value is None else value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).expanduser() if raw else None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


class _AskedNames(dict[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.names.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)


def _oidc(env: Mapping[str, str]) -> OidcSettings:
    """``KNEO_SERV_OIDC_*``; the issuer must be an https URL (http only on loopback)."""
    o = OidcSettings()
    issuer = (env.get("KNEO_SERV_OIDC_ISSUER") or "").strip().rstrip("/")
    if issuer and not (
        issuer.startswith("https://")
        or issuer.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    ):
        raise ConfigError(
            f"KNEO_SERV_OIDC_ISSUER must be an https:// URL (http:// only on loopback), "
            f"got {issuer!r}",
            variable="KNEO_SERV_OIDC_ISSUER",
        )
    scopes = tuple((env.get("KNEO_SERV_OIDC_SCOPES") or "").split()) or o.scopes
    settings = OidcSettings(
        issuer=issuer,
        audience=(env.get("KNEO_SERV_OIDC_AUDIENCE") or "").strip(),
        client_id=(env.get("KNEO_SERV_OIDC_CLIENT_ID") or "").strip(),
        client_secret_env=(env.get("KNEO_SERV_OIDC_CLIENT_SECRET_ENV") or "").strip(),
        scopes=scopes,
        user_claim=(env.get("KNEO_SERV_OIDC_USER_CLAIM") or "").strip() or o.user_claim,
        trust_unverified_email=_bool(env, "KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL", False),
        groups_claim=(env.get("KNEO_SERV_OIDC_GROUPS_CLAIM") or "").strip() or o.groups_claim,
        roles=semicolon_list(env, "KNEO_SERV_OIDC_ROLES"),
        clock_skew_seconds=_float(env, "KNEO_SERV_OIDC_CLOCK_SKEW_SECONDS", o.clock_skew_seconds)
        or 0.0,
        jwks_cache_seconds=_float(env, "KNEO_SERV_OIDC_JWKS_CACHE_SECONDS", o.jwks_cache_seconds)
        or o.jwks_cache_seconds,
    )
    if issuer and not settings.token_audience:
        raise ConfigError(
            "KNEO_SERV_OIDC_ISSUER is set but neither KNEO_SERV_OIDC_AUDIENCE nor "
            "KNEO_SERV_OIDC_CLIENT_ID says which audience a token must carry",
            variable="KNEO_SERV_OIDC_AUDIENCE",
        )
    return settings


_Counts = TypeVar("_Counts", Limits, CheckpointLimits, RetentionDays)


def _counts(env: Mapping[str, str], cls: type[_Counts], prefix: str) -> _Counts:
    """A group of whole-number settings, each ``KNEO_SERV_<prefix><FIELD>`` (the field's
    default when unset)."""
    default = cls()
    return cls(
        **{
            f.name: _int(env, f"KNEO_SERV_{prefix}{f.name.upper()}", getattr(default, f.name))
            for f in fields(cls)
        }
    )


def _notifications(env: Mapping[str, str]) -> NotificationSettings:
    """``KNEO_SERV_NOTIFICATIONS_*``; a zero lease or timeout, which would never let a
    delivery finish, means the default."""
    n = NotificationSettings()
    return NotificationSettings(
        poll_seconds=_num(env, "POLL_SECONDS", n.poll_seconds),
        max_attempts=_int(env, "KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS", n.max_attempts) or 1,
        backoff_seconds=_num(env, "BACKOFF_SECONDS", n.backoff_seconds),
        backoff_max_seconds=_num(env, "BACKOFF_MAX_SECONDS", n.backoff_max_seconds),
        lease_seconds=_num(env, "LEASE_SECONDS", n.lease_seconds) or n.lease_seconds,
        timeout_seconds=_num(env, "TIMEOUT_SECONDS", n.timeout_seconds) or n.timeout_seconds,
        concurrency=_int(env, "KNEO_SERV_NOTIFICATIONS_CONCURRENCY", n.concurrency) or 1,
        receiver_concurrency=_int(
            env, "KNEO_SERV_NOTIFICATIONS_RECEIVER_CONCURRENCY", n.receiver_concurrency
        )
        or 1,
        expiring_lead_seconds=_num(env, "EXPIRING_LEAD_SECONDS", n.expiring_lead_seconds),
        receivers=env.get("KNEO_SERV_NOTIFICATIONS_RECEIVERS", ""),
        people=env.get("KNEO_SERV_NOTIFICATIONS_PEOPLE", ""),
    )


def _profiles(env: Mapping[str, str]) -> Path:
    home_profiles = Path.home() / ".kneo_serv" / "profiles.json"
    return Path(env.get("KNEO_SERV_PROFILES_PATH") or home_profiles)


def _a2a_push(env: Mapping[str, str]) -> A2aPushSettings:
    return A2aPushSettings(
        _list(env, "KNEO_SERV_A2A_PUSH_DESTINATIONS"), env.get("KNEO_SERV_A2A_PUSH_SECRET", "")
    )


def _access_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The project, and who may call: API keys, OpenID, webhooks, Git, proxies."""
    keys = semicolon_list(env, "KNEO_SERV_API_KEYS")
    admin = env.get("KNEO_SERV_ADMIN_API_KEY", "")
    oidc = _oidc(env)
    auth_default = bool(keys.strip() or admin.strip() or oidc.enabled)
    project_config = env.get("KNEO_PROJECT_CONFIG")
    return {
        "project_config": Path(project_config) if project_config else None,
        "default_env": env.get("KNEO_ENV") or "dev",
        "spec_signing_key": env.get("KNEO_SERV_SPEC_SIGNING_KEY") or None,
        "auth_enabled": _bool(env, "KNEO_SERV_AUTH_ENABLED", auth_default),
        "api_keys": keys,
        "admin_api_key": admin,
        "client_api_key": env.get("KNEO_SERV_API_KEY", ""),
        "client_project": env.get("KNEO_SERV_PROJECT", ""),
        "oidc": oidc,
        "idempotency_key": env.get("KNEO_SERV_IDEMPOTENCY_KEY", ""),
        "webhook_secret": env.get("KNEO_SERV_WEBHOOK_SECRET") or None,
        "git_token_file": _path(env, "KNEO_SERV_GIT_TOKEN_FILE"),
        "policy_floors": _path(env, "KNEO_SERV_POLICY_FLOORS"),
        "git_token": env.get("KNEO_SERV_GIT_TOKEN", ""),
        "git_username": (env.get("KNEO_SERV_GIT_USERNAME") or "").strip(),
        "auth_max_failures": _int(env, "KNEO_SERV_AUTH_MAX_FAILURES", 10),
        "auth_failure_window_seconds": _float(env, "KNEO_SERV_AUTH_FAILURE_WINDOW_SECONDS", 60.0)
        or 60.0,
        "forwarded_allow_ips": forwarded_allow_ips(env.get("KNEO_SERV_FORWARDED_ALLOW_IPS", "")),
        "forwarded_header": forwarded_header(env.get("KNEO_SERV_FORWARDED_HEADER", "")),
    }


def _persistence_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The database, the CLI's profiles, the directories specs may come from."""
    return {
        "database_url": env.get("KNEO_SERV_DATABASE_URL") or None,
        "sqlite_synchronous": _sqlite_synchronous(env),
        "database_pool_size": _int(env, "KNEO_SERV_DATABASE_POOL_SIZE", None) or None,
        "database_pooler": _pooler(env),
        "profiles_path": _profiles(env),
        "spec_roots": tuple(Path(p) for p in _list(env, "KNEO_SERV_SPEC_ROOTS")),
    }


def _runtime_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Limits, and how model calls, MCP calls and the CLI's client retry and time out."""
    return {
        "limits": _counts(env, Limits, ""),
        "checkpoint": _counts(env, CheckpointLimits, "CHECKPOINT_"),
        "retention": _counts(env, RetentionDays, "RETENTION_"),
        "provider_retries": _int(env, "KNEO_SERV_PROVIDER_RETRIES", 0),
        "provider_retry_backoff_seconds": _float(
            env, "KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS", 0.25
        )
        or 0.0,
        "provider_timeout_seconds": _limit(env, "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS"),
        "mcp_retries": _int(env, "KNEO_SERV_MCP_RETRIES", 0),
        "mcp_retry_backoff_seconds": _float(env, "KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS", 0.25)
        or 0.0,
        "mcp_timeout_seconds": _float(env, "KNEO_SERV_MCP_TIMEOUT_SECONDS", None),
        "require_provider_secrets": _bool(env, "KNEO_SERV_REQUIRE_PROVIDER_SECRETS", False),
        "dummy_call_log": _path(env, "KNEO_DUMMY_CALL_LOG"),
        "client_timeout": _float(env, "KNEO_SERV_CLIENT_TIMEOUT", 120.0) or 120.0,
        "client_retries": _int(env, "KNEO_SERV_CLIENT_RETRIES", 2),
        "client_retry_backoff_seconds": _float(env, "KNEO_SERV_CLIENT_RETRY_BACKOFF_SECONDS", 0.25)
        or 0.0,
    }


def _observability_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Logs, traces, metrics, health checks and the build's revision."""
    return {
        "request_logs": _bool(env, "KNEO_SERV_REQUEST_LOGS", True),
        "log_level": (env.get("KNEO_SERV_LOG_LEVEL") or "INFO").upper(),
        "otel_enabled": _bool(env, "KNEO_SERV_OTEL_ENABLED", False),
        "otel_record_arguments": _bool(env, "KNEO_SERV_OTEL_RECORD_ARGUMENTS", False),
        "otel_record_results": _bool(env, "KNEO_SERV_OTEL_RECORD_RESULTS", False),
        "metrics_port": _port(env, "KNEO_SERV_METRICS_PORT"),
        "metrics_host": env.get("KNEO_SERV_METRICS_HOST") or "0.0.0.0",
        "prometheus_multiproc_dir": env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        "build_revision": (env.get("KNEO_SERV_BUILD_REVISION") or "").strip(),
        "health_providers": _list(env, "KNEO_SERV_HEALTH_PROVIDERS"),
        "health_mcp_secrets": _list(env, "KNEO_SERV_HEALTH_MCP_SECRETS"),
    }


def _background_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Notifications, sweeps, workers, continuations, the spec cache and the console."""
    return {
        "notifications": _notifications(env),
        "public_url": env.get("KNEO_SERV_PUBLIC_URL", "").strip().rstrip("/"),
        "decision_links": _bool(env, "KNEO_SERV_DECISION_LINKS", False),
        "decision_link_seconds": _int(env, "KNEO_SERV_DECISION_LINK_SECONDS", 86_400) or 86_400,
        "a2a_push": _a2a_push(env),
        "sweep_interval_seconds": _float(env, "KNEO_SERV_SWEEP_INTERVAL_SECONDS", None),
        "worker_lease_seconds": _float(env, "KNEO_SERV_WORKER_LEASE_SECONDS", 60.0) or 60.0,
        "worker_poll_seconds": _float(env, "KNEO_SERV_WORKER_POLL_SECONDS", 0.5) or 0.5,
        "continuations": _continuations(env),
        "spec_cache_entries": max(1, _int(env, "KNEO_SERV_SPEC_CACHE_ENTRIES", 256) or 256),
        "console_enabled": _bool(env, "KNEO_SERV_CONSOLE_ENABLED", True),
        "console_session_seconds": _int(env, "KNEO_SERV_CONSOLE_SESSION_SECONDS", 28_800) or 28_800,
        "console_secret": env.get("KNEO_SERV_CONSOLE_SECRET", ""),
    }


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Build with :meth:`from_env`; never read ``os.environ`` elsewhere."""

    # project
    project_config: Path | None = None
    default_env: str = "dev"
    spec_signing_key: str | None = None
    # auth
    auth_enabled: bool = False
    api_keys: str = ""
    admin_api_key: str = ""
    client_api_key: str = ""
    #: the project (tenant) the CLI's service mode acts in, when neither ``--project`` nor
    #: the profile names one (the service then takes the key's home project)
    client_project: str = ""
    #: people signing in through an OpenID provider (console) and its tokens (API, CLI)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    idempotency_key: str = ""
    #: the Git push webhook's secret when no ``webhook_secret_env`` names another variable
    webhook_secret: str | None = None
    #: the controller's Git credential (``kneo.controller.credentials``): a file holding the
    #: token (read at every fetch), or the token; the user name sent with it
    git_token_file: Path | None = None
    #: the controller's policy floors (``kneo.policy.floors``): minimums per environment the
    #: watched repository cannot lower; over ``controller.policy_floors``
    policy_floors: Path | None = None
    git_token: str = field(default="", repr=False)
    git_username: str = ""
    #: Failed sign-ins (a wrong API key, over the API, the console or MCP) a client address,
    #: or one key tried, may make within ``auth_failure_window_seconds`` before ``429``.
    auth_max_failures: int = 10
    auth_failure_window_seconds: float = 60.0
    #: proxies (IPs, CIDR networks, ``*``) whose forwarded client address and scheme are
    #: believed; ``()``: none, the TCP peer is the client (``kneo.service.proxies``)
    forwarded_allow_ips: tuple[str, ...] = ()
    #: the header those proxies write: ``x-forwarded-for`` (with ``X-Forwarded-Proto``) or
    #: ``forwarded`` (RFC 7239); the other one is never read
    forwarded_header: str = "x-forwarded-for"
    # persistence
    database_url: str | None = None
    #: SQLite ``PRAGMA synchronous`` in WAL mode: ``normal`` (commits survive a process crash
    #: or ``kill -9``; the last commits may be lost on power loss or an OS crash) or ``full``
    #: (fsync at every commit: power-loss durable too, ~0.2 ms more per commit here).
    sqlite_synchronous: str = "normal"
    #: PostgreSQL: the most connections this process opens (``KNEO_SERV_DATABASE_POOL_SIZE``);
    #: ``None``: its role's default (:data:`ROLE_POOL_SIZES`, see :meth:`pool_size`)
    database_pool_size: int | None = None
    #: ``transaction``: PostgreSQL is reached through a transaction-mode pooler (PgBouncer):
    #: no prepared statements, and the controller polls instead of ``LISTEN``
    database_pooler: str = ""
    #: what this process is (``api``, ``worker``, ``controller``, else ``library``): its
    #: command sets it, and it picks the default pool size
    process_role: str = "library"
    profiles_path: Path = field(
        default_factory=lambda: Path.home() / ".kneo_serv" / "profiles.json"
    )
    #: Directories a ``spec_path`` on the HTTP API may name a file under (``()``: the
    #: project root); anything else is ``403 spec_path_not_allowed``.
    spec_roots: tuple[Path, ...] = ()
    # limits
    limits: Limits = field(default_factory=Limits)
    checkpoint: CheckpointLimits = field(default_factory=CheckpointLimits)
    retention: RetentionDays = field(default_factory=RetentionDays)
    # runtime reliability
    provider_retries: int = 0
    provider_retry_backoff_seconds: float = 0.25
    #: seconds one model call may take (per attempt); ``None``: no limit (set to 0)
    provider_timeout_seconds: float | None = DEFAULT_PROVIDER_TIMEOUT_SECONDS
    mcp_retries: int = 0
    mcp_retry_backoff_seconds: float = 0.25
    mcp_timeout_seconds: float | None = None
    require_provider_secrets: bool = False
    #: ``dummy`` provider: append one JSON line per model call here (tests across processes).
    dummy_call_log: Path | None = None
    # CLI client
    client_timeout: float = 120.0
    client_retries: int = 2
    client_retry_backoff_seconds: float = 0.25
    # observability
    request_logs: bool = True
    log_level: str = "INFO"
    otel_enabled: bool = False
    otel_record_arguments: bool = False
    otel_record_results: bool = False
    #: serve ``/metrics`` unauthenticated on this port too (``None``: only the API's route,
    #: which needs ``metrics:read``); how ``kneo worker`` and ``kneo controller run`` expose theirs
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    #: prometheus-client's multiprocess directory: not used to add processes up (each reports
    #: itself); set, it is only warned about at start (kneo.metrics.start_process)
    prometheus_multiproc_dir: str | None = None
    #: the source revision this build was made from (``kneo_build_info``; the image sets it)
    build_revision: str = ""
    health_providers: tuple[str, ...] = ()
    health_mcp_secrets: tuple[str, ...] = ()
    # notifications
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    #: the console's public base URL for links in notifications (``https://kneo.example``)
    public_url: str = ""
    #: ``human.requested`` notifications carry a signed one-time decision link per request
    decision_links: bool = False
    decision_link_seconds: int = 86_400
    a2a_push: A2aPushSettings = field(default_factory=A2aPushSettings)
    # background work
    sweep_interval_seconds: float | None = None
    worker_lease_seconds: float = 60.0
    worker_poll_seconds: float = 0.5
    #: where a decision's or a continue's run executes: ``auto``, ``queue`` or ``request``
    #: (:data:`CONTINUATION_MODES`)
    continuations: str = "auto"
    #: compiled workflows and prepared specs kept per process (least recently used dropped)
    spec_cache_entries: int = 256
    # reviewer console (``/ui``)
    console_enabled: bool = True
    #: how long a console sign-in lasts (the signed cookie's lifetime), in seconds
    console_session_seconds: int = 28_800
    #: signs console session cookies; empty: a random secret per process (see docs/console.md)
    console_secret: str = ""
    # the raw environment, for secret lookups by *name* (values never logged)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env: Mapping[str, str] = dict(os.environ) if environ is None else environ
        return cls(
            **_access_settings(env),
            **_persistence_settings(env),
            **_runtime_settings(env),
            **_observability_settings(env),
            **_background_settings(env),
            environ=dict(env),
        )

    @classmethod
    def variable_names(cls) -> frozenset[str]:
        """Every variable :meth:`from_env` reads, found by reading an empty environment that
        records each name asked for (so a new setting is known here with no second list).
        Hence: read every variable unconditionally (a test compares this with the source)."""
        asked = _AskedNames()
        cls.from_env(asked)
        return frozenset(asked.names)

    def pool_size(self) -> int:
        """The most PostgreSQL connections this process opens: the one setting, else the
        role's default."""
        return self.database_pool_size or ROLE_POOL_SIZES.get(self.process_role, 15)

    def secret(self, env_var: str) -> str | None:
        """The value of a variable the *operator's* configuration names (a receiver's, the
        controller's, the identity provider's); callers must never log it. A secret a spec
        names is read through :func:`kneo.kernel.secret`, which asks the run's grant."""
        value = self.environ.get(env_var)
        return value or None

    def secret_values(self) -> list[str]:
        """The values of Kneo's own secrets (API keys, the signing and console secrets, the
        database URL and its password), for redaction by value; never logged."""
        from urllib.parse import urlsplit

        values = [self.admin_api_key, self.client_api_key, self.console_secret, self.git_token]
        values += [self.spec_signing_key or "", self.a2a_push.secret, self.webhook_secret or ""]
        if self.oidc.client_secret_env:
            values.append(self.environ.get(self.oidc.client_secret_env, ""))
        for entry in self.api_keys.split(";"):
            parts = entry.strip().split(":")
            if len(parts) >= 2:
                values.append(parts[1].strip())
        if self.database_url:
            values.append(self.database_url)
            with contextlib.suppress(ValueError):
                values.append(urlsplit(self.database_url).password or "")
        return [v for v in values if v]

    def as_public_dict(self) -> dict[str, Any]:
        """Settings without secret values, for ``config show`` and diagnostics."""
        hidden = {
            "api_keys",
            "admin_api_key",
            "client_api_key",
            "webhook_secret",
            "spec_signing_key",
            "console_secret",
            "git_token",
            "environ",
        }

        return {
            f.name: ("[REDACTED]" if getattr(self, f.name) else None)
            if f.name in hidden
            else redact_text(str(getattr(self, f.name)))  # a database URL's password
            for f in fields(self)
            if f.name != "environ"
        }
