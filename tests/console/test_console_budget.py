"""A run paused at its budget (issue 33), decided in the console: the task page says what the
run spent against its limit and offers to continue (raised by the policy's amount, or to a
limit typed in its field) or to stop; the run page shows what it spent."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from console_helpers import Console
from svc_helpers import headers

TOOLS = "def send(args):\n    return 'sent to ' + str(args.get('to'))\n"
SEND = {"name": "send", "arguments": {"to": "ann"}}


@pytest.fixture
def budgeted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose dev environment allows one model call per run."""
    project = tmp_path / "project"
    (project / "environments").mkdir(parents=True)
    (project / "environments" / "dev.yaml").write_text(
        yaml.safe_dump({"version": "v1", "budgets": {"max_model_calls": 1}})
    )
    (project / "budtools.py").write_text(TOOLS)
    spec = {
        "version": "v1",
        "agent": {
            "name": "worker",
            "system_prompt": "Send.",
            "tools": ["send"],
            "policies": {"tool": {"allow": ["send"]}},
            "model": {
                "provider": "dummy",
                "name": "budget",
                "script": [{"tool_calls": [SEND]}, {"tool_calls": [SEND]}, {"text": "done"}],
            },
        },
        "workflow": {
            "type": "sequential",
            "name": "budgeted",
            "steps": [{"id": "work", "kind": "agent", "ref": "worker"}],
        },
        "components": {
            "tools": {
                "send": {
                    "description": "Send.",
                    "implementation": "budtools:send",
                    "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
                }
            }
        },
    }
    (project / "budget.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    return project


def _paused(api: Any, run_id: str) -> tuple[str, dict[str, Any]]:
    run = api.get(f"/v1/runs/{run_id}", headers=headers("reviewer")).json()
    assert run["status"] == "paused", run
    cid = run["continuation_id"]
    task = api.get(f"/v1/human-tasks/{cid}", headers=headers("reviewer")).json()
    [request] = [r for r in task["requests"] if r["status"] == "pending"]
    assert request["kind"] == "budget"
    return cid, request


def test_a_budget_pause_is_decided_in_the_console(
    service: Callable[..., Any], budgeted: Path
) -> None:
    app, api = service()
    started = api.post(
        "/v1/runs", headers=headers("admin"), json={"input": "go", "spec_path": "budget.yaml"}
    ).json()
    run_id = started["run_id"]
    cid, request = _paused(api, run_id)
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    url = f"/ui/tasks/{cid}"
    text = html.unescape(reviewer.get(url).text)
    assert "used 1 of the 1 model calls" in text and "'dev'" in text
    for offer in ("Continue with the limit raised", "Continue with this limit", "Stop the run"):
        assert offer in text, offer
    assert 'name="field.limit"' in text

    # a limit that is no raise: the platform's refusal at the field, nothing decided
    key = reviewer.form_key(url)
    form = {"request_id": request["request_id"], "idempotency_key": key, "decision": "provided"}
    refused = reviewer.post(url, {**form, "field.limit": "1"})
    assert refused.status_code == 422 and "minimum" in html.unescape(refused.text)

    answer = reviewer.post(url, {**form, "field.limit": "2"})
    assert answer.status_code == 303, answer.text[:500]
    cid, request = _paused(api, run_id)  # the second model call ran; the third asks again
    assert request["context"]["limit"] == 2 and request["context"]["raise_to"] == 3

    key = reviewer.form_key(f"/ui/tasks/{cid}")
    answer = reviewer.post(
        f"/ui/tasks/{cid}",
        {"request_id": request["request_id"], "idempotency_key": key, "decision": "approved"},
    )
    assert answer.status_code == 303
    run = api.get(f"/v1/runs/{run_id}", headers=headers("reviewer")).json()
    assert run["status"] == "succeeded" and run["output_text"] == "done"
    assert run["usage"]["model_calls"] == 3 and run["usage"]["tool_calls"] == 2

    page = html.unescape(reviewer.get(f"/ui/runs/{run_id}").text)
    usage = re.sub(r"<[^>]+>", " ", page.split('id="usage"', 1)[1].split("</section>", 1)[0])
    spent = run["usage"]
    assert usage.split()[-5:] == [
        "run",
        *(str(spent[k]) for k in ("model_calls", "tool_calls", "input_tokens", "output_tokens")),
    ]
