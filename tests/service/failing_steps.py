"""Function steps for service tests (kept free of imports the unsafe-import check rejects)."""

FAILING_SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "failing",
        "steps": [{"id": "boom", "kind": "function", "ref": "failing_steps:boom"}],
    },
}


def boom(text: str) -> str:
    """Always fails, so a run ends ``failed`` (and can be continued)."""
    raise RuntimeError("boom")
