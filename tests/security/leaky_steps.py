"""Function steps for the secret-shape tests (no imports the unsafe-import check rejects)."""

SHAPES_ENV = "KNEO_TEST_SECRET_SHAPES"


def leak(text: str) -> str:
    """Fail with every planted shape in the error, and the step's input after it."""
    raise RuntimeError(f"upstream said: {text}")
