"""Check a deployment env file before anything starts (``kneo config check-env``).

The file is the one the Compose stack reads (``deploy/production.env``) or any ``KEY=VALUE``
file a deployment feeds to Kneo. Findings come from the code that reads the variables at
start-up, never from a second copy of the rules: names from
:meth:`kneo.settings.Settings.variable_names`, values through :meth:`Settings.from_env`, API
keys through the service's own parser. On top of that it checks what start-up cannot know:
what a deployment *shape* requires, placeholders left in, weak or reused secrets.

Nothing here prints a value: findings name the variable and the line; a message taken from
code that may quote a value (a Settings error) is scrubbed of the file's secrets first.

Two checks import what they check with (:mod:`kneo.service.auth`, +0.70 s: FastAPI and
the platform; :mod:`kneo.store`, +0.24 s: SQLAlchemy): a check of a worker's or the
controller's environment needs neither.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kneo.errors import ConfigError
from kneo.settings import SEMICOLON_LISTS, Settings, semicolon_list

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: Deployment shapes (docs/deployment.md): the Compose stack, PostgreSQL scale-out (e.g.
#: Kubernetes) and one machine on SQLite.
SHAPES = ("compose", "scale-out", "single")
Shape = Literal["compose", "scale-out", "single"]

#: Variables ``deploy/docker-compose.yml`` reads itself (interpolation); Kneo never does.
COMPOSE_VARIABLES: dict[str, str] = {
    "COMPOSE_FILE": "which Compose file `docker compose` uses from the repository root",
    "COMPOSE_PROJECT_NAME": "Compose project name (container, volume and network prefix)",
    "POSTGRES_USER": "database user the `db` service creates",
    "POSTGRES_PASSWORD": "that user's password",
    "POSTGRES_DB": "database the `db` service creates",
    "KNEO_COMPOSE_IMAGE": "image name:tag built and run (default kneo:local)",
    "KNEO_COMPOSE_ENV_FILE": "env file handed to the Kneo containers (default production.env)",
    "KNEO_COMPOSE_API_PORT": "host port on 127.0.0.1 for the API (default 8000)",
    "KNEO_COMPOSE_API_REPLICAS": "additional API replicas without a host port (default 0)",
    "KNEO_COMPOSE_WORKER_REPLICAS": "queue worker containers (default 1)",
    "KNEO_COMPOSE_CONTROLLER_REPLICAS": "controller containers; one leads (default 1)",
    "KNEO_COMPOSE_GITOPS_DIR": "host path of the Git repository mounted at /gitops",
    "KNEO_COMPOSE_GITOPS_REPO": "what the controller watches: /gitops or a Git URL",
    "KNEO_COMPOSE_TRUSTED_KEYS": "host directory of trusted public keys (*.pub)",
}

#: Variables whose whole value is a secret.
SECRET_VARIABLES = frozenset(
    {
        "KNEO_SERV_ADMIN_API_KEY",
        "KNEO_SERV_API_KEY",
        "KNEO_SERV_SPEC_SIGNING_KEY",
        "POSTGRES_PASSWORD",
    }
)
#: The secrets each server role reads, by role (the Kubernetes manifests and the Helm chart
#: hand a role these keys of the Secret and no other; docs/deployment.md, "Secrets per role").
#: The API authenticates callers (API keys, the console's cookie, the Git host's webhook),
#: signs bundles and seals A2A push configs; the workers' sweeps sign decision links in
#: notifications and unseal push configs; the controller fetches Git; a migration needs the
#: database only. Model providers' keys (the API's synchronous runs and the workers) are named
#: by the project config, not here. tests/deploy/test_helm_chart.py checks this table against
#: every secret Settings reads.
ROLE_SECRETS: dict[str, tuple[str, ...]] = {
    "api": (
        "KNEO_SERV_DATABASE_URL",
        "KNEO_SERV_API_KEYS",
        "KNEO_SERV_ADMIN_API_KEY",
        "KNEO_SERV_CONSOLE_SECRET",
        "KNEO_SERV_WEBHOOK_SECRET",
        "KNEO_SERV_SPEC_SIGNING_KEY",
        "KNEO_SERV_A2A_PUSH_SECRET",
    ),
    "worker": ("KNEO_SERV_DATABASE_URL", "KNEO_SERV_CONSOLE_SECRET", "KNEO_SERV_A2A_PUSH_SECRET"),
    "controller": ("KNEO_SERV_DATABASE_URL", "KNEO_SERV_GIT_TOKEN"),
    "migrate": ("KNEO_SERV_DATABASE_URL",),
}
#: Secrets of a client of the service (the CLI's own key), which no server role reads.
CLIENT_SECRETS: tuple[str, ...] = ("KNEO_SERV_API_KEY",)
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|HMAC)", re.I)
#: What a value left from an example or a tutorial looks like.
_PLACEHOLDER = re.compile(
    r"replace[-_ ]|change[-_]?me|placeholder|example|<[^>]*>|\.\.\.|xxx|todo|"
    r"^(secret|password|token|admin|test|demo|default)$|"
    r"^(OP_TOKEN|REV_TOKEN|VIEW_TOKEN|ADMIN_TOKEN|SPEC_SIGNING_HMAC_KEY|DB_PASSWORD)$",
    re.I,
)
MIN_SECRET_CHARS = 16
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TUTORIAL_ROLES = ("operator", "reviewer", "viewer")


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    code: str
    message: str
    variable: str | None = None
    line: int | None = None

    def render(self) -> str:
        where = " ".join(
            part for part in (f"line {self.line}" if self.line else "", self.variable or "") if part
        )
        return f"{self.severity}[{self.code}] {where + ': ' if where else ''}{self.message}"


@dataclass
class EnvFile:
    """``KEY=VALUE`` lines as Compose reads them: values, their line numbers, syntax findings."""

    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    quoted: set[str] = field(default_factory=set)
    commented: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> EnvFile:
        env = cls()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.removeprefix("export ").partition("=")
            name = name.strip()
            if not sep or not _NAME.match(name):
                # The line is not echoed: it may be a secret pasted without its name.
                env.findings.append(
                    Finding("error", "env_syntax", "not a NAME=value line", line=number)
                )
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
                env.quoted.add(name)
            elif " #" in value:
                value = value.split(" #", 1)[0].rstrip()
                env.commented.add(name)
            if name in env.values:
                env.findings.append(
                    Finding(
                        "warning",
                        "env_duplicate",
                        f"set again (first on line {env.lines[name]}); the last one wins",
                        name,
                        number,
                    )
                )
            env.values[name] = value
            env.lines[name] = number
        return env


@dataclass(frozen=True)
class Report:
    shape: str
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "ok": self.errors == 0,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [asdict(f) for f in self.findings],
        }


def check_env_file(path: Path, shape: Shape = "compose") -> Report:
    """Read ``path`` and check it; an unreadable file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}", file=str(path)) from None
    return check_env(EnvFile.parse(text), shape)


