"""The run page says which code ran: the project files the run is pinned to, by sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console_helpers import Console, start

ROOT = Path(__file__).resolve().parents[2]


def test_the_run_page_lists_the_pinned_code(service: Callable[..., Any]) -> None:
    app, api = service()
    paused = start(api, "hitl_approval")
    person = Console(app)
    assert person.sign_in("viewer").status_code == 303
    page = person.get(f"/ui/runs/{paused['run_id']}")
    assert page.status_code == 200
    digest = hashlib.sha256((ROOT / "examples" / "hitl_functions.py").read_bytes()).hexdigest()
    section = page.text.partition('id="code"')[2].partition("</section>")[0]
    assert "examples/hitl_functions.py" in section and digest[:12] in section
