"""The run page says which skills the run switched on or off when it started."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from console_helpers import Console
from svc_helpers import headers


def test_the_run_page_shows_the_skills_overlay(service: Callable[..., Any]) -> None:
    app, api = service()
    body = {"input": "Draft a note on otters", "spec_path": "examples/agent_skills.yaml"}
    switched = api.post(
        "/v1/runs",
        headers=headers("admin"),
        json={**body, "skills": {"add": ["word-budget"], "remove": ["house-style"]}},
    ).json()
    plain = api.post("/v1/runs", headers=headers("admin"), json=body).json()
    viewer = Console(app)
    viewer.sign_in("viewer")
    page = html.unescape(viewer.get(f"/ui/runs/{switched['run_id']}").text)
    shown = re.search(r'id="skills-overlay">(.*?)</p>', page, re.S)
    assert shown is not None, page[:2000]
    text = " ".join(re.sub(r"<[^>]+>", "", shown.group(1)).split())
    assert text == "Skills switched for this run: on word-budget off house-style"
    assert 'id="skills-overlay"' not in viewer.get(f"/ui/runs/{plain['run_id']}").text