def check_env(env: EnvFile, shape: Shape = "compose") -> Report:
    """Every finding for ``env`` under ``shape``; none carries a value."""
    if shape not in SHAPES:
        raise ConfigError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})", field="shape")
    return Report(shape, (*env.findings, *_Checker(env, shape).run()))


class _Checker:
    def __init__(self, env: EnvFile, shape: Shape) -> None:
        self.env = env
        self.values = env.values
        self.shape = shape
        self.found: list[Finding] = []
        self.unknown: set[str] = set()
        self.secrets = sorted(_secret_values(env.values), key=len, reverse=True)

    def add(
        self,
        severity: Literal["error", "warning"],
        code: str,
        message: str,
        name: str | None = None,
    ) -> None:
        self.found.append(Finding(severity, code, message, name, self.env.lines.get(name or "")))

    def run(self) -> list[Finding]:
        settings = self.names_and_values()
        self.quoting()
        if settings is not None:
            self.auth(settings)
            self.database(settings)
            self.telemetry(settings)
        if self.shape == "compose":
            self.compose()
        self.placeholders()
        return self.found

    # ---------------------------------------------------------------- names and values

    def names_and_values(self) -> Settings | None:
        known = Settings.variable_names()
        candidates = sorted(known | set(COMPOSE_VARIABLES))
        parsed: dict[str, str] = {}
        for name, value in self.values.items():
            if name in known:
                try:  # one variable at a time, so every bad value is reported
                    Settings.from_env({name: value})
                except ConfigError as exc:
                    self.add(
                        "error",
                        "env_invalid_value",
                        self.scrub(str(exc)).removeprefix(f"{name} "),
                        name,
                    )
                    continue
                parsed[name] = value
            elif name.startswith(("KNEO_SERV_", "KNEO_COMPOSE_")) and name not in COMPOSE_VARIABLES:
                close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]}?" if close else ""
                self.unknown.add(name)
                self.add("error", "env_unknown_variable", f"no such variable{hint}", name)
        for name in (
            "KNEO_COMPOSE_API_REPLICAS",
            "KNEO_COMPOSE_WORKER_REPLICAS",
            "KNEO_COMPOSE_CONTROLLER_REPLICAS",
            "KNEO_COMPOSE_API_PORT",
        ):
            raw = self.values.get(name)
            if raw and not (
                raw.isdigit() and (name != "KNEO_COMPOSE_API_PORT" or 0 < int(raw) < 65536)
            ):
                kind = "a port number" if name.endswith("PORT") else "a whole number"
                self.add("error", "env_invalid_value", f"must be {kind}, got {raw!r}", name)
        try:
            return Settings.from_env(parsed)
        except ConfigError:  # a combination already reported above
            return None

    def quoting(self) -> None:
        """Env-file dialects differ: Compose strips quotes and trailing comments, podman's
        and kubectl's ``--env-file`` keep them as part of the value. The ``;`` lists are the
        exception: quoted, a shell can source the file, and Kneo drops the quotes a dialect
        kept (:func:`kneo.settings.semicolon_list`)."""
        for name in sorted(self.env.quoted - set(SEMICOLON_LISTS)):
            self.add(
                "warning",
                "env_quoted_value",
                "quoted value: Docker Compose strips the quotes, podman and kubectl keep "
                "them; write the value unquoted",
                name,
            )
        for name in sorted(self.env.commented):
            self.add(
                "warning",
                "env_inline_comment",
                "trailing comment: Docker Compose drops it, podman and kubectl keep it as "
                "part of the value; put comments on their own line",
                name,
            )

    # ---------------------------------------------------------------- shape requirements

    def auth(self, settings: Settings) -> None:
        from kneo.service.auth import parse_api_keys

        try:
            keys = parse_api_keys(settings.api_keys, settings.admin_api_key)
        except ConfigError as exc:
            self.add("error", "env_invalid_value", self.scrub(str(exc)), "KNEO_SERV_API_KEYS")
            return
        networked = self.shape != "single"
        if not settings.auth_enabled:
            self.add(
                "error" if networked else "warning",
                "env_auth_disabled",
                "auth is off: anyone who reaches the port may run and approve workflows; "
                "set KNEO_SERV_API_KEYS",
                "KNEO_SERV_AUTH_ENABLED" if "KNEO_SERV_AUTH_ENABLED" in self.values else None,
            )
            return
        if not keys:
            self.add(
                "error",
                "env_auth_without_keys",
                "auth is on but no API keys are configured: the service refuses to start; "
                "set KNEO_SERV_API_KEYS and/or KNEO_SERV_ADMIN_API_KEY",
                "KNEO_SERV_AUTH_ENABLED",
            )
            return
        named = {
            role.strip()
            for chunk in settings.api_keys.split(";")
            for role in chunk.split(":", 2)[-1].split(",")
        }
        missing = [role for role in _TUTORIAL_ROLES if role not in named]
        if missing and networked:
            self.add(
                "warning",
                "env_role_missing",
                f"no key with the {', '.join(missing)} role: the deployment smoke and "
                "the tutorial use one key per role",
                "KNEO_SERV_API_KEYS",
            )
        self.reused_keys()

    def reused_keys(self) -> None:
        seen: dict[str, str] = {}
        for label, value in _api_key_values(self.values):
            if value in seen:
                self.add(
                    "error",
                    "env_reused_secret",
                    f"{label} uses the same key as {seen[value]}: one key per caller, "
                    "or audit events cannot tell them apart",
                    "KNEO_SERV_API_KEYS",
                )
            else:
                seen[value] = label

    def database(self, settings: Settings) -> None:
        url_text = settings.database_url
        name = "KNEO_SERV_DATABASE_URL"
        if not url_text:
            if self.shape != "single":
                self.add(
                    "error",
                    "env_database_missing",
                    "not set: this shape needs PostgreSQL (e.g. postgresql+psycopg://"
                    "USER:PASSWORD@db:5432/DB); without it each process writes its own SQLite",
                    name,
                )
            return
        from kneo.store import parse_database_url

        try:
            url = parse_database_url(url_text)
        except ConfigError as exc:
            self.add("error", "env_invalid_value", exc.message.removeprefix(f"{name} "), name)
            return
        backend, _, driver = url.drivername.partition("+")
        if backend == "sqlite":
            if self.shape != "single":
                self.add(
                    "error",
                    "env_database_sqlite",
                    "SQLite cannot be shared by containers or hosts: use PostgreSQL",
                    name,
                )
            return
        if backend != "postgresql":
            self.add(
                "error",
                "env_invalid_value",
                f"unsupported database {backend!r}: use postgresql+psycopg://",
                name,
            )
            return
        if driver != "psycopg":
            self.add(
                "error",
                "env_invalid_value",
                f"driver {driver or 'default (psycopg2)'!r} is not installed: write postgresql+psycopg://",
                name,
            )
        if self.shape == "compose":
            self.compose_database(url)

    def compose_database(self, url: URL) -> None:
        name = "KNEO_SERV_DATABASE_URL"
        if url.host != "db":
            self.add(
                "warning",
                "env_database_host",
                f"host {url.host!r} is not the stack's `db` service",
                name,
            )
            return
        expected = {
            "user": ("POSTGRES_USER", url.username),
            "password": ("POSTGRES_PASSWORD", url.password),
            "database": ("POSTGRES_DB", url.database),
        }
        for part, (variable, actual) in expected.items():
            wanted = self.values.get(variable)
            if wanted and actual != wanted:
                self.add(
                    "error", "env_database_mismatch", f"its {part} differs from {variable}", name
                )

    def telemetry(self, settings: Settings) -> None:
        for on, variable in (
            (settings.otel_record_arguments, "KNEO_SERV_OTEL_RECORD_ARGUMENTS"),
            (settings.otel_record_results, "KNEO_SERV_OTEL_RECORD_RESULTS"),
        ):
            if on:
                self.add(
                    "warning",
                    "env_records_payloads",
                    "tool payloads are recorded in traces: keep it off unless the data "
                    "was classified for it",
                    variable,
                )

    def compose(self) -> None:
        for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
            if not self.values.get(variable):
                self.add(
                    "error", "env_missing", "required by the Compose stack's `db` service", variable
                )
        keys = self.values.get("KNEO_COMPOSE_TRUSTED_KEYS")
        if not keys:
            self.add(
                "error",
                "env_controller_keys_missing",
                "the controller needs a directory of trusted public keys (*.pub) to verify "
                "bundles; it never takes keys from the repository it watches",
                "KNEO_COMPOSE_TRUSTED_KEYS",
            )
        elif Path(keys).parts[-2:] == ("examples", "keys"):
            self.add(
                "warning",
                "env_demo_keys",
                "trusts the published demo key: anyone can sign bundles it accepts; use "
                "your CI's public key for anything but a trial",
                "KNEO_COMPOSE_TRUSTED_KEYS",
            )

    # ---------------------------------------------------------------- secrets

    def scrub(self, text: str) -> str:
        """A message from code that may quote a value (Settings, the key parser): no secrets."""
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def placeholders(self) -> None:
        for label, variable, value in _secrets(self.values):
            if variable in self.unknown:
                continue
            if _PLACEHOLDER.search(value):
                self.add(
                    "error",
                    "env_placeholder",
                    f"{label} still holds a placeholder; generate one with `openssl rand -hex 32`",
                    variable,
                )
            elif len(value) < MIN_SECRET_CHARS:
                self.add(
                    "error",
                    "env_weak_secret",
                    f"{label} is shorter than {MIN_SECRET_CHARS} characters; generate one "
                    "with `openssl rand -hex 32`",
                    variable,
                )


