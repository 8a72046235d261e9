"""The run page's live answer: while a run runs, the page reads the run's events with the
opt-in ``answer.delta`` type (``/ui/runs/{run_id}/answer``, the session cookie's viewer, that
project's runs only) and shows the answer as it is generated; when the run ends, the final
(redacted) answer replaces it.

The journey drives real headless Chromium (Debian's; nothing downloads a browser) against
the real app on uvicorn, with the scripted model slowed down so the answer takes seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from console_helpers import CHROMIUM, KEYS, VIEWPORT, browser_skip_reason, console_env
from live_server import LiveServer
from svc_helpers import build_manager, headers

from kneo.engine.providers.base import ChatMessage, ModelReply
from kneo.engine.providers.dummy import DummyProvider
from kneo.kernel import NetworkGrant
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition
from tests import http_calls

ANSWER = (
    "Quarterly summary: revenue grew in every region, costs held flat, the new support "
    "rota cut waiting times by a third, the token sk-abcdefghijklmnopqrstuvwx1234 stays "
    "hidden, and the team recommends keeping the current plan for the next quarter."
)
SECRET = "sk-abcdefghijklmnopqrstuvwx1234"


def _spec(name: str = "writer") -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {
            "name": name,
            "model": {"provider": "dummy", "stream": True, "script": [{"text": ANSWER}]},
        },
    }


def _slow_stream(
    self: DummyProvider,
    *,
    model: ModelSpec,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolDefinition],
    reach: NetworkGrant | None = None,
    on_text: Callable[[str], None],
) -> ModelReply:
    """The scripted reply, five characters every 50 ms (about 2.5 s for :data:`ANSWER`)."""
    reply = self.complete(model=model, messages=messages, tools=tools, reach=reach)
    text = reply.text or ""
    for start in range(0, len(text), 5):
        time.sleep(0.05)
        on_text(text[start : start + 5])
    return reply


class LiveService:
    """The real app (API and console) on uvicorn in this process, over SQLite."""

    def __init__(self, root: Path) -> None:
        settings = Settings.from_env(
            {**console_env(), "KNEO_SERV_PROFILES_PATH": str(root / "profiles.json")}
        )
        self.manager = build_manager(settings, root)
        app = create_app(False, settings=settings, manager=self.manager, start_worker=False)
        self.live = LiveServer(app)
        self.url = self.live.url

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return http_calls.request(
            method, self.url + path, headers=headers("admin"), timeout=60, **kw
        )

    def start_in_background(self) -> tuple[str, threading.Thread]:
        """A run of the slow writer, started by a request on another thread; its id once it
        runs."""
        before = {r["run_id"] for r in self.api("GET", "/v1/runs").json()["runs"]}
        thread = threading.Thread(
            target=self.api, args=("POST", "/v1/runs"), kwargs={"json": _run_body()}, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = self.api("GET", "/v1/runs").json()["runs"]
            fresh = [r for r in runs if r["run_id"] not in before and r["status"] == "running"]
            if fresh:
                return str(fresh[0]["run_id"]), thread
            time.sleep(0.05)
        raise AssertionError("the run did not start")

    def stop(self) -> None:
        self.live.stop()
        self.manager.close()


def _run_body() -> dict[str, Any]:
    return {"input": "summarise", "spec": _spec()}


@pytest.fixture()
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveService]:
    monkeypatch.setattr(DummyProvider, "complete_stream", _slow_stream)
    server = LiveService(tmp_path)
    yield server
    server.stop()


@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_the_run_page_shows_the_answer_as_it_comes_then_the_final_one(live: LiveService) -> None:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(15_000)
        page.goto(live.url + "/ui/login")
        page.fill("#api_key", KEYS["viewer"])
        page.click("button[type=submit]")
        page.wait_for_url("**/inbox")
        run_id, request = live.start_in_background()
        page.goto(f"{live.url}/ui/runs/{run_id}")
        box = page.locator("#live-answer")
        box.wait_for()
        page.wait_for_function(
            "() => (document.querySelector('#live-answer') || {}).textContent?.length > 20"
        )
        partial = box.text_content() or ""
        status = live.api("GET", f"/v1/runs/{run_id}").json()["status"]
        assert status == "running"  # the text came while the run was still running
        page.wait_for_selector("#answer", timeout=30_000)
        final = page.locator("#answer").text_content()
        browser.close()
    request.join(30)
    run = live.api("GET", f"/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded", run
    assert final == run["output_text"] and SECRET not in str(final)
    assert 20 < len(partial) < len(final) and final.startswith(partial)


def test_the_answer_stream_is_the_viewers_projects_and_sends_the_deltas(
    live: LiveService,
) -> None:
    """At HTTP level: a signed-in viewer's stream of a finished run replays its deltas and
    ends; no session: the sign-in page; a run of no project of theirs: 404."""
    body = live.api("POST", "/v1/runs", json=_run_body()).json()
    assert body["status"] == "succeeded", body
    client = httpx2.Client(base_url=live.url, timeout=30)
    anonymous = client.get(f"/ui/runs/{body['run_id']}/answer")
    assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]
    page = client.get("/ui/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    signed = client.post(
        "/ui/login", data={"api_key": KEYS["viewer"], "csrf_token": csrf, "next": ""}
    )
    assert signed.status_code == 303
    answer = client.get(f"/ui/runs/{body['run_id']}/answer")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    text = answer.text
    deltas = [
        line for line in text.splitlines() if line.startswith("data:") and "answer.delta" in line
    ]
    assert len(deltas) > 2 and SECRET not in text
    assert "event: end" in text
    assert client.get("/ui/runs/run-of-nobody/answer").status_code == 404
    client.close()
