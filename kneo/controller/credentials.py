"""The controller's Git credential: read from a source the operator configures, handed to git
in its process environment, never in a URL, an argument, a log line, a response or a row.

The source, read at every fetch (a rotated Kubernetes Secret is picked up without a restart):

* ``KNEO_SERV_GIT_TOKEN_FILE``: a file holding the token (a mounted Secret), or
* ``KNEO_SERV_GIT_TOKEN``: the token itself;
* ``KNEO_SERV_GIT_USERNAME``: the user name sent with it (default ``x-access-token``, which
  GitHub, GitLab, Bitbucket and Azure DevOps accept with a token).

git receives it as an ``Authorization: Basic`` header through ``GIT_CONFIG_COUNT``/
``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` (git's own way to pass configuration in the
environment), scoped with ``http.<url>.extraHeader`` to the repository's URL, with
redirects refused (a redirect would carry the header to wherever the server points).
``ps`` shows a process's arguments to every user of the host; its environment only to its
own user.

A repository URL with user information (``https://user:token@host/repo.git``, what the
documentation used to suggest) still works: the user information is taken out of the URL
and sent as the header like the source's, the URL is shown and stored without it, and a
warning says to move it to the source. Both at once is a configuration error.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from kneo.documents import DocumentLimits, read_text
from kneo.errors import ConfigError, SpecError
from kneo.redaction import reduce_url, remember_secrets

if TYPE_CHECKING:
    from kneo.settings import Settings

#: The user name sent with a token when none is configured.
DEFAULT_USERNAME = "x-access-token"
#: A token file is a few hundred bytes at most.
_TOKEN_FILE_LIMITS = DocumentLimits(max_bytes=64 * 1024)


@dataclass(frozen=True)
class GitCredential:
    """A user name and a token (or password). Its ``repr`` never shows the token."""

    username: str
    token: str = field(repr=False)

    def header(self) -> str:
        pair = f"{self.username}:{self.token}".encode()
        return f"Authorization: Basic {base64.b64encode(pair).decode('ascii')}"


@dataclass(frozen=True)
class CredentialSource:
    """Where the token is read from: a file (read at every fetch) or a value."""

    token_file: Path | None = None
    token: str = field(default="", repr=False)
    username: str = DEFAULT_USERNAME

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialSource | None:
        """The source ``KNEO_SERV_GIT_*`` configure; ``None`` when none is set."""
        if settings.git_token_file is not None and settings.git_token:
            raise ConfigError(
                "set one of KNEO_SERV_GIT_TOKEN_FILE and KNEO_SERV_GIT_TOKEN, not both",
                variable="KNEO_SERV_GIT_TOKEN",
            )
        if settings.git_token_file is None and not settings.git_token:
            return None
        return cls(
            token_file=settings.git_token_file,
            token=settings.git_token,
            username=settings.git_username or DEFAULT_USERNAME,
        )

    def read(self) -> GitCredential:
        """The credential now; ``ConfigError`` naming the variable when the file cannot be
        read or holds nothing (never its content)."""
        token = self.token
        if self.token_file is not None:
            try:
                token = read_text(self.token_file, what="Git token file", limits=_TOKEN_FILE_LIMITS)
            except SpecError as exc:
                raise ConfigError(
                    f"KNEO_SERV_GIT_TOKEN_FILE: {exc.message}", variable="KNEO_SERV_GIT_TOKEN_FILE"
                ) from None
        token = token.strip()
        if not token:
            raise ConfigError(
                "the Git token is empty (KNEO_SERV_GIT_TOKEN_FILE or KNEO_SERV_GIT_TOKEN)",
                variable="KNEO_SERV_GIT_TOKEN_FILE" if self.token_file else "KNEO_SERV_GIT_TOKEN",
            )
        remember_secrets([token])  # redacted by value from now on, wherever it turns up
        return GitCredential(self.username, token)


@dataclass(frozen=True)
class RepoUrl:
    """A repository location split: what git is given, what is shown, and the credential
    its user information held (``None`` without one)."""

    for_git: str
    shown: str
    credential: GitCredential | None = None


def split_url(location: str) -> RepoUrl:
    """``location`` taken apart. An http(s) URL loses its user information to a credential
    (a user name alone is a token: ``https://TOKEN@host``); another scheme keeps its user
    name for git (``ssh://git@host/repo``: ssh authenticates with keys) and loses any
    password. Paths and ``git@host:repo`` are as they are."""
    shown = reduce_url(location)
    if shown == location:
        return RepoUrl(location, location)
    scheme, _, rest = location.partition("://")
    host_and_path = shown.partition("://")[2]
    userinfo = rest[: len(rest) - len(host_and_path)].removesuffix("@")
    user, sep, password = userinfo.partition(":")
    if scheme.lower() not in ("http", "https"):
        if sep:
            remember_secrets([unquote(password)])
        return RepoUrl(f"{scheme}://{user}@{host_and_path}", shown)
    user, password = unquote(user), unquote(password)
    remember_secrets([password if sep else user])
    return RepoUrl(shown, shown, GitCredential(user, password))


def git_environment(url: str, credential: GitCredential | None) -> dict[str, str]:
    """The environment of a git process that fetches ``url`` (user information already
    removed): never a prompt; with a credential, its header for ``url`` only and no
    redirects."""
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if credential is None or not url.lower().startswith(("http://", "https://")):
        return env
    config = (
        (f"http.{url}.extraHeader", credential.header()),
        ("http.followRedirects", "false"),
    )
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


__all__ = [
    "DEFAULT_USERNAME",
    "CredentialSource",
    "GitCredential",
    "RepoUrl",
    "git_environment",
    "split_url",
]
