"""Issue 52, item 6: secrets and capabilities never leave their place.

Doors, each tried by a caller who should not get through:

* **a credential in a URL**: the controller's Git token. A private repository is served by
  the real ``git http-backend`` behind basic auth (:mod:`tests.security.git_http`). The
  controller clones it with the token from its credential source, the token never on git's
  command line; a repository URL with the token in it (the old documented way) still works,
  and the token is then searched for, and not found, in every answer a viewer key gets
  (``GET /v1/controller/status``, the MCP ``controller_status`` tool), the CLI's output and
  errors, the controller's first lines and its log records, and every stored column.
* **a redirect**: a Git host that redirects the controller elsewhere gets it nowhere, and
  the other host sees nothing.
* **a bearer capability in a path**: a decision link's token, requested, is ``[REDACTED]``
  in the request log (as is any token-like segment of a path no route matched).
* **a server path in an error**: a viewer's ``POST /v1/specs/validate`` of a broken spec
  is told project-relative paths only.

Skipped cleanly where ``git http-backend`` is not installed with git.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from kneo.controller.config import ControllerConfig
from kneo.controller.credentials import CredentialSource, git_environment, split_url
from kneo.controller.runner import build_controller
from kneo.controller.source import GitSource, SourceError
from kneo.errors import ConfigError
from kneo.platform.decision_links import DecisionLinks
from kneo.redaction import REDACTED, redact_text, reduce_url
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.cli_zygote import KNEO
from tests.controller.gitops_fixtures import GIT_ENV, Keys, Repo
from tests.mcp_tests.test_mcp_server import payload, session
from tests.security.git_http import PrivateGitHost, Redirector, have_git_http_backend
from tests.service.svc_helpers import ROOT, auth_env, build_manager, headers, serving_app

needs_backend = pytest.mark.skipif(
    not have_git_http_backend(), reason="git http-backend is not installed with git"
)

USER = "kneo-reader"
TOKEN = "PlantedGitToken0x5eC2e7A9b1"  # matches no secret shape: only reduction hides it


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok@github.com/acme/agents.git", "https://github.com/acme/agents.git"),
        ("https://tok@github.com/acme/agents.git", "https://github.com/acme/agents.git"),
        ("https://u:p%40ss@host:8443/x?y=1", "https://host:8443/x?y=1"),
        ("https://u:p@ss@host/x", "https://host/x"),  # an unescaped "@" in the password
        ("ssh://git@github.com/acme/agents.git", "ssh://github.com/acme/agents.git"),
        ("https://github.com/acme/agents.git", "https://github.com/acme/agents.git"),
        ("git@github.com:acme/agents.git", "git@github.com:acme/agents.git"),
        ("/srv/gitops", "/srv/gitops"),
        ("https://host/path@with-at", "https://host/path@with-at"),
    ],
)
def test_a_url_is_shown_without_its_user_information(url: str, shown: str) -> None:
    assert reduce_url(url) == shown


def test_the_url_credential_goes_to_the_header_and_git_gets_the_bare_url() -> None:
    url = split_url("https://kneo:s%3Acret-value@git.example/acme/agents.git")
    assert url.for_git == url.shown == "https://git.example/acme/agents.git"
    assert url.credential is not None
    assert (url.credential.username, url.credential.token) == ("kneo", "s:cret-value")
    assert "s:cret" not in repr(url.credential)
    lone = split_url("https://tok-only-value@git.example/x.git").credential
    assert lone is not None and (lone.username, lone.token) == ("tok-only-value", "")
    ssh = split_url("ssh://git:ignored-pw@git.example/x.git")
    assert (ssh.for_git, ssh.shown, ssh.credential) == (
        "ssh://git@git.example/x.git",
        "ssh://git.example/x.git",
        None,
    )


def test_the_header_is_scoped_to_the_repository_and_redirects_are_refused() -> None:
    credential = split_url(f"https://{USER}:{TOKEN}@git.example/x.git").credential
    env = git_environment("https://git.example/x.git", credential)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert config["http.followRedirects"] == "false"
    assert config["http.https://git.example/x.git.extraHeader"].startswith("Authorization: Basic ")
    assert git_environment("https://git.example/x.git", None) == {"GIT_TERMINAL_PROMPT": "0"}
    # ssh and local paths never get the header
    assert "GIT_CONFIG_COUNT" not in git_environment("ssh://git.example/x.git", credential)


def test_text_redaction_reduces_a_lone_http_user_name() -> None:
    text = f"cannot fetch https://{TOKEN}@git.example/x.git and https://u:{TOKEN}@h/y"
    shown = redact_text(text)
    assert TOKEN not in shown
    assert f"https://{REDACTED}@git.example/x.git" in shown


def test_two_credentials_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KNEO_SERV_GIT_TOKEN") as caught:
        GitSource(
            f"https://{USER}:{TOKEN}@git.example/x.git",
            cache_dir=tmp_path,
            credentials=CredentialSource(token="other-token-value"),
        )
    assert TOKEN not in str(caught.value)
    both = Settings.from_env(
        {"KNEO_SERV_GIT_TOKEN": "a-token-value", "KNEO_SERV_GIT_TOKEN_FILE": str(tmp_path / "t")}
    )
    with pytest.raises(ConfigError, match="not both"):
        CredentialSource.from_settings(both)
    assert "a-token-value" not in repr(both) and "a-token-value" not in json.dumps(
        both.as_public_dict()
    )


# --------------------------------------------------------------------------- a private host


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[PrivateGitHost, Repo, Keys]]:
    """A signed bundle in a repository that only ``USER:TOKEN`` may read over HTTP."""
    repo = Repo(tmp_path / "git")
    keys = Keys(tmp_path / "keys")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit("helper")
    host = PrivateGitHost(tmp_path / "git", USER, TOKEN)
    yield host, repo, keys
    host.stop()


def _controller(
    store: Any, url: str, keys: Keys, tmp_path: Path, env: dict[str, str] | None = None
) -> Any:
    settings = Settings.from_env(env or {})
    config = ControllerConfig(
        repo=url, branch="main", trusted_keys=keys.trusted_dir, cache_dir=tmp_path / "cache"
    )
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    return build_controller(store, config, settings, project=project)


def _argv_of_git(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command line GitPython runs from now on."""
    seen: list[list[str]] = []
    execute = git.cmd.Git.execute

    def recording(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append([str(part) for part in command])
        return execute(self, command, *args, **kwargs)

    monkeypatch.setattr(git.cmd.Git, "execute", recording)
    return seen


@needs_backend
def test_the_controller_clones_a_private_repository_with_its_credential_source(
    private: tuple[PrivateGitHost, Repo, Keys], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kneo.store import open_store

    host, _repo, keys = private
    token_file = tmp_path / "git-token"
    token_file.write_text(TOKEN + "\n")
    store = open_store(None, state_dir=tmp_path / "state")
    argv = _argv_of_git(monkeypatch)
    ctl = _controller(
        store,
        host.url("remote.git"),
        keys,
        tmp_path,
        {"KNEO_SERV_GIT_TOKEN_FILE": str(token_file), "KNEO_SERV_GIT_USERNAME": USER},
    )
    try:
        result = ctl.reconcile_once()
        assert result.ok, result.error
        assert result.counts() == {"activate": 1}
        assert store.registry.get_active("helper", "dev") is not None
        # every request the host saw carried the credential, which it accepted
        assert host.requests and set(host.authorizations()) == {host.expected}
        assert argv and not any(TOKEN in " ".join(cmd) for cmd in argv)
        # the file is read at every fetch: a rotated token is picked up, a wrong one refused
        token_file.write_text("rotated-but-wrong-token\n")
        failed = ctl.reconcile_once()
        assert failed.error is not None and failed.error["code"] == "source_unreachable"
    finally:
        ctl.source.close()
        store.close()


@needs_backend
def test_without_a_credential_the_host_refuses_and_the_error_says_what_to_set(
    private: tuple[PrivateGitHost, Repo, Keys], tmp_path: Path
) -> None:
    host, _repo, _keys = private
    source = GitSource(host.url("remote.git"), ref="main", cache_dir=tmp_path / "cache")
    with pytest.raises(SourceError) as caught:
        source.fetch()
    source.close()
    assert caught.value.code == "source_unreachable"
    assert "KNEO_SERV_GIT_TOKEN_FILE" in caught.value.message
    assert host.expected not in host.authorizations()


@needs_backend
def test_a_redirect_never_carries_the_credential_to_another_host(
    private: tuple[PrivateGitHost, Repo, Keys], tmp_path: Path
) -> None:
    """The configured host answers with a redirect to another (here: the real repository,
    to show the fetch would have worked): git, holding a credential, does not follow it."""
    host, _repo, _keys = private
    redirector = Redirector(host.base)
    seen_before = len(host.requests)
    source = GitSource(
        f"{redirector.base}/remote.git",
        ref="main",
        cache_dir=tmp_path / "cache",
        credentials=CredentialSource(token=TOKEN, username=USER),
    )
    try:
        with pytest.raises(SourceError) as caught:
            source.fetch()
        assert caught.value.code == "source_unreachable"
        assert redirector.requests, "the configured host was asked"
        assert host.requests[seen_before:] == [], "the redirect target was reached"
    finally:
        source.close()
        redirector.stop()


# ----------------------------------------------------- a token in the URL, searched everywhere


def _columns_holding(engine: Any, needle: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            result = conn.exec_driver_sql(f'SELECT * FROM "{table}"')
            for row in result:
                for column, value in zip(result.keys(), row, strict=True):
                    text = (
                        bytes(value).decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
                    if needle in text:
                        found.add((table, column))
    return found


def _mcp_controller_status(settings: Settings, manager: Any, key: str) -> Any:
    """The MCP ``controller_status`` tool through the official SDK, over a real socket."""
    app = create_app(False, settings=settings, manager=manager, start_worker=False, mcp=True)
    with serving_app(app) as base:
        return payload(session(base + "/mcp", key, [("controller_status", {})])[0])


@needs_backend
def test_a_token_in_the_repository_url_is_used_and_shown_nowhere(
    private: tuple[PrivateGitHost, Repo, Keys],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, _repo, keys = private
    legacy = host.url("remote.git").replace("http://", f"http://{USER}:{TOKEN}@")
    shown = host.url("remote.git")
    monkeypatch.chdir(ROOT)
    settings = Settings.from_env(
        {**auth_env(), "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json")}
    )
    manager = build_manager(settings, tmp_path)
    argv = _argv_of_git(monkeypatch)
    caplog.set_level(logging.DEBUG)
    ctl = _controller(manager.store, legacy, keys, tmp_path)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    try:
        first = ctl.reconcile_once()
        assert first.ok, first.error
        assert manager.store.registry.get_active("helper", "dev") is not None
        host.stop()  # the next pass fails: an error recorded, audited and reported
        failed = ctl.reconcile_once()
        assert failed.error is not None and failed.error["code"] == "source_unreachable"
        assert shown in failed.error["message"]

        with TestClient(app, raise_server_exceptions=False) as client:
            answers = [
                client.get("/v1/controller/status", headers=headers(role))
                for role in ("viewer", "admin")
            ]
            answers.append(client.get("/v1/audit-events", headers=headers("admin")))
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert TOKEN not in answer.text and USER not in answer.text
        status = answers[0].json()
        assert status["source"] == f"{shown}@main"
        assert status["last_error"] and shown in status["last_error"]
        viewer_key = headers("viewer")["Authorization"].removeprefix("Bearer ")
        through_mcp = _mcp_controller_status(settings, manager, viewer_key)
        assert through_mcp["source"] == f"{shown}@main"
        assert TOKEN not in json.dumps(through_mcp)

        assert ctl.source.describe() == f"{shown}@main"
        assert not any(TOKEN in " ".join(cmd) for cmd in argv)
        assert _columns_holding(manager.store.engine, TOKEN) == set()
        assert _columns_holding(manager.store.engine, f"{USER}:") == set()
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "carries a credential in its URL" in logged  # the warning to move it
        assert TOKEN not in logged and TOKEN not in capsys.readouterr().err
    finally:
        ctl.source.close()
        manager.close()


@needs_backend
def test_the_cli_prints_no_token_in_its_status_its_errors_or_its_first_lines(
    private: tuple[PrivateGitHost, Repo, Keys], tmp_path: Path
) -> None:
    """``kneo controller run`` / ``reconcile`` / ``status`` as processes, the token in the
    configured URL: their whole output is searched."""
    host, _repo, keys = private
    legacy = host.url("remote.git").replace("http://", f"http://{TOKEN}@")
    project = tmp_path / "project"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {legacy}\n  branch: main\n  trusted_keys: {keys.trusted_dir}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n  interval: 3600\n"
    )
    env = {
        **os.environ,
        **GIT_ENV,
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
        "PYTHONPATH": str(ROOT),
    }
    kneo = [*KNEO]
    runner = subprocess.Popen(
        [*kneo, "controller", "run"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert runner.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("reconciled"):
                break
    finally:
        runner.send_signal(signal.SIGTERM)
        rest, _ = runner.communicate(timeout=30)
    output = "".join(lines) + (rest or "")
    assert any(line.startswith("reconciled") for line in lines), output
    assert f"watching {host.url('remote.git')}@main" in output
    status = subprocess.run(
        [*kneo, "controller", "status", "--json"], cwd=project, env=env, capture_output=True
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["source"] == f"{host.url('remote.git')}@main"
    host.stop()
    failing = subprocess.run(
        [*kneo, "controller", "reconcile", "--once"], cwd=project, env=env, capture_output=True
    )
    assert failing.returncode == 1
    assert b"source_unreachable" in failing.stdout + failing.stderr
    for text in (output, status.stdout.decode(), status.stderr.decode()):
        assert TOKEN not in text, text
    assert TOKEN.encode() not in failing.stdout + failing.stderr


# --------------------------------------------------------------------------- bearer paths


def test_a_decision_link_token_is_never_in_the_request_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request_log: list[logging.LogRecord]
) -> None:
    monkeypatch.chdir(ROOT)
    secret = "console-secret-for-links-0123456789"
    settings = Settings.from_env(
        {
            **auth_env(),
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_DECISION_LINKS": "true",
            "KNEO_SERV_CONSOLE_SECRET": secret,
            "KNEO_SERV_PUBLIC_URL": "https://kneo.example",
        }
    )
    manager = build_manager(settings, tmp_path)
    link = DecisionLinks(secret, 3600, "https://kneo.example").url("cont_1", "req_1", "alice")
    token = link.rsplit("/", 1)[1]
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            opened = client.get(f"/ui/decide/{token}")
            decided = client.post(f"/ui/decide/{token}", data={"decision": "approved"})
            astray = client.get(f"/ui/decide/{token}/extra")
            run = client.get("/v1/runs/run_0123456789abcdefghij", headers=headers("viewer"))
    finally:
        manager.close()
    assert opened.status_code == 404 and decided.status_code in (403, 404)
    assert astray.status_code == 404 and run.status_code == 404
    records = [json.loads(r.getMessage()) for r in request_log]
    paths = [r["path"] for r in records]
    assert f"/ui/decide/{REDACTED}" in paths
    assert f"/ui/decide/{REDACTED}/extra" in paths
    assert "/v1/runs/run_0123456789abcdefghij" in paths  # an id of a matched route stays
    assert not any(token in r.getMessage() for r in request_log)


# --------------------------------------------------------------------------- server paths


def test_a_viewers_spec_error_carries_project_relative_paths_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "srv" / "project"
    outside = tmp_path / "srv" / "shared-specs"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text("version: v1\n")
    (project / "specs").mkdir()
    (project / "specs" / "broken.yaml").write_text("version: v1\nagent: {name: a, x: [\n")
    (project / "specs" / "unknown.yaml").write_text(
        "version: v1\nagent: {name: a, system_prompt: hi, no_such_field: 1}\n"
    )
    outside.mkdir()
    (outside / "other.yaml").write_text("version: v1\nagent: [\n")
    monkeypatch.chdir(project)
    settings = Settings.from_env(
        {
            **auth_env(),
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_SPEC_ROOTS": f"{project},{outside}",
        }
    )
    manager = build_manager(settings, tmp_path)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            answers = {
                name: client.post(
                    "/v1/specs/validate", json={"spec_path": name}, headers=headers("viewer")
                )
                for name in ("specs/broken.yaml", "specs/unknown.yaml", str(outside / "other.yaml"))
            }
    finally:
        manager.close()
    for name, answer in answers.items():
        assert answer.status_code == 400, (name, answer.text)
        assert str(tmp_path) not in answer.text, answer.text
    broken = answers["specs/broken.yaml"].json()
    assert broken["error"] == "E_YAML" and broken["file"] == "specs/broken.yaml"
    assert broken["message"].startswith("specs/broken.yaml:3: ")
    unknown = answers["specs/unknown.yaml"].json()
    assert unknown["diagnostics"][0]["file"] == "specs/unknown.yaml"
    assert answers[str(outside / "other.yaml")].json()["file"] == "other.yaml"
