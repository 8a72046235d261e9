"""Fixtures for the identity tests: a real OpenID provider per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oidc_helpers import OpenIdProvider


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    provider = OpenIdProvider(tmp_path_factory.mktemp("idp")).start()
    yield provider
    provider.stop()
