"""A task view's names and ids are redacted as the whole view's JSON would be: the prefilter
reads only the fields that can hold what redaction changes (Kneo's own times cannot), so a
list row costs a third of a whole-view check, and the answer is the same for every value."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from kneo.clock import utc_iso
from kneo.platform.results import task_view
from kneo.redaction import redact
from kneo.store import ContinuationRecord

SAMPLES = [
    "triage",
    "hitl-tool-approval",
    "run_0123456789abcdef",
    "alice@example.com",
    "call +15551234567",
    "ssn 123-45-6789",
    "sk-abcdefghijklmnopqrstuvwx",
    "Bearer abcdefghijklmnop",
    "auth",
    "my_api_key",
    "x-token",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "password=hunter22",
    "x" * 200,
]


def _record(**names: str | None) -> ContinuationRecord:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    fields = {"continuation_id": "cont_1", "run_id": "run_1", "workflow_kind": "sequential",
              "workflow_name": "triage", "environment": "prod", **names}  # fmt: skip
    return ContinuationRecord(
        status="pending", requests=[], context={}, expires_at=at, escalated_at=None,
        version=1, created_at=at, updated_at=at, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def _whole_view_redacted(cont: ContinuationRecord, show_personal: bool) -> dict[str, object]:
    """What the view was before: every field of it through :func:`redact`."""
    header = {
        "continuation_id": cont.continuation_id,
        "run_id": cont.run_id,
        "status": cont.status,
        "workflow_kind": cont.workflow_kind,
        "workflow_name": cont.workflow_name,
        "environment": cont.environment,
        "created_at": utc_iso(cont.created_at),
        "updated_at": utc_iso(cont.updated_at),
        "expires_at": utc_iso(cont.expires_at),
        "escalated_at": utc_iso(cont.escalated_at),
    }
    out: dict[str, object] = redact(header, show_personal=show_personal)
    return out


@pytest.mark.parametrize("show_personal", [False, True])
def test_names_are_redacted_as_the_whole_view_would_be(show_personal: bool) -> None:
    fields = ("continuation_id", "run_id", "workflow_kind", "workflow_name", "environment")
    changed = 0
    for field, value in itertools.product(fields, SAMPLES):
        cont = _record(**{field: value})
        view = task_view(cont, show_personal=show_personal, shown=[])
        expected = _whole_view_redacted(cont, show_personal)
        assert {k: view[k] for k in expected} == expected, (field, value)
        changed += expected[field] != value
    assert changed >= len(fields) * 4  # the samples do reach redaction
    # two fields together, each clean alone: still the whole view's answer
    cont = _record(workflow_name="my_api", environment="key")
    assert task_view(cont, shown=[])["workflow_name"] == "my_api"
