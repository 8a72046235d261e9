"""The console acts in a project: ``/ui/p/<project>/...`` names it, a page without one lands
in the session's last project (else the viewer's home), the switcher lists the viewer's
projects only, and another project's object, or a project the viewer holds no grant in, is
the same 404 page as a project that does not exist. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from console_helpers import CSRF
from projects_helpers import KEYS, PUBLIC, Person, Teams, auth
from starlette.testclient import TestClient

SWITCHER = re.compile(r'<details class="projects" id="projects">(.*?)</details>', re.S)
LINKS = re.compile(r'href="([^"]+)"')
ERROR = re.compile(r"<h1>(\d+) · ([a-z_]+)</h1>")


def switcher(page: Any) -> list[str]:
    """The project names the page's switcher links, in order (none: no switcher)."""
    found = SWITCHER.search(page.text)
    if found is None:
        return []
    return [href.split("/")[3] for href in LINKS.findall(found.group(1))]


def error_of(page: Any) -> tuple[int, str]:
    found = ERROR.search(page.text)
    assert found, page.text[:2000]
    return int(found.group(1)), found.group(2)


def test_a_member_of_both_lands_in_home_switches_and_each_inbox_is_its_projects(
    teams: Teams,
) -> None:
    both = Person(teams.app, "both")
    a_task, b_task = (teams.runs[p]["continuation_id"] for p in ("team-a", "team-b"))
    landing = both.get("/ui/inbox")
    assert landing.status_code == 303
    assert landing.headers["location"] == "/ui/p/team-a/inbox"  # home: the first granted
    page_a = both.get("/ui/p/team-a/inbox")
    assert page_a.status_code == 200
    assert switcher(page_a) == ["team-a", "team-b"]  # not default: no grant there
    assert 'aria-current="page">team-a<' in page_a.text
    assert f'href="/ui/p/team-a/tasks/{a_task}' in page_a.text  # links keep the project
    assert b_task not in page_a.text
    page_b = both.get("/ui/p/team-b/inbox")
    assert b_task in page_b.text and a_task not in page_b.text
    assert 'aria-current="page">team-b<' in page_b.text
    # the last project viewed is where a page without a project lands, and is kept
    assert both.get("/ui/inbox?sort=newest").headers["location"] == (
        "/ui/p/team-b/inbox?sort=newest"
    )
    assert teams.session(both).project_id == teams.project_id("team-b")
    # a decision in team-b from its task page, and the run goes on there
    task_page = both.get(f"/ui/p/team-b/tasks/{b_task}")
    assert task_page.status_code == 200 and 'action="/ui/p/team-b/tasks/' in task_page.text
    rid = teams.task("team-b", b_task)["requests"][0]["request_id"]
    decided = both.post(f"/ui/p/team-b/tasks/{b_task}", {"request_id": rid, "decision": "approved"})
    assert decided.status_code == 303, decided.text
    assert decided.headers["location"].startswith("/ui/p/team-b/runs/")
    run = teams.api.get(
        f"/v1/runs/{teams.runs['team-b']['run_id']}", headers=auth("plat", "team-b")
    )
    assert run.json()["status"] == "succeeded"
    assert teams.task("team-a", a_task)["status"] == "pending"


def test_a_viewer_of_one_project_sees_no_switcher_and_pages_act_in_their_home(
    teams: Teams,
) -> None:
    a_rev, dflt = Person(teams.app, "a-rev"), Person(teams.app, "dflt")
    a_task = teams.runs["team-a"]["continuation_id"]
    inbox = a_rev.get("/ui/inbox")
    assert inbox.status_code == 200  # one project: its pages need no prefix
    assert switcher(inbox) == [] and 'id="projects"' not in inbox.text
    assert f'href="/ui/tasks/{a_task}' in inbox.text
    assert teams.runs["team-b"]["continuation_id"] not in inbox.text
    assert teams.runs["default"]["continuation_id"] not in inbox.text
    prefixed = a_rev.get("/ui/p/team-a/inbox")  # a link naming the project works as well
    assert prefixed.status_code == 200 and f'href="/ui/p/team-a/tasks/{a_task}' in prefixed.text
    single = dflt.get("/ui/inbox")  # a single-team reviewer: the console as before
    assert single.status_code == 200 and 'id="projects"' not in single.text
    assert teams.runs["default"]["continuation_id"] in single.text
    assert a_task not in single.text


def test_a_platform_administrator_switches_between_every_project(teams: Teams) -> None:
    plat = Person(teams.app, "plat")
    landing = plat.get("/ui/inbox")
    assert landing.headers["location"] == "/ui/p/default/inbox"
    assert switcher(plat.get("/ui/p/default/inbox")) == ["default", "team-a", "team-b"]
    assert teams.runs["team-a"]["continuation_id"] in plat.get("/ui/p/team-a/inbox").text


#: Console pages by a path template over another project's objects.
GET_PAGES = (
    "tasks/{task}",
    "promotions/{task}",
    "runs/{run}",
    "runs/{run}/answer",
    "sessions/{session}",
    "registry/mailer/prod",
)


def _objects(teams: Teams) -> dict[str, str]:
    """team-b's task, run, session and bundle (``mailer`` in ``prod``)."""
    with teams.manager.store.for_project("team-b").transaction() as tx:
        tx.add_revision("mailer", "prod", digest="sha256:" + "b" * 64, status="active")
    run = teams.runs["team-b"]
    return {"task": run["continuation_id"], "run": run["run_id"], "session": "s-team-b"}


