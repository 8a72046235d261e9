"""A service of two teams whose continuations go to the workers, on a manual clock: the
shape the runtime and limits tests drive (a worker's ``run_once``, a sweeper's tick)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from teams_helpers import KEYS, headers

from kneo.clock import ManualClock
from kneo.platform import create_platform
from kneo.platform.manager import PlatformManager
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

ROOT = Path(__file__).resolve().parents[2]

#: An agent drafts (the dummy provider: its usage is the words in and out), then stops.
DRAFT = {
    "version": "v1",
    "agent": {
        "name": "writer",
        "system_prompt": "Write a note.",
        "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "A short draft."}]},
        "tools": {"include": []},
    },
    "workflow": {
        "type": "sequential",
        "name": "draft",
        "steps": [{"id": "draft", "kind": "agent", "ref": "writer"}],
    },
}


def human_after_draft(on_timeout: str, timeout_seconds: int = 60) -> dict[str, Any]:
    """:data:`DRAFT`, then a person's approval that times out after ``timeout_seconds``."""
    return {
        **DRAFT,
        "workflow": {
            "type": "sequential",
            "name": "approval",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "writer"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
            ],
        },
        "components": {
            "humans": {
                "reviewer": {
                    "prompt": "Approve?",
                    "assignee": "reviewer",
                    "timeout_seconds": timeout_seconds,
                    "on_timeout": on_timeout,
                }
            }
        },
    }


@dataclass
class Service:
    client: TestClient
    manager: PlatformManager
    clock: ManualClock

    def start(self, who: str, spec: dict[str, Any], *, queued: bool = False, **body: Any) -> Any:
        """``POST /v1/runs`` as ``who`` (in its home project), ``queued``: for a worker."""
        payload = {"input": "hello", "spec": spec, **({"async_mode": True} if queued else {})}
        return self.client.post("/v1/runs", headers=headers(who), json={**payload, **body})

    def run(self, who: str, run_id: str) -> dict[str, Any]:
        got = self.client.get(f"/v1/runs/{run_id}", headers=headers(who))
        assert got.status_code == 200, got.text
        return dict(got.json())

    def decide(self, who: str, run: dict[str, Any], decision: str = "approved") -> Any:
        request = run["metadata"]["pending_human_request"]["request_id"]
        return self.client.post(
            f"/v1/human-tasks/{run['continuation_id']}/resume",
            headers=headers(who),
            json={"request_id": request, "decision": decision},
        )


ServiceFactory = Callable[..., Service]


@pytest.fixture(params=["sqlite", "postgres"])
def teams_service(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServiceFactory]:
    """``teams_service(definitions, **env)``: a started service (continuations on workers,
    no worker of its own: the test drives one) with ``team-a`` and ``team-b`` created by the
    platform administrator with the given definitions, on a manual clock."""
    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    with ExitStack() as stack:

        def make(definitions: dict[str, Any] | None = None, **extra: str) -> Service:
            env = {
                "KNEO_SERV_AUTH_ENABLED": "true",
                "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
                "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
                # the tests drive the workers themselves: a decision answers 202 at once
                "KNEO_SERV_DECISION_WAIT_SECONDS": "0",
                **extra,
            }
            settings = Settings.from_env(env)
            clock = ManualClock()
            store = open_store(url, settings=settings, state_dir=tmp_path / "state", clock=clock)
            project = ProjectContext.discover(settings=settings)
            manager = create_platform(settings, project, store=store)
            stack.callback(manager.close)
            app = create_app(
                False, settings=settings, manager=manager, start_worker=False, continuations="queue"
            )
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            for name in ("team-a", "team-b"):
                body: dict[str, Any] = {"name": name}
                if (definitions or {}).get(name) is not None:
                    body["definition"] = definitions[name]  # type: ignore[index]
                made = client.post("/v1/projects", headers=headers("plat"), json=body)
                assert made.status_code == 201, made.text
            return Service(client, manager, clock)

        yield make
