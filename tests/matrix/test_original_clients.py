"""The original platform's clients in every shape: ``kneo-client`` 1.2.0's every public method
and ``kneo-dash`` 0.8.0's every route (the drivers of ``tests/service/original_clients``, run
as each shape's first visitors by ``conftest.client_outcomes``), asserted by the same checks
``tests/service/test_original_clients.py`` makes of one box."""

from __future__ import annotations

import pytest

from tests.matrix.shapes import Shape
from tests.service import test_original_clients as one_box

pytestmark = pytest.mark.slow


def test_every_client_method_is_driven_and_succeeds(shape: Shape) -> None:
    driven = shape.outcomes["client"]
    one_box.test_every_public_method_is_driven(driven)
    one_box.test_every_method_succeeds(driven)


def test_the_client_reads_what_it_expects(shape: Shape) -> None:
    driven = shape.outcomes["client"]
    one_box.test_answers_carry_what_the_client_reads(driven)
    one_box.test_graphs_preview_and_skills_as_the_client_reads_them(driven)
    one_box.test_unknown_filters_are_refused_not_ignored(driven)


def test_every_dashboard_route_answers_with_data(shape: Shape) -> None:
    one_box.test_every_dashboard_route_answers_with_data(shape.outcomes["dash"])
