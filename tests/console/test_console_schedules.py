"""The console's schedules page on SQLite and PostgreSQL: the real controller promotes a
scheduled bundle from a real Git repository, the real scheduler ticks it, and the page shows
the next and the last tick with its run; a pause by the page's button is held and audited as
the API's, and a freeze, a suspension and a pause each show why (escaped); a second team
sees only its own schedules; a key without ``registry:read`` gets the 403 page every page
gives.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from console_helpers import ROOT, Console
from gitops_fixtures import ENV_FILES, Keys, Repo, make_controller
from starlette.testclient import TestClient

from kneo.clock import ManualClock
from kneo.controller import operations
from kneo.platform import create_platform
from kneo.platform.schedules import Scheduler
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery, open_store

KEYS = {
    "ops": "ops-schedules-key-1",
    "viewer": "viewer-schedules-key-2",
    "b-op": "b-op-schedules-key-3",
    "narrow": "narrow-schedules-key-4",
}
ROLES = {
    "ops": "operator",
    "viewer": "viewer",
    "b-op": "operator@team-b",
    "narrow": "human:read,human:write",
}
ADMIN_KEY = "admin-schedules-key-0"
#: dev freezes from five past midnight on the test's day, for an hour
FROZEN = (
    "version: v1\npromotion:\n  freeze:\n    - {reason: release week, "
    "from: 2026-03-01T00:05:00Z, until: 2026-03-01T01:05:00Z}\n"
)
PAGE = "/ui/schedules"
TICK = "/ui/schedules/nightly/dev/tick"


def nightly() -> dict[str, Any]:
    """A signed one-step workflow with one schedule, ``tick``, every minute."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "done"}]},
        },
        "workflow": {"type": "sequential",
                     "steps": [{"id": "draft", "kind": "agent", "ref": "helper"}]},
        "schedules": [{"name": "tick", "input": "nightly", "every_seconds": 60,
                       "catch_up": "all", "catch_up_limit": 3, "overlap": "queue"}],
    }  # fmt: skip


@dataclass
class Scheduled:
    app: Any
    store: Any
    manager: Any
    clock: ManualClock
    controller: Any

    def person(self, who: str) -> Console:
        person = Console(self.app)
        assert person.sign_in(None, key=KEYS[who]).status_code == 303
        return person

    def tick(self, seconds: int) -> dict[str, int]:
        """The scheduler's pass after ``seconds`` more on the clock."""
        self.clock.advance(seconds)
        return self.scheduler.tick_once()

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(self.manager)


@pytest.fixture(params=["sqlite", "postgres"])
def scheduled(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scheduled]:
    """The app over a store whose default project has ``nightly`` in ``dev`` promoted by the
    controller (its schedule not ticked yet; dev freezes at 00:05) and whose ``team-b`` has
    ``b-bot`` with a schedule ``hourly``."""
    monkeypatch.chdir(ROOT)
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    url = (
        request.getfixturevalue("pg_database")()
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    )
    store = open_store(url, clock=clock)
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    for env, text in {**ENV_FILES, "dev": FROZEN}.items():
        repo.write(f"environments/{env}.yaml", text)
    repo.write("bundles/nightly/dev.json", keys.bundle("nightly", "dev", nightly()))
    repo.commit("nightly")
    controller = make_controller(store, repo, keys, clock, tmp_path)
    assert controller.reconcile_once().ok
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{ROLES[n]}" for n, k in KEYS.items()),
            "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY,
            "KNEO_SERV_CONSOLE_SECRET": "schedules-console-secret",
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
        }
    )
    (tmp_path / "project" / ".kneo").mkdir(parents=True)
    (tmp_path / "project" / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}}\n"
    )
    project = ProjectContext.discover(cwd=tmp_path / "project", settings=settings)
    manager = create_platform(settings=settings, project=project, store=store, clock=clock)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as api:
        made = api.post(
            "/v1/projects",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"name": "team-b"},
        )
        assert made.status_code == 201, made.text
        hourly = {"version": "v1", "schedules": [{"name": "hourly", "every_seconds": 3600}]}
        with store.for_project("team-b").transaction() as tx:
            tx.add_revision("b-bot", "dev", digest="sha256:" + "b" * 64, status="active",
                            spec=hourly)  # fmt: skip
        yield Scheduled(app, store, manager, clock, controller)
    controller.close()
    manager.close()


def text(answer: Any) -> str:
    assert answer.status_code == 200, answer.text[:800]
    return html.unescape(answer.text)


def test_the_page_shows_the_next_and_the_last_tick_with_its_run(scheduled: Scheduled) -> None:
    viewer = scheduled.person("viewer")
    page = text(viewer.get(PAGE))
    assert 'data-schedule="nightly/dev/tick"' in page and "every 60 s" in page
    assert "catch-up all (at most 3)" in page and "overlap queue" in page
    assert "none yet" in page and "ticking" in page
    assert "2026-03-01T00:01:00+00:00" in page and "in 1m" in page  # the next tick
    assert 'href="/ui/schedules"' in text(viewer.get("/ui/inbox"))  # in the nav

    assert scheduled.tick(0)["started"] == 0  # first sight: counts from now
    assert scheduled.tick(60)["started"] == 1
    (tick,) = scheduled.store.schedules.ticks(("nightly", "dev", "tick"))
    scheduled.clock.advance(10)
    row = text(viewer.get(PAGE)).split('data-schedule="nightly/dev/tick"')[1].split("</tr>")[0]
    last = row.split('class="last"')[1]
    assert "2026-03-01T00:01:00+00:00" in last and "10s ago" in last and "started" in last
    assert f'href="/ui/runs/{tick.run_id}"' in last
    assert "2026-03-01T00:02:00+00:00" in row and "in 50s" in row
    assert "Pause" not in row  # a viewer may not pause

    bundle = text(viewer.get("/ui/registry/nightly/dev"))
    card = bundle.split('id="schedules"')[1].split("</section>")[0]
    assert "2026-03-01T00:02:00+00:00" in card and f"/ui/runs/{tick.run_id}" in card


