"""The original platform's clients in every shape: ``kneo-client`` 1.2.0's every public method
and ``kneo-dash`` 0.8.0's every route (the drivers of ``tests/service/original_clients``, run
as each shape's first visitors by ``conftest.client_outcomes``), asserted by
:mod:`tests.matrix.client_checks`."""

from __future__ import annotations

import pytest

from tests.matrix import client_checks as check
from tests.matrix.shapes import Shape

pytestmark = pytest.mark.slow


def test_every_client_method_is_driven_and_succeeds(shape: Shape) -> None:
    driven = shape.outcomes["client"]
    check.check_every_public_method_is_driven(driven)
    check.check_every_method_succeeds(driven)


def test_the_client_reads_what_it_expects(shape: Shape) -> None:
    driven = shape.outcomes["client"]
    check.check_answers_carry_what_the_client_reads(driven)
    check.check_graphs_preview_and_skills_as_the_client_reads_them(driven)
    check.check_unknown_filters_are_refused_not_ignored(driven)


def test_every_dashboard_route_answers_with_data(shape: Shape) -> None:
    check.check_every_dashboard_route_answers_with_data(shape.outcomes["dash"])
