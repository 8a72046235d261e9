#!/usr/bin/env python3
"""Deployment smoke: exercise a live Kneo service end to end with the three built-in roles.

Steps: health, auth (401 without a key, 403 with too few scopes), spec validation, run
creation (pauses on a human step), human-task listing and resume, audit listing, credential
inventory, and an environment policy update (restored afterwards). Each step prints
``PASS`` or ``FAIL`` with the endpoint and HTTP status; the exit code is 0 only when every
step passed. Tokens are never printed.

    python scripts/deployment_smoke.py --base-url http://127.0.0.1:8000 \\
        --operator-token "$OP_TOKEN" --reviewer-token "$REV_TOKEN" --viewer-token "$VIEW_TOKEN"
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx2

SMOKE_SPEC = "examples/smoke_human_workflow.yaml"
SMOKE_ENV = "smoke"


class StepFailed(Exception):
    pass


class Smoke:
    def __init__(
        self, base_url: str, tokens: dict[str, str], spec_path: str, timeout: float
    ) -> None:
        self.http = httpx2.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.tokens = tokens
        self.spec_path = spec_path
        self.secrets = [t for t in tokens.values() if t]
        self.state: dict[str, Any] = {}
        self.failed = 0

    def call(
        self,
        role: str | None,
        method: str,
        path: str,
        *,
        expect: int | tuple[int, ...] = 200,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx2.TransportError as exc:
            raise StepFailed(f"{method} {path}: cannot connect ({type(exc).__name__})") from exc
        if response.status_code not in (expect if isinstance(expect, tuple) else (expect,)):
            detail = response.text[:300]
            for secret in self.secrets:
                detail = detail.replace(secret, "[REDACTED]")
            raise StepFailed(
                f"{method} {path} -> HTTP {response.status_code} (expected {expect}): {detail}"
            )
        return response.json() if response.content else None

    def step(self, name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
        except StepFailed as exc:
            self.failed += 1
            print(f"FAIL {name}: {exc}", flush=True)
        except (KeyError, TypeError, ValueError) as exc:
            self.failed += 1
            print(
                f"FAIL {name}: unexpected response shape ({type(exc).__name__}: {exc})", flush=True
            )
        else:
            print(f"PASS {name}: {detail}", flush=True)

    # ------------------------------------------------------------------ steps

    def health(self) -> str:
        self.call(None, "GET", "/livez")
        ready = self.call(None, "GET", "/readyz")
        return f"/livez ok, /readyz ready={ready['metadata']['ready']}"

    def auth(self) -> str:
        body = self.call(None, "GET", "/v1/runs", expect=401)
        if body.get("error") != "unauthorized":
            raise StepFailed(f"GET /v1/runs without a key: error={body.get('error')!r}")
        denied = self.call(
            "viewer",
            "POST",
            "/v1/runs",
            expect=403,
            json={"input": "smoke", "spec_path": self.spec_path},
        )
        if denied.get("required_scope") != "runs:write":
            raise StepFailed("viewer POST /v1/runs: 403 did not name runs:write")
        return "401 without a key, viewer 403 on POST /v1/runs (runs:write)"

    def validate(self) -> str:
        body = self.call(
            "operator", "POST", "/v1/specs/validate", json={"spec_path": self.spec_path}
        )
        if not body["valid"]:
            raise StepFailed(f"POST /v1/specs/validate: spec invalid: {body['diagnostics'][:3]}")
        return f"POST /v1/specs/validate valid ({len(body['diagnostics'])} diagnostics)"

    def create_run(self) -> str:
        body = self.call(
            "operator",
            "POST",
            "/v1/runs",
            headers={"Idempotency-Key": f"smoke-{uuid.uuid4().hex}"},
            json={"input": "smoke", "spec_path": self.spec_path, "target": "workflow"},
        )
        if body["status"] != "paused" or not body["continuation_id"]:
            raise StepFailed(f"POST /v1/runs: expected a paused run, got {body['status']}")
        self.state.update(
            run_id=body["run_id"],
            continuation_id=body["continuation_id"],
            request_id=body["metadata"]["pending_human_request"]["request_id"],
        )
        return f"POST /v1/runs -> {body['run_id']} paused"

    def list_tasks(self) -> str:
        body = self.call(
            "reviewer", "GET", "/v1/human-tasks", params={"run_id": self.state["run_id"]}
        )
        ids = [t["continuation_id"] for t in body["tasks"]]
        if self.state["continuation_id"] not in ids:
            raise StepFailed("GET /v1/human-tasks: the paused run's task is missing")
        return f"GET /v1/human-tasks lists {self.state['continuation_id']}"

    def resume(self) -> str:
        """The decision; where the service continues runs on workers, its answer waits for
        the run's end (``Prefer: wait``), and a ``202`` after the wait is read until then."""
        cid = self.state["continuation_id"]
        body = self.call(
            "reviewer",
            "POST",
            f"/v1/human-tasks/{cid}/resume",
            expect=(200, 202),
            headers={"Idempotency-Key": f"smoke-{uuid.uuid4().hex}", "Prefer": "wait=30"},
            json={
                "request_id": self.state["request_id"],
                "decision": "approved",
                "content": "Smoke approved.",
            },
        )
        deadline = time.monotonic() + 60
        while body["status"] in ("running", "queued") and time.monotonic() < deadline:
            time.sleep(0.5)
            body = self.call("viewer", "GET", f"/v1/runs/{self.state['run_id']}")
        if body["status"] != "succeeded":
            raise StepFailed(f"POST /v1/human-tasks/{cid}/resume: run is {body['status']}")
        return f"POST /v1/human-tasks/{cid}/resume -> succeeded"

    def audit(self) -> str:
        body = self.call(
            "viewer",
            "GET",
            "/v1/audit-events",
            params={"event_type": "human.decision", "run_id": self.state["run_id"]},
        )
        if not body["events"]:
            raise StepFailed("GET /v1/audit-events: no human.decision event for the run")
        event = body["events"][0]
        return f"GET /v1/audit-events human.decision by {event['actor']}"

    def credentials(self) -> str:
        body = self.call("operator", "GET", "/v1/security/credentials")
        text = repr(body)
        if any(secret in text for secret in self.secrets):
            raise StepFailed("GET /v1/security/credentials exposed a token")
        groups = body["inventory"]
        count = sum(len(v) for v in groups.values() if isinstance(v, dict))
        return f"GET /v1/security/credentials ({count} references, values redacted)"

    def policy(self) -> str:
        path = f"/v1/policies/environment/{SMOKE_ENV}"
        self.call("viewer", "PUT", path, expect=403, json={"enabled": True})
        first = self.call(
            "operator", "PUT", path, json={"enabled": True, "require_tool_permissions": True}
        )
        second = self.call(
            "operator", "PUT", path, json={"enabled": True, "require_tool_permissions": False}
        )
        if second["previous_policy"] != first["policy"]:
            raise StepFailed(f"PUT {path}: previous_policy does not match the earlier policy")
        got = self.call("operator", "GET", path)
        if got["policy"] != second["policy"]:
            raise StepFailed(f"GET {path}: stored policy differs from the update")
        return f"PUT {path} stored, previous_policy returned, viewer write refused"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--operator-token", required=True)
    parser.add_argument("--reviewer-token", required=True)
    parser.add_argument("--viewer-token", required=True)
    parser.add_argument(
        "--spec-path", default=SMOKE_SPEC, help="Spec path on the server (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    smoke = Smoke(
        args.base_url,
        {
            "operator": args.operator_token,
            "reviewer": args.reviewer_token,
            "viewer": args.viewer_token,
        },
        args.spec_path,
        args.timeout,
    )
    steps = [
        ("health", smoke.health),
        ("auth", smoke.auth),
        ("spec validation", smoke.validate),
        ("run creation", smoke.create_run),
        ("human task listing", smoke.list_tasks),
        ("human resume", smoke.resume),
        ("audit listing", smoke.audit),
        ("credential inventory", smoke.credentials),
        ("policy update", smoke.policy),
    ]
    for name, fn in steps:
        if "run_id" not in smoke.state and name in (
            "human task listing",
            "human resume",
            "audit listing",
        ):
            smoke.failed += 1
            print(f"FAIL {name}: skipped, run creation failed", flush=True)
            continue
        smoke.step(name, fn)
    print(f"{len(steps) - smoke.failed}/{len(steps)} steps passed", flush=True)
    return 0 if smoke.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