def test_every_page_of_another_projects_object_is_a_404_page(teams: Teams) -> None:
    """An administrator of team-a (every page's scope there) reaches nothing of team-b's:
    through team-a the object is not found; through team-b, the project is not found, the
    same page as for a project that does not exist."""
    admin = Person(teams.app, "a-adm")
    objects = _objects(teams)
    for template in GET_PAGES:
        path = template.format(**objects)
        for prefix in ("/ui/", "/ui/p/team-a/"):
            page = admin.get(prefix + path)
            assert page.status_code == 404, (prefix + path, page.text[:500])
            assert error_of(page)[1] == "not_found"
        foreign, ghost = admin.get("/ui/p/team-b/" + path), admin.get("/ui/p/ghost/" + path)
        for page in (foreign, ghost):
            assert page.status_code == 404 and error_of(page) == (404, "project_not_found")
            assert 'href="/ui/inbox"' in page.text  # its links leave the project
        assert foreign.text.replace("team-b", "ghost") == ghost.text  # nothing tells them apart
    for page in ("inbox", "registry", "schedules"):
        answer = admin.get(f"/ui/p/team-b/{page}")
        assert answer.status_code == 404 and error_of(answer)[1] == "project_not_found"
    assert admin.get("/ui/p/Not A Name/inbox").status_code == 404
    assert admin.get("/ui/registry/mailer/prod").status_code == 404  # not team-a's bundle


def test_no_post_reaches_another_projects_object(teams: Teams) -> None:
    admin = Person(teams.app, "a-adm")
    objects = _objects(teams)
    task = objects["task"]
    rid = teams.task("team-b", task)["requests"][0]["request_id"]
    posts = {
        f"tasks/{task}": {"request_id": rid, "decision": "approved"},
        f"promotions/{task}": {"request_id": rid, "decision": "approved"},
    }
    for path, form in posts.items():
        for prefix in ("/ui/", "/ui/p/team-a/", "/ui/p/team-b/", "/ui/p/ghost/"):
            answer = admin.post(prefix + path, form)
            assert answer.status_code == 404, (prefix + path, answer.status_code)
    suspend = {"operation": "suspend", "reason": "not yours"}
    for prefix in ("/ui/p/team-b/", "/ui/p/ghost/"):
        answer = admin.post(prefix + "registry/mailer/prod", suspend)
        assert answer.status_code == 404 and error_of(answer)[1] == "project_not_found"
    # through team-a, the same names are team-a's bundle (a suspension there, not team-b's)
    assert admin.post("/ui/p/team-a/registry/mailer/prod", suspend).status_code == 303
    assert ("mailer", "prod") in teams.manager.store.for_project(
        "team-a"
    ).registry.holds().suspensions
    assert teams.task("team-b", task)["status"] == "pending"
    assert ("mailer", "prod") not in (
        teams.manager.store.for_project("team-b").registry.holds().suspensions
    )


def test_an_archived_project_is_a_404_page_and_unprefixed_pages_go_home(teams: Teams) -> None:
    both = Person(teams.app, "both")
    assert both.get("/ui/p/team-b/inbox").status_code == 200  # the last project viewed
    archived = teams.api.delete("/v1/projects/team-b", headers=auth("plat"))
    assert archived.status_code == 200, archived.text
    gone = both.get("/ui/p/team-b/inbox")
    assert gone.status_code == 404 and error_of(gone)[1] == "project_not_found"
    assert both.get("/ui/inbox").headers["location"].startswith("/ui/p/team-a/")


def test_the_inbox_etag_names_the_project(teams: Teams) -> None:
    both = Person(teams.app, "both")
    first = both.get("/ui/p/team-a/inbox")
    etag = first.headers["etag"]
    again = both.get("/ui/p/team-a/inbox", headers={"If-None-Match": etag})
    assert again.status_code == 304
    other = both.get("/ui/p/team-b/inbox", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    assert teams.runs["team-b"]["continuation_id"] in other.text


def test_the_session_remembers_only_a_project_the_viewer_may_enter(teams: Teams) -> None:
    """A session whose last project is one the viewer holds no grant in (the grants changed
    since) lands in their home instead."""
    a_rev = Person(teams.app, "a-rev")
    key = teams.session_hash(a_rev)
    assert teams.manager.store.sessions.update_console_session(
        key, project_id=teams.project_id("team-b")
    )
    page = a_rev.get("/ui/inbox")
    assert page.status_code == 200 and teams.runs["team-a"]["continuation_id"] in page.text


def test_signing_in_from_a_projects_page_comes_back_to_it(teams: Teams) -> None:
    browser = TestClient(teams.app, base_url=PUBLIC, raise_server_exceptions=False)
    task = teams.runs["team-b"]["continuation_id"]
    asked = browser.get(f"/ui/p/team-b/tasks/{task}", follow_redirects=False)
    assert asked.status_code == 303
    login = browser.get(asked.headers["location"])
    assert f'value="/ui/p/team-b/tasks/{task}"' in login.text  # where it goes on to
    token = CSRF.search(login.text)
    assert token
    action = re.search(r'<form[^>]*action="([^"]+)"', login.text)
    assert action
    signed = browser.post(
        action.group(1),
        data={
            "api_key": KEYS["both"][0],
            "csrf_token": token.group(1),
            "next": f"/ui/p/team-b/tasks/{task}",
        },
        follow_redirects=False,
    )
    assert signed.headers["location"] == f"/ui/p/team-b/tasks/{task}"
    cookie = signed.headers["set-cookie"]
    assert "Path=/ui;" in cookie  # one session for every project
    assert browser.get(f"/ui/p/team-b/tasks/{task}").status_code == 200
    home = browser.get("/ui/p/team-b", follow_redirects=False)
    assert home.headers["location"] == "/ui/p/team-b/inbox"
