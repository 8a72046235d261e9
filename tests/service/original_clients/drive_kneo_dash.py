"""Run inside the original platform's client environment (``kneo-dash`` 0.8.0 on
``kneo-client`` 1.2.0): build the dashboard's app (static operator, dev mode, its own
SQLite state), seed the Kneo service at ``argv[1]`` with a finished run, a paused one and a
session, then call every ``GET /api/...`` route of the dashboard (path parameters filled
with those ids) and the decision and cancel it offers. Prints one JSON object, ``"METHOD
path"`` -> ``{"status", "empty"}``. The key comes from ``KNEO_ADMIN_KEY``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from typing import Any

#: Streams (server-sent events) and the OIDC sign-in pages answer no JSON document.
SKIPPED = {"/api/runs/{run_id}/trace/stream", "/api/login", "/api/callback"}
SPEC = "examples/smoke_human_workflow.yaml"


async def seed(url: str, key: str) -> dict[str, str]:
    """A finished run and a paused one, both in session ``dash-1``; their ids."""
    from kneo_client import KneoClient

    async with KneoClient.from_profile(url=url, api_key=key, timeout=60.0) as client:
        runs = client.platform.runs
        body = {"spec_path": SPEC, "input": "dash", "session_id": "dash-1"}
        done = await runs.create(body)
        task = (await client.platform.human_tasks.list(run_id=done.run_id)).items[0].to_dict()
        decision = {"request_id": task["requests"][0]["request_id"], "decision": "approved"}
        await client.platform.human_tasks.resume(task["continuation_id"], decision)
        paused = await runs.create(body)
        pending = (await client.platform.human_tasks.list(run_id=paused.run_id)).items[0]
        to_cancel = await runs.create(body)
        return {
            "run_id": done.run_id,
            "paused_run_id": to_cancel.run_id,
            "continuation_id": pending["continuation_id"],
            "request_id": pending["requests"][0]["request_id"],
            "session_id": "dash-1",
            "environment": "dev",
        }


def main(url: str) -> None:
    state = tempfile.mkdtemp(prefix="kneo-dash-")
    os.environ.update(
        {
            "KNEO_DASH_AUTH_MODE": "static",
            "KNEO_DASH_DEV_MODE": "true",
            "KNEO_DASH_DB_URL": f"sqlite:///{state}/state.db",
            "KNEO_URL": url,
            "KNEO_API_KEY": os.environ["KNEO_ADMIN_KEY"],
        }
    )
    ids = asyncio.run(seed(url, os.environ["KNEO_ADMIN_KEY"]))
    from kneo_dash.app import create_app
    from starlette.testclient import TestClient

    app = create_app()
    results: dict[str, Any] = {}
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
        same_origin = {"Origin": "http://testserver"}
        for template, operations in app.openapi()["paths"].items():
            if not template.startswith("/api") or "get" not in operations:
                continue
            if template in SKIPPED:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), template)
            if "{" in path:
                results[f"GET {template}"] = {"status": None, "empty": True, "unfilled": path}
                continue
            results[f"GET {template}"] = outcome(client.get(path))
        resume = f"/api/human-tasks/{ids['continuation_id']}/resume"
        body = {"request_id": ids["request_id"], "decision": "approved"}
        results[f"POST {resume}"] = outcome(client.post(resume, json=body, headers=same_origin))
        cancel = f"/api/runs/{ids['paused_run_id']}/cancel"
        results[f"POST {cancel}"] = outcome(client.post(cancel, headers=same_origin))
    print(json.dumps({"results": results, "ids": ids}, default=str))


def outcome(answer: Any) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = answer.text
    return {"status": answer.status_code, "empty": not body, "body": str(body)[:400]}


if __name__ == "__main__":
    main(sys.argv[1])
