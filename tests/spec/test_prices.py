"""The price table (``prices:`` in ``.kneo/config.yaml``) and what it says a call cost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.cli.runs_cmd import _usage_rows
from kneo.engine.budgets import price_call, shown_amount
from kneo.errors import SpecError
from kneo.policy.environment import BudgetsPolicy, merge_budgets
from kneo.spec.prices import PriceTable, call_cost
from kneo.spec.project import load_project_config
from kneo.usage import count_spent, shown_usage, to_nanos

TABLE = PriceTable.model_validate(
    {
        "providers": {
            "openai": {"gpt-x": {"input": 0.15, "output": 0.6, "cached_input": 0.075}},
            "anthropic": {"claude-y": {"input": "3", "output": "15"}},
        }
    }
)


def test_a_call_costs_its_tokens_at_the_tables_prices_in_nanos() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 200}
    # 1000 x 0.15 + 200 x 0.6 per million = 0.00015 + 0.00012 USD
    assert call_cost(TABLE, "openai", "gpt-x", usage) == 270_000
    assert TABLE.currency == "USD"
    # cached input tokens are part of input_tokens, at their own price
    cached = {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 0}
    assert call_cost(TABLE, "openai", "gpt-x", cached) == 600 * 150 + 400 * 75
    # no cached price: the input price
    assert call_cost(TABLE, "anthropic", "claude-y", {"input_tokens": 10}) == 30_000


def test_prices_are_exact_decimals_and_a_call_rounds_half_up_to_the_nano() -> None:
    table = PriceTable.model_validate({"providers": {"p": {"m": {"input": 0.0005, "output": 0}}}})
    assert table.providers["p"]["m"].input == Decimal("0.0005")
    assert call_cost(table, "p", "m", {"input_tokens": 1}) == 1  # 0.5 nanos rounds up
    assert call_cost(table, "p", "m", {"input_tokens": 3}) == 2  # 1.5 -> 2


def test_a_model_the_table_does_not_name_has_no_cost_not_zero() -> None:
    assert call_cost(TABLE, "openai", "gpt-unknown", {"input_tokens": 5}) is None
    assert call_cost(TABLE, "anthropic", "gpt-x", {"input_tokens": 5}) is None
    assert price_call(None, "openai", "gpt-x", {"input_tokens": 5}) is None  # no table


def test_the_digest_names_the_table_version() -> None:
    same = PriceTable.model_validate(TABLE.model_dump())
    changed = PriceTable.model_validate(
        {"providers": {"openai": {"gpt-x": {"input": 0.2, "output": 0.6}}}}
    )
    assert same.digest == TABLE.digest != changed.digest
    assert len(TABLE.digest) == 16


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ({"currency": "usd"}, "prices.currency"),
        ({"providers": {"openai": {"m": {"input": -1, "output": 1}}}}, "prices.providers.openai.m.input"),
        ({"providers": {"openai": {"m": {"input": "abc", "output": 1}}}}, "prices.providers.openai.m.input"),
        ({"providers": {"openai": {"m": {"input": 1}}}}, "prices.providers.openai.m.output"),
        ({"providers": {"openai": {"m": {"input": 1, "output": 1, "cache": 1}}}}, "prices.providers.openai.m.cache"),
        ({"per_million": 1}, "prices.per_million"),
    ],
)  # fmt: skip
def test_a_bad_price_table_is_refused_naming_the_field(
    tmp_path: Path, prices: dict[str, Any], field: str
) -> None:
    path = tmp_path / ".kneo" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"version": "v1", "prices": prices}))
    with pytest.raises(SpecError) as refused:
        load_project_config(path)
    assert refused.value.code == "E_SCHEMA"
    assert field in [d["path"] for d in refused.value.details["diagnostics"]]


def test_a_units_spent_carries_cost_once_a_table_prices_it() -> None:
    record: dict[str, Any] = {}
    count_spent(record, {"input_tokens": 3, "output_tokens": 1})  # no table: as before
    assert record["spent"] == [1, 3, 1]
    priced = price_call(TABLE, "openai", "gpt-x", {"input_tokens": 1000, "output_tokens": 200})
    count_spent(record, {"input_tokens": 1000, "output_tokens": 200}, priced)
    # the call before the table counts unpriced: the unit's cost is unknown
    assert record["spent"] == [2, 1003, 201, 270_000, 1]
    assert record["prices"] == [TABLE.digest, "USD"]
    shown = shown_usage([record])
    assert shown["cost"] is None and shown["unpriced_calls"] == 1
    fresh: dict[str, Any] = {}
    count_spent(fresh, {"input_tokens": 1000, "output_tokens": 200}, priced)
    shown = shown_usage([fresh])
    assert shown["cost"] == pytest.approx(0.00027) and shown["currency"] == "USD"


def test_max_cost_merges_to_the_smaller_and_shows_in_the_currency_unit() -> None:
    a = BudgetsPolicy(max_cost=Decimal("2.50"))
    b = BudgetsPolicy(max_cost=Decimal("0.75"), max_tokens=10)
    merged = merge_budgets(a, b)
    assert merged.max_cost == Decimal("0.75") and merged.limits["cost"] == to_nanos("0.75")
    assert merge_budgets(a, BudgetsPolicy()).max_cost == Decimal("2.50")
    assert shown_amount("cost", to_nanos("0.75")) == "0.75"
    assert shown_amount("cost", 0) == "0" and shown_amount("tokens", 5) == "5"


def test_kneo_runs_get_shows_the_cost_or_why_it_is_unknown() -> None:
    counts = {"model_calls": 2, "tool_calls": 1, "input_tokens": 40, "output_tokens": 14}
    priced = {**counts, "cost": 0.00024, "currency": "EUR", "unpriced_calls": 0, "steps": []}
    assert _usage_rows(priced)[-1] == ["cost", "0.00024 EUR"]
    unknown = {**priced, "cost": None, "unpriced_calls": 1}
    assert _usage_rows(unknown)[-1] == ["cost", "unknown (1 model calls not priced)"]
    no_table = {**counts, "cost": None, "currency": None, "unpriced_calls": 2, "steps": []}
    assert [row[0] for row in _usage_rows(no_table)] == ["usage"]
