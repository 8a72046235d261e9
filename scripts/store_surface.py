#!/usr/bin/env python
"""Count the public surface of the Store and its Transaction (issue 57: one way to write).

    python scripts/store_surface.py

A write is a transaction's method only (``with store.transaction() as tx: tx.update_run(...)``),
so its signature is written once and a caller cannot pick between two ways to write. What
the Store and the Transaction both have is a read: a transaction reads what it is about to
change (``get_run(..., for_update=True)``) or what it wrote. This prints each class's public
members (methods and properties, as ``dir`` lists them), the members on both, and any of
those that is not one of the expected reads; ``tests/store/test_store_surface.py`` fails on
such a member and holds the counts at or below its ceilings.
"""

from __future__ import annotations

from kneo.store.api import Store, Transaction

#: The reads both have on purpose (the transaction's in its own view, with its writes).
READS_ON_BOTH = frozenset(
    {"get_continuation", "get_revision", "get_run", "list_promotion_approvals"}
)


def public(cls: type) -> set[str]:
    """The public members of ``cls`` (what ``dir`` lists without a leading underscore)."""
    return {name for name in dir(cls) if not name.startswith("_")}


def surface() -> tuple[set[str], set[str]]:
    """The Store's public members and the Transaction's."""
    return public(Store), public(Transaction)


def on_both_not_reads() -> set[str]:
    """Members of both that are not the expected reads: a write offered twice."""
    store, tx = surface()
    return (store & tx) - READS_ON_BOTH


def main() -> None:
    """Print the counts, the members on both and any unexpected one."""
    store, tx = surface()
    print(f"Store: {len(store)} public members")
    print(f"Transaction: {len(tx)} public members")
    print(f"total: {len(store) + len(tx)}")
    print(f"on both ({len(store & tx)}): {', '.join(sorted(store & tx))}")
    unexpected = on_both_not_reads()
    if unexpected:
        print(f"on both and not a read (write through a transaction): {sorted(unexpected)}")


if __name__ == "__main__":
    main()
