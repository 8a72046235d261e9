"""``LocalClient`` and ``ServiceClient`` implement one ``PlatformClient`` (issue 74): every
method of the Protocol is on both, taking the same parameters, and each side refuses what
only the other can do with a clear error."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from kneo.cli.client import LocalClient
from kneo.cli.platform_client import PlatformClient
from kneo.cli.service_client import ServiceClient
from kneo.errors import KneoError

CLIENTS = [LocalClient, ServiceClient]


def protocol_methods() -> dict[str, Callable[..., object]]:
    return {
        name: member
        for name, member in vars(PlatformClient).items()
        if callable(member) and not name.startswith("_")
    }


def test_the_protocol_names_what_the_commands_call() -> None:
    assert {"run", "get_run", "resume", "decide", "list_runs", "replay_run", "request"} <= set(
        protocol_methods()
    )


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)
def test_each_client_has_every_method_of_the_protocol(client: type) -> None:
    missing = sorted(
        set(protocol_methods()) - {n for n in dir(client) if callable(getattr(client, n))}
    )
    assert missing == []


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)
def test_each_method_takes_the_protocols_parameters(client: type) -> None:
    """Same names, same kinds; a parameter the Protocol leaves optional is optional on the
    client too, and any the client adds is optional (or ``**``)."""
    different = []
    for name, method in protocol_methods().items():
        wanted = inspect.signature(method).parameters
        given = inspect.signature(getattr(client, name)).parameters
        named = {p: v for p, v in given.items() if v.kind is not v.VAR_KEYWORD}
        same = [p for p in wanted if p in given and given[p].kind == wanted[p].kind]
        extra = [
            p
            for p, v in named.items()
            if p not in wanted and v.default is v.empty and v.kind is not v.VAR_POSITIONAL
        ]
        optional = [
            p
            for p, v in wanted.items()
            if v.default is not v.empty and p in given and given[p].default is given[p].empty
        ]
        if len(same) != len(wanted) or extra or optional:
            different.append(f"{name}: {list(wanted)} vs {list(given)}")
    assert different == []


def test_a_service_refuses_a_local_replay_with_a_clear_error() -> None:
    client = ServiceClient("http://kneo.test", retries=0)  # nothing is sent
    with client, pytest.raises(KneoError) as refused:
        client.replay_run("run_1", reuse="questions")
    assert refused.value.code == "service_mode_unavailable"
    assert "locally" in refused.value.message


def test_the_local_client_refuses_a_raw_api_request_with_a_clear_error() -> None:
    with pytest.raises(KneoError) as refused:
        LocalClient().request("GET", "/v1/notifications")
    assert refused.value.code == "usage_error"
    assert "--service-url" in refused.value.message
