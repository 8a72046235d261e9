"""The store's contract (``kneo.store.contracts`` and its rooms' ``*_contracts`` modules)
covers its public API, member by member.

``mypy --strict`` checks that ``Store``, each of its facets and ``Transaction`` satisfy each
protocol (the module's ``_conformance``); these tests check the other direction: a public
method added to the store or a facet without a place in the contract, or a protocol member
an implementation renamed, fails.
"""

from __future__ import annotations

import inspect
import typing
from typing import Protocol

import pytest

from kneo.store import (
    Store,
    Transaction,
    contracts,
    coordination_contracts,
    outbox_contracts,
    project_contracts,
    registry_contracts,
    start_contracts,
    transaction_contracts,
)
from kneo.store.base import Facet

#: Where the protocols are defined: the store's own and one module per room
#: (``contracts`` re-exports the rooms' and the transaction's).
MODULES = tuple(
    module.__name__
    for module in (
        contracts,
        coordination_contracts,
        outbox_contracts,
        project_contracts,
        registry_contracts,
        transaction_contracts,
        start_contracts,
    )
)

PROTOCOLS = {
    name: value
    for name, value in {
        **vars(contracts),
        **vars(transaction_contracts),
        **vars(start_contracts),
    }.items()
    if isinstance(value, type)
    and getattr(value, "_is_protocol", False)
    and value.__module__ in MODULES
}
FACETS = {
    name: cls
    for name, cls in typing.get_type_hints(Store).items()
    if isinstance(cls, type) and issubclass(cls, Facet)
}
TRANSACTION_PROTOCOLS = {name for name in PROTOCOLS if name.endswith("Transaction")}


def _members(cls: type) -> set[str]:
    return {
        name
        for klass in cls.__mro__
        if klass not in (object, Protocol) and klass.__module__ in MODULES
        for name in list(vars(klass)) + list(getattr(klass, "__annotations__", {}))
        if not name.startswith("_")
    }


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_public_store_method_is_in_a_protocol() -> None:
    covered = set().union(
        *(_members(p) for n, p in PROTOCOLS.items() if n not in TRANSACTION_PROTOCOLS)
    )
    # engine and dialect are the store's own wiring, not something callers rely on
    internal = {"engine", "dialect", "specs_held"}
    assert (_public(Store) | set(FACETS)) - covered - internal == set()


@pytest.mark.parametrize("facet", sorted(FACETS))
def test_every_public_facet_method_is_its_protocols(facet: str) -> None:
    """A facet's public methods are exactly its protocol's (``store.runs``: ``RunReads``),
    the protocol its ``Has*`` holder declares."""
    holder = next(p for n, p in PROTOCOLS.items() if n.startswith("Has") and facet in vars(p))
    protocol = typing.get_type_hints(getattr(holder, facet).fget)["return"]
    assert _public(FACETS[facet]) == _members(protocol) - {"clock"}, facet


def test_every_public_transaction_method_is_in_a_protocol() -> None:
    covered = set().union(*(_members(PROTOCOLS[n]) for n in TRANSACTION_PROTOCOLS))
    assert _public(Transaction) - covered == set()


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_members_exist_with_the_same_parameters(name: str) -> None:
    """Each member is on the implementation, with the protocol's parameter names (an
    implementation's ``**fields`` accepts the protocol's keyword names; a protocol's
    ``**fields: Unpack[...]`` is checked key by key by mypy)."""
    impls = [Transaction] if name in TRANSACTION_PROTOCOLS else [Store, *FACETS.values()]
    for member in _members(PROTOCOLS[name]):
        impl = next((c for c in impls if hasattr(c, member)), impls[0])
        assert hasattr(impl, member) or member in _instance_attributes(impl), (name, member)
        declared = getattr(PROTOCOLS[name], member, None)
        actual = getattr(impl, member, None)
        if not callable(declared) or not callable(actual) or isinstance(declared, property):
            continue
        wanted = inspect.signature(declared).parameters
        found = inspect.signature(actual).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in found.values())
        missing = [
            p
            for p in wanted
            if p not in found
            and not (takes_any and wanted[p].kind is wanted[p].KEYWORD_ONLY)
            and wanted[p].kind
            is not wanted[p].VAR_KEYWORD  # Unpack[TypedDict]: mypy checks its keys
        ]
        assert not missing, (name, member, missing)


def _instance_attributes(cls: type) -> set[str]:
    # ``wakeups``: the store's listener for LISTEN/NOTIFY (kneo.store.coordination.wakeups),
    # an instance attribute like the facets
    if cls is Store:
        return {"clock", "settings", "wakeups", *FACETS}
    return {"marks_registry_changes", "now"}
