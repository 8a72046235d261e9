"""Named service connections for the CLI, and which service (if any) a command talks to.

Profiles live in one JSON file (``~/.kneo_serv/profiles.json`` or
``KNEO_SERV_PROFILES_PATH``), written atomically with mode 0600 because it holds API keys.
Nothing here ever returns a stored key for display: :meth:`ProfileStore.describe` reports
only whether a profile is authenticated.

Service-connection precedence (:func:`resolve_connection`):

1. ``--service-url`` (with the API key from ``--profile`` when given, else
   ``KNEO_SERV_API_KEY``);
2. an explicit ``--profile``;
3. ``service.default_url`` from ``.kneo/config.yaml`` (key from ``KNEO_SERV_API_KEY``);
4. the active profile;
5. ``None``: run in-process.

:func:`project_default_url` imports :mod:`kneo.spec.project` where it reads the project
config (+0.13 s with pydantic): a command given ``--service-url`` or ``--profile`` never does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from kneo.cli.device_login import device_sign_in, fresh
from kneo.cli.files import write_atomic
from kneo.cli.output import Output, options
from kneo.documents import load_json_file
from kneo.errors import ConfigError, NotFound, SpecError
from kneo.names import NAME_PATTERN
from kneo.projects import check_project_name
from kneo.settings import Settings

_NAME = re.compile(NAME_PATTERN)  # profile names follow the same rule


@dataclass(frozen=True)
class Profile:
    name: str
    service_url: str
    api_key: str | None = None
    #: the project (tenant) its commands act in; ``None``: the key's home project
    project: str | None = None

    def __repr__(self) -> str:  # keep keys out of tracebacks and debug output
        return (
            f"Profile(name={self.name!r}, service_url={self.service_url!r}, "
            f"project={self.project!r})"
        )


@dataclass(frozen=True)
class Connection:
    """Where a service-backed command goes; ``source`` says which rule chose it."""

    url: str
    api_key: str | None
    source: str
    profile: str | None = None
    #: the project (tenant) to send as ``X-Kneo-Project``; ``None``: the key's home project
    project: str | None = None

    def __repr__(self) -> str:
        return (
            f"Connection(url={self.url!r}, source={self.source!r}, profile={self.profile!r}, "
            f"project={self.project!r})"
        )


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", url):
        raise ConfigError(f"service URL must start with http:// or https://, got {url!r}")
    return url


class ProfileStore:
    """The profiles file: ``{"active": name|null, "profiles": {name: {...}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"active": None, "profiles": {}}
        try:
            data = load_json_file(self.path, what="profiles file")
        except SpecError as exc:
            raise ConfigError(
                f"cannot read profiles file {self.path}: {exc.message}", reason=exc.code
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
            raise ConfigError(f"profiles file {self.path} is not a profiles document")
        data.setdefault("profiles", {})
        data.setdefault("active", None)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        write_atomic(self.path, text, mode=0o600, dir_mode=0o700)  # it holds keys

    def get(self, name: str) -> Profile:
        """The profile; one signed in at the OpenID provider carries its access token as
        its key, refreshed first (and saved) when it is about to expire."""
        data = self._load()
        entry = data["profiles"].get(name)
        if not isinstance(entry, dict):
            raise NotFound(f"no service profile named {name!r} (see 'kneo config profile list')")
        oidc = entry.get("oidc")
        if isinstance(oidc, dict) and oidc.get("access_token"):
            renewed = fresh(oidc, str(oidc.get("client_id")), oidc.get("resource"))
            if renewed is not None:
                entry["oidc"] = oidc = {**oidc, **renewed}
                self._save(data)
            key: str | None = str(oidc["access_token"])
        else:
            key = entry.get("api_key") or None
        project = entry.get("project") or None
        return Profile(name, str(entry.get("service_url", "")), key, project)

    def signed_in(
        self,
        name: str,
        service_url: str,
        oidc: dict[str, Any],
        *,
        activate: bool = True,
        project: str | None = None,
    ) -> Profile:
        """Store a person's OpenID sign-in (tokens and where to renew them) as ``name``."""
        self.set(name, service_url, None, activate=activate, project=project)
        data = self._load()
        data["profiles"][name]["oidc"] = oidc
        self._save(data)
        return self.get(name)

    def active_name(self) -> str | None:
        data = self._load()
        active = data.get("active")
        return active if isinstance(active, str) and active in data["profiles"] else None

    def active(self) -> Profile | None:
        name = self.active_name()
        return self.get(name) if name else None

    def set(
        self,
        name: str,
        service_url: str,
        api_key: str | None = None,
        *,
        activate: bool = True,
        project: str | None = None,
    ) -> Profile:
        if not _NAME.match(name):
            raise ConfigError(f"profile name {name!r} must be letters, digits, '.', '_' or '-'")
        data = self._load()
        entry: dict[str, Any] = {"service_url": _check_url(service_url)}
        if api_key:
            entry["api_key"] = api_key
        if project:
            entry["project"] = check_project_name(project)
        data["profiles"][name] = entry
        if activate:
            data["active"] = name
        self._save(data)
        return self.get(name)

    def use(self, name: str) -> Profile:
        profile = self.get(name)
        data = self._load()
        data["active"] = name
        self._save(data)
        return profile

    def delete(self, name: str) -> None:
        data = self._load()
        if name not in data["profiles"]:
            raise NotFound(f"no service profile named {name!r}")
        del data["profiles"][name]
        if data.get("active") == name:
            data["active"] = None
        self._save(data)

    def names(self) -> list[str]:
        return sorted(self._load()["profiles"])

    def describe(self, name: str) -> dict[str, Any]:
        """What a user may see about a profile: never the key itself."""
        profile = self.get(name)
        oidc = self._load()["profiles"][name].get("oidc")
        return {
            "name": profile.name,
            "service_url": profile.service_url,
            "authenticated": bool(profile.api_key),
            "active": self.active_name() == name,
            "project": profile.project,
            **({"sign_in": "oidc_device", "issuer": oidc.get("issuer")} if oidc else {}),
        }


def resolve_connection(
    *,
    service_url: str | None,
    profile: str | None,
    settings: Settings,
    project_default_url: str | None = None,
    project: str | None = None,
) -> Connection | None:
    """Apply the documented precedence; ``None`` means run locally. The project (tenant):
    ``project`` (``--project``), else ``KNEO_SERV_PROJECT``, else the profile's, else none
    (the service takes the key's home project)."""
    store = ProfileStore(settings.profiles_path)
    env_key = settings.client_api_key or None
    asked = project or settings.client_project or None
    if asked is not None:
        check_project_name(asked)
    named = store.get(profile) if profile else None
    if service_url:
        key = (named.api_key if named else None) or env_key
        chosen = asked or (named.project if named else None)
        return Connection(_check_url(service_url), key, "service_url", profile, chosen)
    if named is not None:
        url, key = _check_url(named.service_url), named.api_key or env_key
        return Connection(url, key, "profile", named.name, asked or named.project)
    if project_default_url:
        return Connection(_check_url(project_default_url), env_key, "project_config", None, asked)
    active = store.active()
    if active is not None:
        url, key = _check_url(active.service_url), active.api_key or env_key
        return Connection(url, key, "active_profile", active.name, asked or active.project)
    return None


def project_default_url(settings: Settings) -> str | None:
    """``service.default_url`` from the discovered project config, if any."""
    from kneo.spec.project import find_project_config, load_project_config

    path = find_project_config(Path.cwd(), settings)
    if path is None:
        return None
    config = load_project_config(path)
    service = getattr(config, "service", None)
    return getattr(service, "default_url", None) if service is not None else None


# ---------------------------------------------------------------- kneo config profile ...

profile_app = typer.Typer(no_args_is_help=True, help="Manage service connection profiles")


def _store() -> ProfileStore:
    return ProfileStore(Settings.from_env().profiles_path)


def _emit(out: Output, data: dict[str, Any], text: str) -> None:
    if not out.printed_json(data):
        typer.echo(text)


@profile_app.command("set")
@options
def profile_set(
    name: str,
    service_url: str = typer.Option(..., "--service-url"),
    api_key: str | None = typer.Option(None, "--api-key"),
    project: str | None = typer.Option(
        None, "--project", help="The project its commands act in (default: the key's home)"
    ),
    activate: bool = typer.Option(True, "--activate/--no-activate"),
    out: Output = Output(),
) -> None:
    """Create or update a named service profile."""
    store = _store()
    store.set(name, service_url, api_key, activate=activate, project=project)
    info = store.describe(name)
    auth = "authenticated" if info["authenticated"] else "no API key"
    where = f", project {info['project']}" if info["project"] else ""
    _emit(
        out,
        info,
        f"profile {name}: {info['service_url']} ({auth}{where})"
        + (" [active]" if info["active"] else ""),
    )


@profile_app.command("login")
@options
def profile_login(
    name: str,
    service_url: str = typer.Option(..., "--service-url"),
    issuer: str = typer.Option(..., "--issuer", help="The OpenID provider's issuer URL"),
    client_id: str = typer.Option(..., "--client-id", help="The CLI's public client at it"),
    scope: str = typer.Option("openid email profile offline_access", "--scope"),
    resource: str | None = typer.Option(
        None, "--resource", help="The API's resource indicator, where the provider wants one"
    ),
    project: str | None = typer.Option(
        None, "--project", help="The project its commands act in (default: the key's home)"
    ),
    activate: bool = typer.Option(True, "--activate/--no-activate"),
    out: Output = Output(),
) -> None:
    """Sign a profile in at the OpenID provider with the device authorization grant: open the
    printed address, enter the code, and the profile keeps a refreshable token (never shown)."""
    if project is not None:
        check_project_name(project)  # before the person is sent to sign in
    tokens = device_sign_in(issuer, client_id, scope, resource=resource)
    store = _store()
    store.signed_in(
        name,
        service_url,
        {"issuer": issuer, "client_id": client_id, "resource": resource, **tokens},
        activate=activate,
        project=project,
    )
    info = store.describe(name)
    _emit(
        out,
        info,
        f"profile {name}: signed in at {issuer}" + (" [active]" if info["active"] else ""),
    )


@profile_app.command("use")
@options
def profile_use(name: str, out: Output = Output()) -> None:
    """Set the active service profile."""
    store = _store()
    store.use(name)
    _emit(out, store.describe(name), f"active profile: {name}")


@profile_app.command("list")
@options
def profile_list(out: Output = Output()) -> None:
    """List configured service profiles without exposing API keys."""
    store = _store()
    rows = [store.describe(n) for n in store.names()]
    lines = [
        f"{'*' if r['active'] else ' '} {r['name']}  {r['service_url']}  "
        f"{'authenticated' if r['authenticated'] else 'no API key'}"
        + (f"  project {r['project']}" if r["project"] else "")
        for r in rows
    ]
    _emit(
        out,
        {"profiles": rows, "active": store.active_name()},
        "\n".join(lines) if lines else "no profiles (add one with 'kneo config profile set')",
    )


@profile_app.command("show")
@options
def profile_show(name: str | None = typer.Option(None, "--name"), out: Output = Output()) -> None:
    """Show one service profile without exposing its API key."""
    store = _store()
    chosen = name or store.active_name()
    if chosen is None:
        raise NotFound("no active profile; pass --name or run 'kneo config profile use NAME'")
    info = store.describe(chosen)
    _emit(out, info, "\n".join(f"{k}: {v}" for k, v in info.items()))


@profile_app.command("delete")
def profile_delete(name: str) -> None:
    """Delete a service profile."""
    _store().delete(name)
    typer.echo(f"deleted profile {name}")