def test_an_operator_pauses_and_resumes_and_holds_show_why(scheduled: Scheduled) -> None:
    ops, viewer = scheduled.person("ops"), scheduled.person("viewer")
    assert 'value="pause"' in text(ops.get(PAGE))
    assert viewer.post(TICK, {"operation": "pause"}).status_code == 403
    assert ops.post(TICK, {"operation": "pause"}, csrf="x" * 43).status_code == 403
    assert ops.post(TICK, {"operation": "explode"}).status_code == 400
    assert ops.post("/ui/schedules/nightly/dev/nope", {"operation": "pause"}).status_code == 404
    assert ops.post(TICK, {"operation": "pause"}).status_code == 303
    [event] = scheduled.store.audit.list_audit(AuditQuery(event_type="schedule.paused")).items
    assert event.actor == "ops" and event.payload["schedule"] == "tick"
    page = text(viewer.get(PAGE))
    assert "held" in page and "paused by ops" in page and "ticking" not in page
    assert scheduled.tick(120)["started"] == 0  # held: no run
    assert 'value="resume"' in text(ops.get(PAGE))
    assert ops.post(TICK, {"operation": "resume"}).status_code == 303
    assert "ticking" in text(viewer.get(PAGE))
    assert (
        scheduled.store.audit.list_audit(AuditQuery(event_type="schedule.resumed")).items[0].actor
        == "ops"
    )

    scheduled.clock.set(datetime(2026, 3, 1, 0, 30, tzinfo=UTC))
    frozen = text(viewer.get(PAGE))
    assert "dev is frozen: release week (from 2026-03-01T00:05:00+00:00" in frozen
    assert "if no longer held" in frozen
    operations.suspend(scheduled.store, "nightly", "dev", actor="ops", reason="incident")
    assert "its bundle is suspended here" in text(viewer.get(PAGE))
    scheduled.store.schedules.set_paused(("nightly", "dev", "tick"), True, "<b>mallory</b>")
    assert "paused by &lt;b&gt;mallory&lt;/b&gt;" in viewer.get(PAGE).text  # escaped


def test_a_second_team_sees_only_its_own_schedules(scheduled: Scheduled) -> None:
    team_b, viewer = scheduled.person("b-op"), scheduled.person("viewer")
    theirs = text(team_b.get(PAGE))  # their only project: team-b's page
    assert 'data-schedule="b-bot/dev/hourly"' in theirs and "nightly" not in theirs
    ours = text(viewer.get(PAGE))
    assert "nightly" in ours and "b-bot" not in ours and "hourly" not in ours
    for person, path in ((team_b, "/ui/p/default/schedules"), (viewer, "/ui/p/team-b/schedules")):
        refused = person.get(path)
        assert refused.status_code == 404 and "project_not_found" in refused.text
    # team-b's operator pauses nothing of the default project's, through either project
    for prefix in ("/ui/p/default", "/ui/p/team-b"):
        assert team_b.post(prefix + TICK[3:], {"operation": "pause"}).status_code == 404
    assert not scheduled.store.schedules.states().get(("nightly", "dev", "tick"))
    # their own, through their project's URL: its form posts there, and pauses only theirs
    own = text(team_b.get("/ui/p/team-b/schedules"))
    assert 'action="/ui/p/team-b/schedules/b-bot/dev/hourly"' in own
    paused = team_b.post("/ui/p/team-b/schedules/b-bot/dev/hourly", {"operation": "pause"})
    assert paused.status_code == 303
    assert paused.headers["location"] == "/ui/p/team-b/schedules"
    states = scheduled.store.for_project("team-b").schedules.states()
    assert states[("b-bot", "dev", "hourly")].paused_by == "b-op"
    assert scheduled.store.schedules.states() == {}


def test_a_key_without_registry_read_gets_the_403_page(scheduled: Scheduled) -> None:
    narrow = scheduled.person("narrow")
    refused = narrow.get(PAGE)
    assert refused.status_code == 403 and "Missing required scope" in refused.text
    assert "nightly" not in refused.text
    assert 'href="/ui/schedules"' not in text(narrow.get("/ui/inbox"))
    assert narrow.post(TICK, {"operation": "pause"}).status_code == 403


def test_a_project_without_schedules_says_so(service: Callable[..., Any]) -> None:
    app, _ = service()
    viewer = Console(app)
    assert viewer.sign_in("viewer").status_code == 303
    page = text(viewer.get(PAGE))
    assert "No schedules: no active revision in this project declares one" in page
    assert "<table" not in page.split('id="schedules"')[1]
