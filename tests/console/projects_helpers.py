"""Two teams in one console: the keys, a service with ``team-a`` and ``team-b`` beside
``default``, a paused run in each, and a browser-like client per person."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console_helpers import CSRF, ROOT
from starlette.testclient import TestClient

from kneo.console.session import SessionCodec
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

#: key name -> (key, roles): a reviewer per team, team-a's administrator, a member of both,
#: a platform administrator, a reviewer of the default project only.
KEYS: dict[str, tuple[str, str]] = {
    "a-rev": ("key-team-a-reviewer-1", "reviewer@team-a"),
    "a-adm": ("key-team-a-admin-6", "admin@team-a"),
    "b-rev": ("key-team-b-reviewer-2", "reviewer@team-b"),
    "both": ("key-both-teams-3", "reviewer@team-a,reviewer@team-b"),
    "plat": ("key-platform-admin-4", "platform-admin"),
    "dflt": ("key-default-reviewer-5", "reviewer"),
}
TEAMS = ("team-a", "team-b")
SECRET = "console-projects-test-secret"
PUBLIC = "http://testserver"

#: An agent drafts (the dummy provider), a person approves: inline, as a project's caller
#: sends it (a spec file on the server is the host's).
APPROVAL: dict[str, Any] = {
    "version": "v1",
    "agent": {
        "name": "writer",
        "system_prompt": "Write a note.",
        "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "A draft."}]},
        "tools": {"include": []},
    },
    "workflow": {
        "type": "sequential",
        "name": "approval",
        "steps": [
            {"id": "draft", "kind": "agent", "ref": "writer"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
        ],
    },
    "components": {"humans": {"reviewer": {"prompt": "Approve?", "assignee": "both"}}},
}


def auth(who: str, project: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {KEYS[who][0]}"}
    if project is not None:
        out["X-Kneo-Project"] = project
    return out


def teams_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
        "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
        "KNEO_SERV_CONSOLE_SECRET": SECRET,
        "KNEO_SERV_PUBLIC_URL": PUBLIC,
        "KNEO_SERV_DECISION_LINKS": "true",
        **extra,
    }


@dataclass
class Teams:
    """The service, its platform manager and, per project, a paused run of :data:`APPROVAL`."""

    app: Any
    api: TestClient
    manager: Any
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def start(self, project: str, text: str = "hello", **fields: Any) -> dict[str, Any]:
        answer = self.api.post(
            "/v1/runs",
            headers=auth("plat", project),
            json={"input": text, "spec": APPROVAL, **fields},
        )
        assert answer.status_code in (200, 201), answer.text
        run = dict(answer.json())
        assert run["status"] == "paused", run
        return run

    def task(self, project: str, continuation_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/human-tasks/{continuation_id}", headers=auth("plat", project))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def session(self, person: Person) -> Any:
        """The store's row of ``person``'s console session."""
        found = SessionCodec(SECRET, 3600).loads(person.client.cookies.get("kneo_console"))
        assert found is not None and found.key is not None
        return self.manager.store.sessions.console_session(found.key)

    def session_hash(self, person: Person) -> str:
        found = SessionCodec(SECRET, 3600).loads(person.client.cookies.get("kneo_console"))
        assert found is not None and found.key is not None
        return found.key

    def project_id(self, project: str) -> int:
        return int(self.manager.store.for_project(project).project_id)

    def close(self) -> None:
        self.api.__exit__(None, None, None)
        self.manager.close()


def open_teams(tmp: Path, database_url: str | None, **extra: str) -> Teams:
    """A started service with ``team-a`` and ``team-b`` (created by the platform
    administrator over the API), a paused run in each and one in ``default``."""
    settings = Settings.from_env(teams_env(tmp, **extra))
    store = open_store(database_url, settings=settings, state_dir=tmp / "state")
    manager = create_platform(settings, ProjectContext.discover(settings=settings), store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    api = TestClient(app, raise_server_exceptions=False)
    api.__enter__()
    teams = Teams(app, api, manager)
    for name in TEAMS:
        created = api.post("/v1/projects", headers=auth("plat"), json={"name": name})
        assert created.status_code == 201, created.text
    for project in ("default", *TEAMS):
        teams.runs[project] = teams.start(project, f"hello {project}", session_id=f"s-{project}")
    return teams


class Person:
    """One person's browser on the console: its own cookie jar."""

    def __init__(self, app: Any, who: str) -> None:
        self.client = TestClient(app, base_url=PUBLIC, raise_server_exceptions=False)
        page = self.client.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text
        signed = self.client.post(
            "/ui/login",
            data={"api_key": KEYS[who][0], "csrf_token": token.group(1), "next": ""},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        landing = self.client.get(signed.headers["location"])
        found = CSRF.search(landing.text)
        assert found, landing.text
        self.csrf = found.group(1)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict[str, str]) -> Any:
        return self.client.post(
            path, data={"csrf_token": self.csrf, **data}, follow_redirects=False
        )


__all__ = ["KEYS", "PUBLIC", "ROOT", "SECRET", "TEAMS", "Person", "Teams", "auth", "open_teams"]
