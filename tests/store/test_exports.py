"""The public surface of kneo.store is exactly its ``__all__``."""

from __future__ import annotations

import kneo.store


def test_all_names_exist_and_records_are_exported() -> None:
    """Every exported name resolves, once, and every record type is part of the surface."""
    import dataclasses

    from kneo.store import records

    exported = kneo.store.__all__
    assert all(hasattr(kneo.store, name) for name in exported)
    assert len(set(exported)) == len(exported)
    record_types = {
        name
        for name, value in vars(records).items()
        if isinstance(value, type)
        and value.__module__ == records.__name__
        and (dataclasses.is_dataclass(value) or issubclass(value, tuple))
    }
    assert record_types <= set(exported)
