"""Running an eval suite through the real engine, each case in an isolated store.

The spec is resolved for the environment exactly as ``kneo spec bundle sign`` resolves it
(overlay and project defaults), so the digest a result names is the digest a bundle of that
spec carries. Each case runs that resolved spec (its dummy script and overrides merged in)
through a :class:`~kneo.platform.PlatformManager` over a throwaway SQLite store: nothing
reaches the project's run state. Cases run on ``workers`` threads, each with its own
platform and store (no shared database file, so no lock waits between cases).

What a case is judged on comes from the run's durable trace, the same events ``kneo runs
trace`` shows: tool calls (with arguments: the isolated platform records them), model turns
(usage summed by :func:`kneo.usage.count_usage`) and the pending human requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo.bundle.digest import canonical_json, sha256_digest, spec_digest
from kneo.bundle.format import EvalAttestation
from kneo.documents import DocumentError, parse_json
from kneo.engine.judge import ModelJudge, transcript
from kneo.errors import BundleError, ErrorCode, KneoError
from kneo.evals.suite import EvalCase, EvalSuite, Expectations
from kneo.platform.factory import create_platform
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.loader import deep_merge, load_spec
from kneo.spec.pinning import pin_code
from kneo.spec.project import ProjectContext
from kneo.spec.yaml_io import dump_yaml
from kneo.store import DEFAULT_SQLITE_NAME, open_store
from kneo.usage import USAGE_FIELDS, count_usage
from kneo.version import package_version

if TYPE_CHECKING:
    from kneo.tools import ToolRegistry

#: Default number of cases in flight at once: up to 4, no more than the machine's CPUs (with
#: the dummy provider a case is CPU work; more threads than cores only contend, bench/evals.py).
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class CaseResult:
    """One case's outcome and what it was judged on."""

    case_id: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    status: str = ""
    output: str = ""
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case_id,
            "outcome": "passed" if self.passed else "failed",
            "failures": list(self.failures),
            "status": self.status,
            "output": self.output,
            "seconds": round(self.seconds, 4),
            "usage": dict(self.usage),
            "tool_calls": list(self.tool_calls),
            "pauses": list(self.pauses),
            "error": self.error,
        }


@dataclass
class SuiteResult:
    """A suite's result against one resolved spec: what an attestation records."""

    suite: str
    suite_digest: str
    spec_path: str
    environment: str | None
    spec_digest: str
    pass_threshold: float
    cases: list[CaseResult]
    seconds: float = 0.0
    kneo_version: str = ""

    @property
    def passed(self) -> int:
        return sum(1 for c in self.cases if c.passed)

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.pass_rate >= self.pass_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "KneoEvalResult",
            "version": "v1",
            "suite": self.suite,
            "suite_digest": self.suite_digest,
            "spec_path": self.spec_path,
            "environment": self.environment,
            "digest": self.spec_digest,
            "pass_threshold": self.pass_threshold,
            "pass_rate": round(self.pass_rate, 6),
            "passed": self.passed,
            "total": self.total,
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "kneo_version": self.kneo_version,
            "cases": [c.to_dict() for c in self.cases],
        }


#: The members of a result document an attestation carries as they are (and ``cases``).
ATTESTED = ("suite", "suite_digest", "digest", "pass_rate", "passed", "total", "kneo_version")


