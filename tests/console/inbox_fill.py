"""Many paused runs fast, for the inbox search's tests and ``bench/console.py``: copies of
one real paused run (made by the engine) with other inputs, written through the store's
real calls (``create_run``, ``put_continuation`` with the platform's search text), a few
hundred per transaction. Running the engine once per task would take minutes at 100,000."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kneo.engine.human import HumanRequest
from kneo.ids import new_continuation_id
from kneo.platform.tasks import pending_entry, search_text


def clone_paused(
    store: Any, template_run_id: str, inputs: Iterable[str], *, batch: int = 500
) -> list[str]:
    """A paused run like ``template_run_id`` (its spec, state and pending requests, new
    request ids) per text of ``inputs``; returns their continuation ids, oldest first."""
    template = store.runs.get_run(template_run_id)
    made: list[str] = []
    texts = list(inputs)
    for start in range(0, len(texts), batch):
        with store.transaction() as tx:
            for text in texts[start : start + batch]:
                made.append(_clone(tx, template, text))
    return made


def _clone(tx: Any, template: Any, text: str) -> str:
    state: dict[str, Any] = json.loads(json.dumps(template.state))
    cid = new_continuation_id()
    for number, pending in enumerate(state.get("pending") or []):
        pending["request_id"] = f"req_{cid.removeprefix('cont_')}_{number}"
    state |= {"input_text": text, "continuation_id": cid}
    run = tx.create_run(
        # its own id: the ids made in one transaction share its time and only 28 random bits
        run_id=f"run_fill_{cid.removeprefix('cont_')}",
        target=template.target,
        input_text=text,
        status="paused",
        workflow_name=template.workflow_name,
        workflow_kind=template.workflow_kind,
        environment=template.environment,
        spec=template.spec,
        spec_digest=template.spec_digest,
        state=state,
        metadata=template.metadata,
    )
    requests = [HumanRequest.from_dict(p) for p in state.get("pending") or []]
    tx.put_continuation(
        cid,
        run_id=run.run_id,
        requests=[pending_entry(r) for r in requests],
        workflow_kind=template.workflow_kind,
        workflow_name=template.workflow_name,
        environment=template.environment,
        search_text=search_text(text, requests),
        bodies=state.get("pending") or [],
        input_text=text,
    )
    return cid
