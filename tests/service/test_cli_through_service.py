"""Issue 54, item 3: day-two commands from a laptop go to the service its profile names.

A real ``kneo service serve`` runs the GitOps controller over a real Git remote; the real CLI
runs in a directory of its own with a profile ``laptop`` (an operator key) made active, and a
``KNEO_SERV_DATABASE_URL`` that must never come to exist: every registry, controller, audit
and notifications command reads and changes the service's state, audited as the key's
person; a rollback from the laptop is the service's rollback. Each says which service it
talked to (``meta.service`` in ``--json``; one line on a terminal). A viewer's profile is
refused what its role does not allow; ``--actor`` cannot make the service audit someone else.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_zygote import KNEO
from tests.service.gitops_served import Laptop, Served
from tests.service.svc_helpers import KEYS


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Served, Laptop]]:
    served = Served(tmp_path)
    served.commit("helper", "good")
    served.start()
    laptop = Laptop(tmp_path)
    for name, role in (("laptop", "operator"), ("watcher", "viewer"), ("root", "admin")):
        laptop.kneo("config", "profile", "set", name, "--service-url", served.url,
                    "--api-key", KEYS[role], "--no-activate")  # fmt: skip
    laptop.kneo("config", "profile", "use", "laptop")
    yield served, laptop
    served.stop()


def _service(data: dict[str, Any], served: Served, profile: str, chosen_by: str) -> None:
    assert data["meta"]["service"] == {
        "url": served.url,
        "profile": profile,
        "chosen_by": chosen_by,
    }


def test_a_rollback_from_the_laptop_is_the_services_rollback(
    world: tuple[Served, Laptop],
) -> None:
    served, laptop = world
    good = served.repo.git("rev-parse", "HEAD")
    served.wait_commit("helper", good)
    bad = served.commit("helper", "bad")

    planned = laptop.json("controller", "plan")  # the service's leader plans, then applies
    assert planned["dry_run"] is True and planned["status"] == "done"
    assert [(a["action"], a["bundle"]) for a in planned["actions"]] == [("activate", "helper")]
    _service(planned, served, "laptop", "active_profile")
    served.wait_commit("helper", bad)
    reconciled = laptop.json("controller", "reconcile")
    assert reconciled["ok"] is True and reconciled["commit"] == bad
    status = laptop.json("controller", "status")
    assert status["last_fetched_commit"] == bad and status["leader"]

    listed = laptop.json("registry", "list")
    assert [(r["bundle"], r["revision"], r["ready"]) for r in listed["items"]] == [
        ("helper", 2, "True")
    ]
    _service(listed, served, "laptop", "active_profile")
    history = laptop.json("registry", "history", "helper", "--env", "dev")["items"]
    assert [(r["revision"], r["status"]) for r in history] == [(2, "active"), (1, "inactive")]
    diff = laptop.json("registry", "diff", "helper", "--env", "dev", "--from", "1", "--to", "2")
    assert '+    "system_prompt": "bad"' in diff["spec_diff"]

    spoofed = laptop.kneo("registry", "rollback", "helper", "--env", "dev", "--to", "r1",
                          "--actor", "someone-else", "--json", code=1)  # fmt: skip
    assert json.loads(spoofed.stdout)["field"] == "--actor"
    assert served.active("helper")["revision"] == 2  # type: ignore[index]

    done = laptop.json("registry", "rollback", "helper", "--env", "dev", "--to", "r1",
                       "--reason", "5xx after deploy")  # fmt: skip
    assert (done["status"], done["revision"], done["rollback_of"]) == ("rolled_back", 3, 1)
    on_service = served.get("/v1/registry/bundles/helper/dev")
    assert (
        on_service["active"]["revision"] == 3
        and on_service["active"]["digest"] == (history[1]["digest"])
    )
    assert on_service["pin"]["revision"] == 3 and on_service["pin"]["pinned_by"] == "operator"
    got = laptop.json("registry", "get", "helper", "--env", "dev")
    assert got["pin"]["revision"] == 3 and got["active"]["revision"] == 3

    assert laptop.json("registry", "unpin", "helper", "--env", "dev")["changed"] is True
    assert laptop.json("registry", "pin", "helper", "--env", "dev")["pin"]["pinned_by"] == (
        "operator"
    )
    digest = history[0]["digest"]
    blocked = laptop.json("registry", "block", digest, "--reason", "leaks the prompt")
    assert blocked["blocked_by"] == "operator"
    assert [b["digest"] for b in laptop.json("registry", "blocks")["items"]] == [digest]
    assert [b["digest"] for b in served.get("/v1/registry/blocked-digests")["blocked"]] == [digest]
    assert laptop.json("registry", "unblock", digest)["changed"] is True
    suspended = laptop.json("controller", "suspend", "helper", "--env", "dev")
    assert suspended["suspended_by"] == "operator"
    assert laptop.json("controller", "resume", "helper", "--env", "dev")["changed"] is True

    audit = laptop.json("audit", "list", "--limit", "200")
    rollback = next(e for e in audit["events"] if e["event_type"] == "bundle.rolled_back")
    assert rollback["actor"] == "operator"
    _service(audit, served, "laptop", "active_profile")
    notes = laptop.json("notifications", "list", "--profile", "root")
    assert "counts" in notes
    _service(notes, served, "root", "profile")

    assert laptop.left_no_local_state(), "a command opened a local database"


def test_the_service_is_never_invisible_and_roles_hold(world: tuple[Served, Laptop]) -> None:
    served, laptop = world
    served.wait_commit("helper", served.repo.git("rev-parse", "HEAD"))

    code, out, err = laptop.on_a_terminal("registry", "list")
    assert code == 0 and "helper" in out
    assert f"kneo: service {served.url} (the active profile laptop)" in err
    assert err.count("kneo: service") == 1
    code, out, err = laptop.on_a_terminal("registry", "list", "--profile", "watcher", "--json")
    assert code == 0 and json.loads(out)["meta"]["service"]["profile"] == "watcher"
    assert f"kneo: service {served.url} (--profile watcher)" in err
    piped = laptop.kneo("registry", "list")
    assert "kneo: service" not in piped.stderr  # only a person at a terminal is told

    for args in (
        ("controller", "plan"),
        ("controller", "reconcile"),
        ("registry", "rollback", "helper", "--env", "dev", "--to", "1"),
        ("registry", "block", "sha256:" + "1" * 64, "--reason", "x"),
        ("notifications", "list"),
    ):
        refused = laptop.kneo(*args, "--profile", "watcher", "--json", code=1)
        envelope = json.loads(refused.stdout)
        assert envelope["error"] == "forbidden", (args, envelope)
        assert envelope["meta"]["service"]["url"] == served.url
    assert laptop.json("controller", "status", "--profile", "watcher")["leader"]

    flags = laptop.kneo("controller", "reconcile", "--full", "--json", code=1)
    assert json.loads(flags.stdout)["field"] == "--full"
    flags = laptop.kneo("controller", "plan", "--repo", str(served.repo.work), "--json", code=1)
    assert json.loads(flags.stdout)["field"] == "--repo"

    # a pull request's plan judges the checkout here, against its base commit: with a
    # service in effect it reads no local database
    served.commit("helper", "pull request")
    review = laptop.kneo(
        "controller", "plan", "--repo", str(served.repo.work),
        "--trusted-keys", str(served.keys.trusted_dir),
        "--base", "HEAD~1", "--head", "HEAD", "--format", "json",
    )  # fmt: skip
    data = json.loads(review.stdout)
    assert data["against"] == "base" and data["changes"] == 1

    # the MCP server an assistant starts on the laptop bridges to the profile's service
    listed = _mcp_tool(laptop, "list_registry_bundles", {})
    assert [(r["bundle_name"], r["ready"]) for r in listed["revisions"]] == [("helper", "True")]

    # a policy previewed from the laptop is the service's preview (and a viewer may not)
    proposal = laptop.home / "proposed.yaml"
    proposal.write_text("enabled: true\nrequire_guardrails: true\n")
    preview = laptop.json("policy", "preview", "dev", str(proposal))
    assert preview["environment"] == "dev" and preview["changes"]
    _service(preview, served, "laptop", "active_profile")
    refused = laptop.kneo(
        "policy", "preview", "dev", str(proposal), "--profile", "watcher", "--json", code=1
    )
    assert json.loads(refused.stdout)["error"] == "forbidden"
    assert laptop.left_no_local_state()


def _mcp_tool(laptop: Laptop, name: str, args: dict[str, Any]) -> Any:
    """``kneo mcp serve`` over stdio in the laptop's directory, one tool called."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=[*KNEO[1:], "mcp", "serve"],
        env=laptop.env(),
        cwd=str(laptop.home),
    )

    async def go() -> Any:
        with open(os.devnull, "w") as devnull:
            async with Client(stdio_client(params, errlog=devnull)) as client:
                return await client.call_tool(name, args)

    result = asyncio.run(go())
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)