def _api_key_values(values: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """``(label, key)`` for every API key in the file (entry names, never keys, as labels)."""
    for index, chunk in enumerate(
        p.strip() for p in semicolon_list(values, "KNEO_SERV_API_KEYS").split(";")
    ):
        parts = chunk.split(":", 2)
        if len(parts) == 3 and parts[1]:
            yield f"API key {parts[0].strip() or '#' + str(index + 1)!r}", parts[1]
    if values.get("KNEO_SERV_ADMIN_API_KEY"):
        yield "the admin key", values["KNEO_SERV_ADMIN_API_KEY"]


def _secrets(values: Mapping[str, str]) -> Iterable[tuple[str, str, str]]:
    """``(label, variable, value)`` for every secret in the file."""
    for label, key in _api_key_values(values):
        yield (
            label,
            "KNEO_SERV_API_KEYS" if label != "the admin key" else "KNEO_SERV_ADMIN_API_KEY",
            key,
        )
    url = values.get("KNEO_SERV_DATABASE_URL", "")
    password = re.match(r"^[^:/]+://[^:@/]*:([^@/]*)@", url)
    if password and password.group(1):
        yield "the database password", "KNEO_SERV_DATABASE_URL", password.group(1)
    for name, value in values.items():
        if name in ("KNEO_SERV_API_KEYS", "KNEO_SERV_ADMIN_API_KEY", "KNEO_SERV_DATABASE_URL"):
            continue
        if value and (
            name in SECRET_VARIABLES
            or (_SECRET_NAME.search(name) and not name.startswith("KNEO_COMPOSE_"))
        ):
            yield "the value", name, value


def _secret_values(values: Mapping[str, str]) -> set[str]:
    found = {value for _, _, value in _secrets(values)}
    if values.get("KNEO_SERV_DATABASE_URL"):
        found.add(values["KNEO_SERV_DATABASE_URL"])
    return {v for v in found if v}
