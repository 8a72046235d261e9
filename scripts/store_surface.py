#!/usr/bin/env python
"""Count the callable surface of the store (issue 57: one way to write; issue 74: one honest
count).

    python scripts/store_surface.py

Few ways to read, too: the Store keeps its lifecycle (transactions, schema, connections) and
holds each concern as a facet attribute (``store.runs``, ``store.registry``, ...), whose
class callers annotate with (each signature written once). What a caller can call is the
*callable surface*: the Store's own public members (its facets not counted as members: they
are only the way to their methods), the Transaction's, and every facet's methods. Counting a
facet as one member hid its methods (126 of 182 when this count began), so the figure the
test holds is the callable surface, and the facets' methods are listed per facet.

A write is a transaction's method only (``with store.transaction() as tx: tx.update_run(...)``),
so its signature is written once and a caller cannot pick between two ways to write. What
the Store and the Transaction both have is a read: a transaction reads what it is about to
change (``get_run(..., for_update=True)``) or what it wrote. This prints each class's public
members (methods and properties, as ``dir`` lists them), the members on both, and any of
those that is not one of the expected reads; ``tests/store/test_store_surface.py`` fails on
such a member and holds the counts at or below its ceilings.
"""

from __future__ import annotations

import typing

from kneo.store.api import Store, Transaction
from kneo.store.base import Facet

#: The reads both have on purpose (the transaction's in its own view, with its writes).
READS_ON_BOTH = frozenset(
    {"get_active", "get_continuation", "get_revision", "get_run", "list_promotion_approvals"}
)


def public(cls: type) -> set[str]:
    """The public members of ``cls`` (what ``dir`` lists without a leading underscore)."""
    return {name for name in dir(cls) if not name.startswith("_")}


def facets() -> dict[str, type]:
    """The Store's facet attributes and their classes (its annotations of a :class:`Facet`)."""
    return {
        name: cls
        for name, cls in typing.get_type_hints(Store).items()
        if isinstance(cls, type) and issubclass(cls, Facet) and not name.startswith("_")
    }


def facet_methods(cls: type) -> set[str]:
    """A facet's public methods: ``dir`` without underscores (the state it shares with the
    store, ``engine``, ``clock``, ..., is set on the instance, never a method)."""
    return public(cls)


def surface() -> tuple[set[str], set[str]]:
    """The Store's public members (with its facets) and the Transaction's."""
    return public(Store) | set(facets()), public(Transaction)


def store_methods() -> set[str]:
    """What a caller can call through the store: its own methods and its facets'."""
    return public(Store).union(*map(facet_methods, facets().values()))


def own_members() -> set[str]:
    """The Store's public members that are not facets: its lifecycle and its project."""
    return public(Store) - set(facets())


def callable_surface() -> int:
    """What a caller can call: the Store's own members, the Transaction's and every facet's
    methods (a method of two facets, or of a facet and the Transaction, counts twice: a
    caller meets it twice)."""
    return (
        len(own_members())
        + len(public(Transaction))
        + sum(len(facet_methods(c)) for c in facets().values())
    )


def on_both() -> set[str]:
    """The methods both the store (or a facet of it) and the Transaction have."""
    return store_methods() & public(Transaction)


def on_both_not_reads() -> set[str]:
    """Members of both that are not the expected reads: a write offered twice."""
    return on_both() - READS_ON_BOTH


def main() -> None:
    """Print the counts, the members on both and any unexpected one."""
    tx = public(Transaction)
    found = facets()
    methods = sum(len(facet_methods(c)) for c in found.values())
    print(f"callable surface: {callable_surface()}")
    print(f"  Store: {len(own_members())} own members (and {len(found)} facets)")
    print(f"  Transaction: {len(tx)} methods")
    print(f"  facets: {methods} methods")
    for name, cls in found.items():
        print(f"  store.{name}: {len(facet_methods(cls))} ({cls.__name__})")
    print(f"on both ({len(on_both())}): {', '.join(sorted(on_both()))}")
    unexpected = on_both_not_reads()
    if unexpected:
        print(f"on both and not a read (write through a transaction): {sorted(unexpected)}")


if __name__ == "__main__":
    main()
