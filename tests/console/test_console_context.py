"""Why a request is asked, on the task page and the run page: the run's input, the agent's
conversation up to the pause (the model's words for the call, the earlier tool result), the
workflow position and earlier decisions, redacted by the viewer's scopes."""

from __future__ import annotations

import html
import re
from typing import Any

from console_helpers import Console, start
from svc_helpers import headers

EMAIL = "carol.planted@example.com"
SECRET = "sk-plantedCONSOLEkey0123456789"
INPUT = f"release notes for {EMAIL} {SECRET}"


def _text(page: Any) -> str:
    """The page's text as a person reads it (tags out, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


def test_the_task_page_shows_the_agents_words_and_the_earlier_tool_result(
    service: Any,
) -> None:
    app, api = service()
    paused = start(api, "hitl_tool_context", INPUT)
    url = f"/ui/tasks/{paused['continuation_id']}"
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get(url)
    assert page.status_code == 200 and SECRET not in page.text
    text = _text(page)
    assert "The agent says" in text and "The lookup says: the release team" in text
    assert "result of  lookup_on_call" in text  # the earlier call's result, in the transcript
    assert f"is on call for 'release notes for {EMAIL}" in text  # personal data: a decider's
    assert 'id="msg-4"' in page.text and "asks for this request" in text
    assert "waiting for you" in text and "Run input" in text
    assert "Earlier decisions on this run" in text

    viewer = Console(app)
    viewer.sign_in("viewer")
    seen = viewer.get(url)
    assert seen.status_code == 200 and EMAIL not in seen.text and SECRET not in seen.text
    assert "The lookup says" in _text(seen) and "[REDACTED_EMAIL]" in seen.text


def test_the_run_page_reads_as_a_conversation(service: Any) -> None:
    app, api = service()
    paused = start(api, "hitl_tool_context", INPUT)
    done = api.post(
        f"/v1/human-tasks/{paused['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": paused["request_id"], "decision": "approved"},
    ).json()
    assert done["status"] == "succeeded"
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get(f"/ui/runs/{paused['run_id']}")
    assert page.status_code == 200 and SECRET not in page.text
    text = _text(page).split("what the agents were asked, said and did", 1)[1]
    order = [
        text.index("First I look up who is on call"),
        text.index("result of  lookup_on_call"),
        text.index("The lookup says"),
        text.index("result of  send_email"),
        text.index("Done: sent to team@example.com"),
    ]
    assert order == sorted(order)
    assert "approved" in text.split("Decisions", 1)[1] and "reviewer" in text

    # what the agent spent: the API's usage, per step and in total, on the page
    view = api.get(f"/v1/runs/{paused['run_id']}", headers=headers("reviewer")).json()
    usage = view["usage"]
    assert usage["model_calls"] == 3 and usage["tool_calls"] == 2
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    [step] = usage["steps"]
    assert {k: v for k, v in step.items() if k != "step_id"} == {
        k: v for k, v in usage.items() if k != "steps"
    }
    spent = _text(page).split("what the agents spent", 1)[1].split("Conversation", 1)[0].split()
    assert spent[-5:] == [
        "run",
        *(str(usage[k]) for k in ("model_calls", "tool_calls", "input_tokens", "output_tokens")),
    ]
    assert step["step_id"] in spent


def test_a_key_without_runs_read_sees_the_task_but_not_the_run(service: Any) -> None:
    app, api = service(
        KNEO_SERV_API_KEYS="narrow:narrow-secret-8:human:read,human:write",
    )
    paused = start(api, "hitl_tool_context", INPUT)
    narrow = Console(app)
    narrow.sign_in(None, key="narrow-secret-8")
    page = narrow.get(f"/ui/tasks/{paused['continuation_id']}")
    assert page.status_code == 200 and "Approve the call to tool" in _text(page)
    assert "The lookup says" not in page.text and "runs:read" in page.text
    assert EMAIL not in page.text.split("task-context", 1)[1]
