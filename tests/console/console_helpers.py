"""Helpers for the console tests: the keys, a browser-like client per person, runs of the
examples, and a GitOps repository with a promotion waiting for two approvals."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
# The service tests' key table and manager builder, the controller tests' Git helpers.
for _helpers in ("service", "controller"):
    if str(ROOT / "tests" / _helpers) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / _helpers))

from gitops_fixtures import Keys, Repo, make_controller  # noqa: E402
from svc_helpers import KEYS, auth_env, headers  # noqa: E402

from kneo.clock import ManualClock  # noqa: E402
from kneo.controller.promotion import record_promotion_decision, task_id  # noqa: E402
from kneo.settings import Settings  # noqa: E402
from kneo.store import open_store  # noqa: E402

#: Two more reviewers, for the 2-of-2 promotion.
EXTRA_KEYS = {"alice": "alice-secret-token-6", "bob": "bob-secret-token-7"}
ALL_KEYS = {**KEYS, **EXTRA_KEYS}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEM = re.compile(r'name="idempotency_key" value="([^"]+)"')


#: Debian's Chromium, which the browser journeys drive (nothing downloads a browser), and
#: the laptop viewport their screenshots are taken at.
CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
VIEWPORT = {"width": 1280, "height": 800}


def browser_skip_reason() -> str | None:
    """Why the browser journeys cannot run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return (
            "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does "
            "it where apt is available); Playwright must never download a browser"
        )
    return None


def console_env(**extra: str) -> dict[str, str]:
    env = auth_env()
    env["KNEO_SERV_API_KEYS"] += "".join(f";{n}:{k}:reviewer" for n, k in EXTRA_KEYS.items())
    env["KNEO_SERV_CONSOLE_SECRET"] = "console-test-secret"
    return {**env, **extra}


class Console:
    """One person's browser: a TestClient with its own cookie jar over the shared app."""

    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self.client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        self.csrf = ""

    def sign_in(self, role: str | None, key: str | None = None) -> Any:
        page = self.client.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text
        key = key if key is not None else ALL_KEYS[role or ""]
        answer = self.client.post(
            "/ui/login",
            data={"api_key": key, "csrf_token": token.group(1), "next": ""},
            follow_redirects=False,
        )
        if answer.status_code == 303:
            self.csrf = CSRF.search(self.client.get("/ui/inbox").text).group(1)  # type: ignore[union-attr]
        return answer

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict[str, str], *, csrf: str | None = None) -> Any:
        fields = {"csrf_token": self.csrf if csrf is None else csrf, **data}
        if csrf == "":
            del fields["csrf_token"]
        return self.client.post(path, data=fields, follow_redirects=False)

    def form_key(self, path: str) -> str:
        """The idempotency key a freshly rendered form carries."""
        found = IDEM.search(self.get(path).text)
        assert found
        return found.group(1)


def start(
    api: TestClient, spec: str, text: str = "launch", role: str = "admin", **fields: Any
) -> dict[str, Any]:
    """A run of ``examples/<spec>.yaml`` started over the API (paused, as a rule); ``fields``
    join the request (``session_id``)."""
    body = api.post(
        "/v1/runs",
        headers=headers(role),
        json={"input": text, "spec_path": f"examples/{spec}.yaml", **fields},
    ).json()
    assert body["status"] == "paused", body
    return dict(body)


def console_auth(app: Any) -> Any:
    """The mounted console's :class:`~kneo.console.auth.ConsoleAuth`."""
    mount = next(r for r in app.routes if getattr(r, "path", None) == "/ui")
    return mount.app.state.auth


ENVIRONMENTS = {
    "staging": "version: v1\n",
    "prod": (
        "version: v1\npromotion:\n  require_approved_in: staging\n"
        "  require_human_approval: true\n  approvers: [alice, bob]\n  min_approvals: 2\n"
    ),
}


def mailer(prompt: str) -> dict[str, Any]:
    return {"version": "v1", "agent": {"name": "mailer", "system_prompt": prompt}}


def promotion_setup(tmp_path: Path) -> tuple[Any, Any, str]:
    """staging and prod active at r1 (prod's approved by alice and bob); prod's r2, a
    changed prompt, waits for two approvals."""
    store = open_store(None, settings=Settings.from_env({}), state_dir=tmp_path / "state")
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    for env, text in ENVIRONMENTS.items():
        repo.write(f"environments/{env}.yaml", text)
    for env in ENVIRONMENTS:
        repo.write(f"bundles/mailer/{env}.json", keys.bundle("mailer", env, mailer("Be brief.")))
    repo.commit("mailer r1")
    controller = make_controller(store, repo, keys, ManualClock(), tmp_path)
    assert controller.reconcile_once().ok
    first = task_id("mailer", "prod", store.registry.get_active("mailer", "staging").digest)
    for approver in ("alice", "bob"):
        record_promotion_decision(store, first, approver=approver, decision="approved")
    assert controller.reconcile_once().ok
    assert store.registry.get_active("mailer", "prod").revision == 1
    for env in ENVIRONMENTS:
        repo.write(f"bundles/mailer/{env}.json", keys.bundle("mailer", env, mailer("Be kind.")))
    repo.commit("mailer r2")
    assert controller.reconcile_once().ok
    assert controller.reconcile_once().ok  # prod waits for staging's r2 first
    digest = store.registry.get_active("mailer", "staging").digest
    return store, controller, task_id("mailer", "prod", digest)
