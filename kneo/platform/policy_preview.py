"""A proposed environment policy against the runs it would judge: which recent runs of the
environment the policy in force admits and the proposed one would not (or the reverse).

:func:`kneo.policy.preview.preview` says which gates move; this says what that means for
the specs people actually run there. The latest :data:`SCAN_LIMIT` runs (of any
environment: one bounded read, newest first) are looked at; those of the environment are
checked twice with the one pipeline every start meets (:func:`kneo.policy.check.check_spec`),
under the policy in force and under the proposed one, each distinct spec once (runs of one
spec share its digest). Nothing is written and nothing runs: a check loads and validates a
spec, it never imports a function or calls a tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kneo.errors import KneoError
from kneo.policy.check import check_spec
from kneo.spec.loader import load_spec_data
from kneo.store.queries import RunQuery

if TYPE_CHECKING:
    from kneo.spec.compiler import SpecCompiler
    from kneo.spec.project import ProjectContext
    from kneo.spec.project_blocks import PolicyEnforcement
    from kneo.store import RunRecord
    from kneo.store.api import Store

#: How many of the latest runs a preview looks at.
SCAN_LIMIT = 200


def _admits(
    compiler: SpecCompiler,
    project: ProjectContext | None,
    run: RunRecord,
    environment: str,
    policy: PolicyEnforcement | None,
) -> bool:
    spec = load_spec_data(dict(run.spec), source=f"run {run.run_id}")
    report = check_spec(
        spec,
        env=environment,
        context=project,
        tool_registry=compiler.tool_registry,
        runtime_registry=compiler.runtime_registry,
        policy=policy,
    )
    return bool(report.valid)


def run_impact(
    store: Store,
    compiler: SpecCompiler,
    project: ProjectContext | None,
    environment: str,
    current: PolicyEnforcement | None,
    proposed: PolicyEnforcement,
    *,
    limit: int = SCAN_LIMIT,
) -> dict[str, Any]:
    """``runs_evaluated``, ``affected_run_ids`` (the verdict differs) and ``newly_blocking``
    (admitted now, refused under ``proposed``), newest first, judged with ``compiler``'s
    registries in ``project``. A run whose stored spec no longer loads is not evaluated."""
    runs = store.runs.list_runs(RunQuery(limit=limit, count=False)).items
    verdicts: dict[str, tuple[bool, bool]] = {}
    evaluated, affected, blocking = 0, [], []
    for run in runs:
        if run.environment != environment or not run.spec:
            continue
        key = run.spec_digest or run.run_id
        if key not in verdicts:
            try:
                verdicts[key] = (
                    _admits(compiler, project, run, environment, current),
                    _admits(compiler, project, run, environment, proposed),
                )
            except KneoError:
                continue
        now, then = verdicts[key]
        evaluated += 1
        if now != then:
            affected.append(run.run_id)
            if now and not then:
                blocking.append(run.run_id)
    return {
        "runs_evaluated": evaluated,
        "affected_run_ids": affected,
        "newly_blocking": blocking,
    }


__all__ = ["SCAN_LIMIT", "run_impact"]
