"""What model calls cost in money (``prices:`` in ``.kneo/config.yaml``): priced from the
usage the provider reported over HTTP, summed per step and run, fed to the day's usage, the
rollout counters and ``kneo_model_cost_total``, and capped by ``budgets.max_cost``; on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kneo import Decision, metrics
from kneo.errors import ProjectLimitReached
from kneo.platform import PlatformManager, create_platform
from kneo.platform.limits import utc_day
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.fake_models.server import INPUT_PER_MESSAGE, OUTPUT_PER_REPLY, FakeModels, serve

#: per million tokens: input, output
PRICES = {"input": "2.50", "output": "10", "cached_input": "1.25"}
#: the script's two turns: 1 message sent, then 3 (user, assistant, tool result)
INPUT, OUTPUT = 4 * INPUT_PER_MESSAGE, 2 * OUTPUT_PER_REPLY
NANOS = INPUT * 2500 + OUTPUT * 10_000  # 2.50 and 10 per million = 2500 and 10000 nanos each
FIRST_CALL = INPUT_PER_MESSAGE * 2500 + OUTPUT_PER_REPLY * 10_000
SCRIPT = [
    {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b"}}]},
    {"text": "two"},
]


def _spec(model: str, url: str) -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {
            "name": "counter",
            "tools": ["word_count"],
            "policies": {"tool": {"allow": ["word_count"]}},
            "model": {"provider": "openai", "name": model, "base_url": url},
        },
        "workflow": {
            "type": "sequential",
            "name": "priced",
            "steps": [{"id": "count", "kind": "agent", "ref": "counter"}],
        },
    }


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_database")()
        return url
    return None


@pytest.fixture
def fake() -> Iterator[FakeModels]:
    with serve() as server:
        server.script("priced-model", SCRIPT)
        server.script("unpriced-model", SCRIPT)
        yield server


@pytest.fixture
def platform(
    tmp_path: Path, database: str | None, fake: FakeModels
) -> Iterator[Callable[..., PlatformManager]]:
    made: list[PlatformManager] = []

    def make(budgets: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> Any:
        config: dict[str, Any] = {
            "version": "v1",
            "prices": {"currency": "EUR", "providers": {"openai": {"priced-model": PRICES}}},
        }
        if limits:
            config["limits"] = limits
        (tmp_path / ".kneo").mkdir(exist_ok=True)
        (tmp_path / ".kneo" / "config.yaml").write_text(yaml.safe_dump(config))
        if budgets:
            (tmp_path / "environments").mkdir(exist_ok=True)
            policy = {"version": "v1", "budgets": budgets}
            (tmp_path / "environments" / "dev.yaml").write_text(yaml.safe_dump(policy))
        for model in ("priced-model", "unpriced-model"):
            spec = yaml.safe_dump(_spec(model, fake.url))
            (tmp_path / f"{model}.yaml").write_text(spec)
        env = {"OPENAI_API_KEY": "sk-cost-000000000000000000000000"}
        if database:
            env["KNEO_SERV_DATABASE_URL"] = database
        settings = Settings.from_env(env)
        manager = create_platform(
            settings, ProjectContext.discover(cwd=tmp_path, settings=settings)
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.store.close()


def _cost_metric(provider: str, model: str) -> dict[str, float]:
    body, _ = metrics.render(metrics._metrics.registry)  # type: ignore[union-attr]
    return {
        s.labels["currency"]: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "kneo_model_cost_total"
        and s.labels["provider"] == provider
        and s.labels["model"] == model
    }


def test_a_run_costs_what_the_price_table_says_of_the_reported_usage(
    platform: Callable[..., PlatformManager], tmp_path: Path
) -> None:
    metrics.enable()
    before = _cost_metric("openai", "priced-model").get("EUR", 0.0)
    manager = platform(limits={"max_tokens_per_day": 1_000_000})
    result = manager.run_from_spec(
        input_text="count",
        spec_path=tmp_path / "priced-model.yaml",
        metadata={"rollout": {"id": "ro_cost", "track": "canary"}},
    )
    assert result.status == "succeeded"
    usage = manager.get_run(result.run_id)["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (INPUT, OUTPUT)
    assert usage["cost"] == pytest.approx(NANOS / 1e9, abs=1e-12)
    assert (usage["currency"], usage["unpriced_calls"]) == ("EUR", 0)
    assert usage["steps"][0]["cost"] == usage["cost"]
    # each call's event names its cost and the table that priced it
    events = manager.store.runs.list_trace(result.run_id).items
    turns = [e.payload for e in events if e.event_type == "model_turn_completed"]
    assert [t["cost"] for t in turns] == pytest.approx(
        [FIRST_CALL / 1e9, (NANOS - FIRST_CALL) / 1e9]
    )
    assert len({t["prices"] for t in turns}) == 1 and turns[0]["currency"] == "EUR"
    # the day's usage of the project, the rollout's counters, the metric
    day = manager.store.limits.day_usage(utc_day(manager.store.clock.now()))
    assert (day.tokens, day.cost) == (INPUT + OUTPUT, NANOS)
    canary = manager.store.rollouts.figures("ro_cost")["canary"]
    assert (canary.cost, canary.priced) == (pytest.approx(NANOS / 1e9), 1)
    after = _cost_metric("openai", "priced-model")["EUR"]
    assert after - before == pytest.approx(NANOS / 1e9)


def test_a_model_the_table_does_not_price_has_no_cost(
    platform: Callable[..., PlatformManager], tmp_path: Path
) -> None:
    manager = platform()
    result = manager.run_from_spec(
        input_text="count",
        spec_path=tmp_path / "unpriced-model.yaml",
        metadata={"rollout": {"id": "ro_unpriced", "track": "canary"}},
    )
    assert result.status == "succeeded"
    usage = manager.get_run(result.run_id)["usage"]
    assert usage["model_calls"] == 2 and usage["cost"] is None and usage["unpriced_calls"] == 2
    # a rollout run of unknown cost counts as finished, not as priced at 0
    canary = manager.store.rollouts.figures("ro_unpriced")["canary"]
    assert (canary.finished, canary.priced, canary.cost) == (1, 0, 0.0)
    events = manager.store.runs.list_trace(result.run_id).items
    assert [e.payload["cost"] for e in events if e.event_type == "model_turn_completed"] == [
        None,
        None,
    ]


def test_a_money_budget_fails_the_run_before_the_call_past_it(
    platform: Callable[..., PlatformManager], tmp_path: Path
) -> None:
    limit = (FIRST_CALL - 1) / 1e9  # the first call crosses it: the second is refused
    manager = platform(budgets={"max_cost": limit, "on_exceeded": "fail"})
    result = manager.run_from_spec(input_text="count", spec_path=tmp_path / "priced-model.yaml")
    assert result.status == "failed"
    view = manager.get_run(result.run_id)
    assert view["error"]["code"] == "budget_exceeded", view["error"]
    assert "in model cost" in view["error"]["message"]
    assert view["usage"]["model_calls"] == 1


def test_a_money_budget_pauses_and_a_person_raises_it(
    platform: Callable[..., PlatformManager], tmp_path: Path
) -> None:
    limit = (FIRST_CALL - 1) / 1e9
    manager = platform(budgets={"max_cost": limit})
    paused = manager.run_from_spec(input_text="count", spec_path=tmp_path / "priced-model.yaml")
    assert paused.status == "paused"
    assert paused.continuation_id is not None and paused.request_id is not None
    task = manager.get_human_task(paused.continuation_id)
    (request,) = task["requests"]
    assert request["kind"] == "budget" and request["context"]["budget"] == "cost"
    assert request["context"]["used"] == pytest.approx(FIRST_CALL / 1e9)
    assert request["input_schema"]["properties"]["limit"]["type"] == "number"
    raised = json.dumps({"limit": 1.0})
    done = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "provided", content=raised)
    )
    assert done.status == "succeeded"
    assert manager.get_run(done.run_id)["usage"]["cost"] == pytest.approx(NANOS / 1e9)


def test_a_daily_money_budget_stops_the_project_for_the_day(
    platform: Callable[..., PlatformManager], tmp_path: Path
) -> None:
    limit = (FIRST_CALL - 1) / 1e9
    manager = platform(limits={"max_cost_per_day": limit, "on_exceeded": "fail"})
    result = manager.run_from_spec(input_text="count", spec_path=tmp_path / "priced-model.yaml")
    view = manager.get_run(result.run_id)
    assert view["status"] == "failed" and view["error"]["code"] == "budget_exceeded"
    assert "limits.max_cost_per_day" in view["error"]["message"]
    with pytest.raises(ProjectLimitReached) as refused:
        manager.run_from_spec(input_text="count", spec_path=tmp_path / "priced-model.yaml")
    assert refused.value.details["field"] == "limits.max_cost_per_day"
