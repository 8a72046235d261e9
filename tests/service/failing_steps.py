"""Function steps for service tests (kept free of imports the unsafe-import check rejects)."""

FAILING_SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "failing",
        "steps": [{"id": "boom", "kind": "function", "ref": "tests.service.failing_steps:boom"}],
    },
}


def boom(text: str) -> str:
    """Always fails, so a run ends ``failed`` (and can be continued)."""
    raise RuntimeError("boom")


def leak(text: str) -> str:
    """Fails with a secret-looking value in its error, and the step's input after it."""
    raise RuntimeError(f"vault refused: secret=err-PLANTED-4444 while handling {text}")
