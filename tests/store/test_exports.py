"""The public surface of kneo.store is exactly its ``__all__``."""

from __future__ import annotations

import kneo.store


def test_all_names_exist_and_are_sorted() -> None:
    """Every exported name resolves, and the list stays sorted for review."""
    assert all(hasattr(kneo.store, name) for name in kneo.store.__all__)
    assert kneo.store.__all__ == sorted(kneo.store.__all__)
