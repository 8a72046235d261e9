"""A held policy change in the console: shown like a promotion, with its gates and its diff,
decided 2-of-2 by prod's approvers in force, then in force, then the bundle promotes. Over
the test client, and in real headless Chromium (skipped when Debian's chromium is absent)."""

from __future__ import annotations

import html
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import ALL_KEYS, ROOT, Console, console_env
from gitops_fixtures import Keys, Repo, make_controller, sign_policy, spec

from kneo.clock import ManualClock
from kneo.controller.policy_record import PolicyRecord, record_key
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.controller.ratchet import policy_subject, policy_task_id
from kneo.settings import Settings
from kneo.store import open_store
from tests.service.svc_helpers import serving_app

STRICT = (
    "version: v1\nrequired_signatures: 2\naccepted_key_ids: [ci, release]\npromotion:\n"
    "  require_human_approval: true\n  approvers: [alice, bob]\n  min_approvals: 2\n"
)
LOOSE = "version: v1\naccepted_key_ids: [ci, release]\npromotion:\n  approvers: [alice, bob]\n"


def policy_in_force(store: Any) -> str:
    record = PolicyRecord.from_dict(store.metadata.get_metadata(record_key("default")))
    assert record is not None
    return record.in_force["prod"].digest


def policy_setup(tmp_path: Path) -> tuple[Any, Any, str]:
    """prod (two keys, alice and bob) serving r1; a commit loosening it to one key and no
    approval, signed by both keys, with a one-key bundle: held, its task open."""
    store = open_store(None, settings=Settings.from_env({}), state_dir=tmp_path / "state")
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    repo.write("environments/prod.yaml", STRICT)
    repo.write(
        "bundles/helper/prod.json", keys.bundle("helper", "prod", spec("v1"), cosign="release")
    )
    repo.commit("prod")
    controller = make_controller(store, repo, keys, ManualClock(), tmp_path)
    assert controller.reconcile_once().ok
    digest = store.registry.list_revisions("helper", "prod")[-1].digest
    for who in ("alice", "bob"):
        record_promotion_decision(
            store, task_id("helper", "prod", digest), approver=who, decision="approved"
        )
    assert controller.reconcile_once().ok
    repo.write("environments/prod.yaml", LOOSE)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", spec("v2")))
    policy = sign_policy(repo, keys, "prod", "ci", "release")
    repo.commit("loosen prod, signed by both keys")
    assert controller.reconcile_once().ok
    assert store.registry.get_active("helper", "prod").revision == 1
    task = controller.status()["policy"]["prod"]["task"]
    assert task == policy_task_id("prod", policy_subject("prod", policy_in_force(store), policy))
    return store, controller, task


def test_the_policy_change_reads_like_a_promotion_and_two_approvals_apply_it(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    store, controller, cid = policy_setup(tmp_path)
    app, _ = service(controller=controller, store=store)
    alice, bob, reviewer = Console(app), Console(app), Console(app)
    for person, name in ((alice, "alice"), (bob, "bob"), (reviewer, "reviewer")):
        person.sign_in(name)
    inbox = html.unescape(alice.get("/ui/inbox?kind=promotion").text)
    assert (
        f'href="/ui/promotions/{cid}"' in inbox
        and "Loosen prod: required_signatures 2 → 1" in inbox
    )
    page = html.unescape(alice.get(f"/ui/promotions/{cid}").text)
    assert "Loosen the policy of <strong>prod</strong>" in page
    assert "required_signatures 2 → 1" in page and "require_human_approval removed" in page
    assert "ci, release" in page  # who signed the change
    assert "-required_signatures: 2" in page and "-  require_human_approval: true" in page
    assert "0 of 2 needed" in page
    request_id = re.search(r'name="request_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"request_id": request_id, "decision": "approved"}
    refused = reviewer.post(f"/ui/promotions/{cid}", form)  # not an approver in force
    assert refused.status_code == 403 and "not an approver" in html.unescape(refused.text)
    assert alice.post(f"/ui/promotions/{cid}", form).status_code == 303
    assert controller.reconcile_once().ok
    assert store.registry.get_active("helper", "prod").revision == 1  # one of two: still held
    assert bob.post(f"/ui/promotions/{cid}", form).status_code == 303
    assert "Outcome: <strong>approved</strong>" in html.unescape(
        bob.get(f"/ui/promotions/{cid}").text
    )
    assert controller.reconcile_once().ok
    assert controller.status()["policy"]["prod"]["state"] == "in_force"
    active = store.registry.get_active(
        "helper", "prod"
    )  # r2 was the same bundle, refused while held
    assert active.revision == 3 and active.signer_key_ids == ["ci"]


CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
VIEWPORT = {"width": 1280, "height": 800}


def _skip_reason() -> str | None:
    """Why the browser journey cannot run here (as test_console_browser.py says it)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed; Playwright must never download a browser"
    return None


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The real app on uvicorn over the held policy change, the controller in the service."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)

    from kneo.platform import create_platform
    from kneo.service import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        store, controller, cid = policy_setup(tmp_path)
        settings = Settings.from_env(
            {**console_env(), "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p.json")}
        )
        manager = create_platform(settings=settings, store=store)
        app = create_app(False, settings=settings, manager=manager, start_worker=False,
                         controller=controller, run_controller=True)  # fmt: skip
        with serving_app(app) as base:
            yield base, (store, cid)
        manager.close()
        store.close()


@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_two_approvers_loosen_prod_in_chromium_and_the_bundle_promotes(
    live: tuple[str, Any],
) -> None:
    from playwright.sync_api import sync_playwright

    url, (store, cid) = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            pages = []
            for name in ("alice", "bob"):
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(10_000)
                page.goto(url + "/ui/inbox")
                page.fill("#api_key", ALL_KEYS[name])
                page.click("button[type=submit]")
                page.wait_for_url("**/ui/inbox")
                pages.append(page)
            alice, bob = pages
            alice.locator(f"a[href='/ui/promotions/{cid}']").click()
            alice.wait_for_url(f"**/ui/promotions/{cid}")
            main = alice.inner_text("main")
            assert "Loosen the policy of prod" in main and "required_signatures 2 → 1" in main
            assert "0 of 2 needed" in main
            alice.click("button[value=approved]")
            alice.get_by_text("1 of 2 needed").wait_for()
            bob.goto(url + f"/ui/promotions/{cid}")
            bob.click("button[value=approved]")
            bob.get_by_text("Outcome: approved").wait_for()
            # the decision woke the controller in the service: the policy took effect and the
            # one-key bundle of the same commit was promoted under it
            deadline = time.monotonic() + 20
            while store.registry.get_active("helper", "prod").signer_key_ids != ["ci"]:
                assert time.monotonic() < deadline, "the bundle was not promoted"
                time.sleep(0.2)
            bob.goto(url + "/ui/registry")
            row = bob.locator("table.registry tr", has_text="helper").inner_text()
            assert re.search(r"r3\b", row) and "Ready=True" in row, row  # r2: refused while held
        finally:
            browser.close()