def attestation(result: Mapping[str, Any]) -> EvalAttestation:
    """The signed-bundle form of a result document (:meth:`SuiteResult.to_dict`, as
    ``kneo eval run --results`` writes it); ``bundle_malformed`` when it is not one."""
    from pydantic import ValidationError

    if not isinstance(result, Mapping) or result.get("kind") != "KneoEvalResult":
        raise BundleError(
            "not an eval result (write one with kneo eval run --results FILE)",
            code=ErrorCode.bundle_malformed,
            field="evals",
        )
    try:
        return EvalAttestation.model_validate(
            {
                **{k: result.get(k) for k in ATTESTED},
                "cases": [
                    {"id": c.get("id"), "outcome": c.get("outcome")}
                    for c in result.get("cases") or []
                    if isinstance(c, Mapping)
                ],
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleError(
            f"eval result does not match at {where}: {first['msg']}",
            code=ErrorCode.bundle_malformed,
            field=f"evals.{where}",
        ) from None


def suite_digest(suite: EvalSuite) -> str:
    """``sha256:`` of the suite's canonical JSON: which cases and expectations were run."""
    return sha256_digest(canonical_json(suite.model_dump(mode="json", exclude_none=True)))


def kneo_version() -> str:
    return package_version()


# --------------------------------------------------------------------------- expectations


def _subset(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    return all(k in actual and actual[k] == v for k, v in expected.items())


def check_case(
    expect: Expectations,
    *,
    status: str,
    output: str,
    tool_calls: Sequence[Mapping[str, Any]],
    usage: Mapping[str, int],
    pauses: Sequence[str],
    judge: Callable[[str, str], tuple[bool, str]] | None = None,
    case_input: str = "",
) -> list[str]:
    """Every expectation ``expect`` has that the run does not meet, in words (pure but for
    ``judge``, the grader of ``expect.judge``)."""
    failures: list[str] = []
    wanted = expect.status or ("paused" if expect.human else "succeeded")
    if status != wanted:
        failures.append(f"status is {status}, expected {wanted}")
    if expect.human and expect.human not in pauses:
        reached = ", ".join(pauses) or "none"
        failures.append(f"no {expect.human} pause (reached: {reached})")
    if expect.output is not None:
        failures += _check_output(expect, output)
    for tool in expect.tools:
        calls = [c for c in tool_calls if c["name"] == tool.name]
        if tool.arguments is not None:
            matching = [c for c in calls if _subset(tool.arguments, c.get("arguments") or {})]
        else:
            matching = calls
        if tool.called and not matching:
            how = f" with {json.dumps(tool.arguments, sort_keys=True)}" if tool.arguments else ""
            seen = (
                "; called with "
                + "; ".join(json.dumps(c.get("arguments"), sort_keys=True) for c in calls)
                if calls
                else ""
            )
            failures.append(f"tool {tool.name} not called{how}{seen}")
        elif not tool.called and matching:
            failures.append(f"tool {tool.name} called {len(matching)} time(s), expected none")
    if expect.limits is not None:
        limits = expect.limits
        total = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
        for what, value, limit in (
            ("input tokens", usage.get("input_tokens", 0), limits.max_input_tokens),
            ("output tokens", usage.get("output_tokens", 0), limits.max_output_tokens),
            ("total tokens", total, limits.max_total_tokens),
            ("model calls", usage.get("model_calls", 0), limits.max_model_calls),
            ("tool calls", len(tool_calls), limits.max_tool_calls),
        ):
            if limit is not None and value > limit:
                failures.append(f"{what} {value} over the limit {limit}")
    if expect.judge and judge is not None and not failures:
        ok, reason = judge(expect.judge, transcript(case_input, output))
        if not ok:
            failures.append(f"judge: {expect.judge!r} not met ({reason})")
    return failures


def _check_output(expect: Expectations, output: str) -> list[str]:
    rule = expect.output
    assert rule is not None
    failures = [f"output does not contain {s!r}" for s in rule.contains if s not in output]
    failures += [f"output contains {s!r}" for s in rule.not_contains if s in output]
    if rule.matches is not None and re.search(rule.matches, output) is None:
        failures.append(f"output does not match /{rule.matches}/")
    if rule.equals is not None and output != rule.equals:
        failures.append(f"output is not {rule.equals!r}")
    if rule.json_schema is not None:
        from jsonschema import Draft202012Validator

        try:
            document = parse_json(output, source="output")
        except DocumentError as exc:  # not JSON, over a limit, or a key given twice
            reason = exc.message.split(": ", 1)[-1].removeprefix("invalid JSON: ")
            failures.append(f"output is not JSON ({reason})")
        else:
            errors = sorted(Draft202012Validator(rule.json_schema).iter_errors(document), key=str)
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
                failures.append(f"output JSON at {where}: {errors[0].message}")
    return failures


# --------------------------------------------------------------------------- the run


def case_overrides(case: EvalCase, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec overlay one case needs: its dummy scripts, then its own ``overrides``."""
    overlay: dict[str, Any] = {}

    def scripted(turns: Sequence[Any]) -> dict[str, Any]:
        return {
            "model": {
                "provider": "dummy",
                "script": [t.model_dump(mode="json", exclude_defaults=True) for t in turns],
            }
        }

    if case.script is not None:
        if spec.get("agent") is None:
            raise KneoError(
                f"case {case.id!r}: 'script' needs a spec with a top-level agent (use "
                "'scripts' to name agents of components.agents)",
                code=ErrorCode.E_EVAL_SUITE,
            )
        overlay["agent"] = scripted(case.script)
    known = set((spec.get("components") or {}).get("agents") or {})
    for name, turns in case.scripts.items():
        if name not in known:
            raise KneoError(
                f"case {case.id!r}: scripts names agent {name!r}, which the spec does not "
                f"declare under components.agents (declared: {', '.join(sorted(known)) or 'none'})",
                code=ErrorCode.E_EVAL_SUITE,
            )
        overlay.setdefault("components", {}).setdefault("agents", {})[name] = scripted(turns)
    result: dict[str, Any] = deep_merge(overlay, case.overrides) if case.overrides else overlay
    return result


@dataclass
class _Observed:
    tool_calls: list[dict[str, Any]]
    usage: dict[str, int]
    pauses: list[str]


def observe(trace_events: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any]) -> _Observed:
    """Tool calls, usage and pause kinds of one run from its trace and result metadata."""
    calls: dict[str, dict[str, Any]] = {}
    record: dict[str, Any] = {"usage": dict.fromkeys(USAGE_FIELDS, 0)}
    for event in trace_events:
        kind = str(event.get("event_type") or "")
        data = event.get("payload") or {}
        if kind == "model_turn_completed":
            count_usage(record, data.get("usage") or {})
        elif kind.startswith("tool_") and data.get("tool_name"):
            # a model's call ids repeat across steps (each conversation starts again)
            call_id = f"{event.get('step_id')}:{data.get('tool_call_id') or len(calls)}"
            arguments = data.get("arguments")
            calls.setdefault(
                call_id,
                {
                    "name": data["tool_name"],
                    "arguments": arguments if isinstance(arguments, dict) else {},
                },
            )
    pending = metadata.get("pending_human_requests") or [
        r for r in [metadata.get("pending_human_request")] if r
    ]
    pending = [r for r in pending if isinstance(r, Mapping)]
    pauses = [str(r.get("kind")) for r in pending if r.get("kind")]
    for request in pending:  # a call waiting on a person (approval, input) was still made
        context = request.get("context") or {}
        if isinstance(context, Mapping) and context.get("tool_name"):
            arguments = context.get("arguments")
            calls.setdefault(
                f"{request.get('step_id')}:{context.get('tool_call_id') or len(calls)}",
                {
                    "name": context["tool_name"],
                    "arguments": arguments if isinstance(arguments, dict) else {},
                },
            )
    return _Observed(list(calls.values()), dict(record["usage"]), pauses)


class _Worker:
    """One platform over its own throwaway store; runs one case at a time."""

    def __init__(
        self,
        directory: Path,
        settings: Settings,
        project: ProjectContext | None,
        tools: ToolRegistry,
        environment: str,
        template: _Worker | None = None,
    ) -> None:
        self.path = directory / DEFAULT_SQLITE_NAME
        if template is not None:
            # a copy of a migrated, empty store: opening it migrates nothing (~0.4 s saved)
            import sqlite3

            with (
                contextlib.closing(sqlite3.connect(template.path)) as source,
                contextlib.closing(sqlite3.connect(self.path)) as copy,
            ):
                source.backup(copy)
        store = open_store(None, settings=settings, state_dir=directory)
        self.manager = create_platform(settings, project, store=store, tool_registry=tools)
        # a rehearsal of the bundle this spec becomes: the environment's policy and grant
        # apply, its approved-bundles-only rule does not (docs/evals.md)
        self.manager.admission.rehearsal = True
        self.environment = environment

    def run(self, spec_path: Path, case: EvalCase, overrides: dict[str, Any]) -> dict[str, Any]:
        result = self.manager.run_from_spec(
            input_text=case.input,
            spec_path=spec_path,
            target=case.target,
            environment=self.environment,
            overrides=overrides or None,
            actor="kneo-eval",
        )
        trace = self.manager.trace(result.run_id, limit=1000)
        return {
            "status": str(result.status),
            "output": result.output_text or "",
            "metadata": dict(result.metadata),
            "events": trace["events"],
        }

    def close(self) -> None:
        self.manager.close()


def suite_judge(
    suite: EvalSuite, settings: Settings, project: ProjectContext | None, grant: HostAccess
) -> ModelJudge:
    """The suite's judge model under the grant the cases' runs have: a suite is untrusted
    input, so its judge reaches only declared secrets, allowed destinations, and each secret
    only where it is bound (:class:`~kneo.engine.judge.ModelJudge`). Refused here, before any
    case runs."""
    assert suite.judge is not None
    secrets_map = project.config.secrets.providers if project is not None else None
    return ModelJudge.build(suite.judge, grant, settings=settings, secrets=secrets_map)


@contextlib.contextmanager
def resolved_spec_file(
    spec_path: Path, environment: str | None, project: ProjectContext
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The spec resolved for ``environment`` (what a bundle signs), written to a hidden
    directory beside the original so its function and tool references resolve as they do
    from the original; removed afterwards. Yields the file and the resolved document."""
    loaded = load_spec(
        spec_path,
        env=environment,
        project=project.config,
        declared=project.declared_environments(),
    )
    directory = Path(tempfile.mkdtemp(prefix=".kneo-eval-", dir=spec_path.resolve().parent))
    try:
        target = directory / spec_path.name.split(".")[0]
        target = target.with_suffix(".yaml")
        data = pin_code(loaded.spec, loaded.data, loaded.base_dir)  # as a bundle signs it
        target.write_text(dump_yaml(data), encoding="utf-8")
        yield target, data
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_suite(
    suite: EvalSuite,
    spec_path: str | Path,
    *,
    environment: str | None = None,
    workers: int = DEFAULT_WORKERS,
    settings: Settings | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Run every case of ``suite`` against ``spec_path`` resolved for ``environment``.

    A case whose run raises (a spec error, a refused tool) fails with the error's code and
    message; the suite goes on. ``on_case`` is called as each case finishes (any thread)."""
    started = time.perf_counter()
    path = Path(spec_path)
    base = settings or Settings.from_env()
    project = ProjectContext.discover(settings=base, env=environment)
    env_name = project.env if environment is not None else None
    # the environment every case runs (and is judged) in: E_UNKNOWN_ENV before any case
    judged = project.run_environment(environment)
    # isolated: a throwaway SQLite store per worker; tool arguments kept for expectations
    isolated = replace(base, database_url=None, otel_record_arguments=True)
    tools = project.tool_registry()
    judge: ModelJudge | None = None
    results: dict[str, CaseResult] = {}
    scratch = Path(tempfile.mkdtemp(prefix="kneo-eval-store-"))
    made: list[_Worker] = []
    try:
        with resolved_spec_file(path, env_name, project) as (resolved, data):
            digest = spec_digest(data)
            # the resolved file already holds the overlay (none lies beside it in its directory)
            plain = ProjectContext.discover(settings=isolated, cwd=project.root)
            count = max(1, min(workers, len(suite.cases)))
            # built here, one after another: schema migrations are not thread-safe
            idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
            for _ in range(count):
                directory = Path(tempfile.mkdtemp(dir=scratch))
                template = made[0] if made else None
                made.append(_Worker(directory, isolated, plain, tools, judged, template))
                idle.put(made[-1])
            if suite.needs_judge():  # the grant of the cases' runs
                grant = made[0].manager.admission.host_access(env_name, "spec")
                judge = suite_judge(suite, isolated, project, grant)
            outcomes = _run_cases(suite.cases, idle, count, (resolved, data), judge, on_case)
            results = {r.case_id: r for r in outcomes}
    finally:
        for worker in made:
            worker.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return SuiteResult(
        suite=suite.suite,
        suite_digest=suite_digest(suite),
        spec_path=str(spec_path),
        environment=env_name,
        spec_digest=digest,
        pass_threshold=suite.pass_threshold,
        cases=[results[c.id] for c in suite.cases],
        seconds=time.perf_counter() - started,
        kneo_version=kneo_version(),
    )


def _run_cases(
    cases: Sequence[EvalCase],
    idle: queue.SimpleQueue[_Worker],
    count: int,
    spec: tuple[Path, Mapping[str, Any]],
    judge: ModelJudge | None,
    on_case: Callable[[CaseResult], None] | None,
) -> list[CaseResult]:
    """Each case's result, in the cases' order: run on ``count`` threads, each case on an
    idle worker (``spec``: the resolved file and its data)."""
    resolved, data = spec

    def one(case: EvalCase) -> CaseResult:
        worker = idle.get()
        try:
            result = _run_case(worker, resolved, data, case, judge)
        finally:
            idle.put(worker)
        if on_case is not None:
            on_case(result)
        return result

    if count == 1:
        return [one(case) for case in cases]
    with ThreadPoolExecutor(count, thread_name_prefix="kneo-eval") as pool:
        return list(pool.map(one, cases))


def _run_case(
    worker: _Worker,
    spec_path: Path,
    spec: Mapping[str, Any],
    case: EvalCase,
    judge: Callable[[str, str], tuple[bool, str]] | None,
) -> CaseResult:
    started = time.perf_counter()
    try:
        run = worker.run(spec_path, case, case_overrides(case, spec))
    except KneoError as exc:
        return CaseResult(
            case.id,
            False,
            [f"error[{exc.code}]: {exc.message}"],
            status="error",
            seconds=time.perf_counter() - started,
            error=exc.code,
        )
    seen = observe(run["events"], run["metadata"])
    failures = check_case(
        case.expect,
        status=run["status"],
        output=run["output"],
        tool_calls=seen.tool_calls,
        usage=seen.usage,
        pauses=seen.pauses,
        judge=judge,
        case_input=case.input,
    )
    error = (run["metadata"].get("error") or {}).get("code")
    if error and run["status"] == "failed":
        failures.append(f"run failed: {error}")
    return CaseResult(
        case.id,
        not failures,
        failures,
        status=run["status"],
        output=run["output"],
        seconds=time.perf_counter() - started,
        usage=seen.usage,
        tool_calls=seen.tool_calls,
        pauses=seen.pauses,
        error=error,
    )
