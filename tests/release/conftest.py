"""One build of the wheel and sdist per test session (tests/release/wheel_build.py)."""

from __future__ import annotations

import pytest

from tests.release.wheel_build import Built, build_distributions


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_distributions(tmp_path_factory.mktemp("dist"))
