"""The ``shape`` fixture: each of the four documented shapes, built once per test worker.

Every test that takes ``shape`` runs once per shape. Each shape's tests share one xdist group
(``matrix-<shape>``), so under ``pytest -n`` all of one shape's journeys land on one worker and
its processes start once; the four shapes spread over the workers.

The original clients are the shape's first visitors (:func:`client_outcomes`, run while the
shape is built): their driver counts "every run so far", so they meet an empty store
whatever order the journeys run in.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.matrix.shapes import SHAPES, Shape, build
from tests.pip_packages import venv_for
from tests.service.svc_helpers import KEYS, ROOT

CLIENTS = ("kneo-client==1.2.0", "kneo-dash==0.8.0")
DRIVERS = Path(__file__).resolve().parents[1] / "service" / "original_clients"


def _drive(python: Path, script: str, url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO_", "PYTHON"))}
    env |= {
        "KNEO_OPERATOR_KEY": KEYS["operator"],
        "KNEO_REVIEWER_KEY": KEYS["reviewer"],
        "KNEO_ADMIN_KEY": KEYS["admin"],
    }
    done = subprocess.run(
        [str(python), str(DRIVERS / script), url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def client_outcomes(shape: Shape) -> dict[str, Any]:
    """``kneo-client``'s every method, then ``kneo-dash``'s every route, against ``shape``."""
    python = venv_for(CLIENTS, ignore_requires_python=True)
    return {
        "client": _drive(python, "drive_kneo_client.py", shape.url),
        "dash": _drive(python, "drive_kneo_dash.py", shape.url),
    }


class Shapes:
    """The shapes this worker has built, each kept until the session ends (a journey of
    another shape in between does not stop one)."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.built: dict[str, Shape] = {}

    def get(self, name: str) -> Shape:
        if name not in self.built:
            shape = build(name, self.tmp.mktemp(f"shape-{name}"))
            self.built[name] = shape
            shape.outcomes = client_outcomes(shape)
        return self.built[name]

    def stop(self) -> None:
        for shape in self.built.values():
            shape.stop()


@pytest.fixture(scope="session")
def _shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shapes]:
    shapes = Shapes(tmp_path_factory)
    yield shapes
    shapes.stop()


@pytest.fixture(
    params=[pytest.param(name, marks=pytest.mark.xdist_group(f"matrix-{name}")) for name in SHAPES],
)
def shape(request: pytest.FixtureRequest, _shapes: Shapes) -> Shape:
    """One of the four shapes (the test runs once per shape), started on first use."""
    return _shapes.get(str(request.param))


@pytest.fixture
def two_projects(_shapes: Shapes) -> Shape:
    """The two-projects shape alone, for journeys about projects (mark the test
    ``xdist_group("matrix-two-projects")`` so it runs where that shape is built)."""
    return _shapes.get("two-projects")
