"""The pure planner, table-tested: no Git, no database, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kneo.controller.conditions import conditions_for
from kneo.controller.model import (
    ActionKind,
    Approvals,
    DesiredEnvironment,
    DesiredRevision,
    DesiredState,
    ObservedEntry,
    ObservedState,
    PlanOptions,
    Problem,
    PromotionRules,
    RevisionRef,
)
from kneo.controller.planner import environment_order, plan

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
BAD = Problem("bundle_signature_invalid", "signature by 'ci' is invalid")


def rev(
    env: str = "dev",
    digest: str | None = D2,
    *,
    name: str = "a",
    fp: str = "fp2",
    problems: tuple[Problem, ...] = (),
) -> DesiredRevision:
    return DesiredRevision(
        name=name,
        environment=env,
        path=f"bundles/{name}/{env}.json",
        fingerprint=fp,
        commit="c" * 40,
        digest=digest,
        signer_key_ids=("ci",),
        problems=problems,
    )


def env(name: str, **rules: object) -> DesiredEnvironment:
    return DesiredEnvironment(
        name, f"environments/{name}.yaml", "e" * 40, promotion=PromotionRules(**rules)
    )  # type: ignore[arg-type]


ENVS = {
    "dev": env("dev"),
    "staging": env("staging", require_approved_in="dev"),
    "prod": env(
        "prod",
        require_approved_in="staging",
        require_human_approval=True,
        approvers=("alice", "bob", "carol"),
        min_approvals=2,
    ),
}
R1 = RevisionRef(1, D1, "active")
STAGING_D2 = ObservedEntry(
    active=RevisionRef(1, D2, "active"), applied=RevisionRef(1, D2, "active")
)
STAGING_NOOP = ("noop", "staging", "up_to_date")


@dataclass
class Case:
    id: str
    revisions: list[DesiredRevision]
    observed: dict[tuple[str, str], ObservedEntry] = field(default_factory=dict)
    expected: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, env, reason)
    options: PlanOptions = field(default_factory=PlanOptions)


CASES = [
    Case("new bundle activates", [rev()], expected=[("activate", "dev", "promoted")]),
    Case(
        "same digest active is a noop",
        [rev()],
        {
            ("a", "dev"): ObservedEntry(
                active=RevisionRef(2, D2, "active"), applied=RevisionRef(2, D2, "active")
            )
        },
        [("noop", "dev", "up_to_date")],
    ),
    Case(
        "new digest replaces the active one",
        [rev()],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1)},
        [("activate", "dev", "promoted")],
    ),
    Case(
        "invalid bundle is rejected, active stays",
        [rev(problems=(BAD,))],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1)},
        [("reject", "dev", "bundle_signature_invalid")],
    ),
    Case(
        "same rejected content is not rejected twice",
        [rev(problems=(BAD,))],
        {
            ("a", "dev"): ObservedEntry(
                active=R1, applied=R1, rejected_fingerprints=frozenset({"fp2"})
            )
        },
        [("noop", "dev", "already_rejected")],
    ),
    Case(
        "removed file is pruned",
        [],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1)},
        [("prune", "dev", "pruned")],
        PlanOptions(allow_empty=True),
    ),
    Case(
        "empty commit prunes nothing without allow_empty",
        [],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1)},
        [("noop", "dev", "empty_desired_state")],
    ),
    Case(
        "prune: false keeps orphans",
        [rev(name="b")],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1)},
        [("noop", "dev", "prune_disabled"), ("activate", "dev", "promoted")],
        PlanOptions(prune=False),
    ),
    Case(
        "suspended is left alone",
        [rev()],
        {("a", "dev"): ObservedEntry(active=R1, applied=R1, suspended=True)},
        [("noop", "dev", "suspended")],
    ),
    Case(
        "staging waits for dev",
        [rev("staging")],
        expected=[("wait_for_upstream", "staging", "awaiting_upstream")],
    ),
    Case(
        "staging follows dev in the same plan",
        [rev("dev"), rev("staging")],
        expected=[("activate", "dev", "promoted"), ("activate", "staging", "promoted")],
    ),
    Case(
        "rejected dev blocks staging",
        [rev("dev", problems=(BAD,)), rev("staging")],
        expected=[
            ("reject", "dev", "bundle_signature_invalid"),
            ("wait_for_upstream", "staging", "awaiting_upstream"),
        ],
    ),
    Case(
        "prod asks for approval once staging has it",
        [rev("staging"), rev("prod")],
        {("a", "staging"): STAGING_D2},
        [STAGING_NOOP, ("wait_for_approval", "prod", "awaiting_approval")],
    ),
    Case(
        "one approval of two is not enough",
        [rev("staging"), rev("prod")],
        {
            ("a", "staging"): STAGING_D2,
            ("a", "prod"): ObservedEntry(
                pending=RevisionRef(1, D2, "pending_approval"),
                approvals=Approvals(frozenset({"alice"})),
                task_open=True,
            ),
        },
        [STAGING_NOOP, ("wait_for_approval", "prod", "awaiting_approval")],
    ),
    Case(
        "two distinct approvers activate",
        [rev("staging"), rev("prod")],
        {
            ("a", "staging"): STAGING_D2,
            ("a", "prod"): ObservedEntry(
                pending=RevisionRef(1, D2, "pending_approval"),
                approvals=Approvals(frozenset({"alice", "bob"})),
            ),
        },
        [STAGING_NOOP, ("activate", "prod", "promoted")],
    ),
    Case(
        "approvals from outside the approver list do not count",
        [rev("staging"), rev("prod")],
        {
            ("a", "staging"): STAGING_D2,
            ("a", "prod"): ObservedEntry(
                pending=RevisionRef(1, D2, "pending_approval"),
                approvals=Approvals(frozenset({"alice", "mallory"})),
            ),
        },
        [STAGING_NOOP, ("wait_for_approval", "prod", "awaiting_approval")],
    ),
    Case(
        "one rejection stops it",
        [rev("staging"), rev("prod")],
        {
            ("a", "staging"): STAGING_D2,
            ("a", "prod"): ObservedEntry(
                active=R1,
                applied=R1,
                pending=RevisionRef(2, D2, "pending_approval"),
                approvals=Approvals(frozenset({"alice", "bob"}), frozenset({"carol"})),
            ),
        },
        [STAGING_NOOP, ("reject", "prod", "promotion_rejected")],
    ),
    Case(
        "hand-activated older revision is reverted",
        [rev()],
        {("a", "dev"): ObservedEntry(active=R1, applied=RevisionRef(2, D2, "inactive"))},
        [("drift_revert", "dev", "drift_reverted")],
    ),
    Case(
        "hand-deactivated revision is re-activated",
        [rev()],
        {("a", "dev"): ObservedEntry(applied=RevisionRef(2, D2, "inactive"))},
        [("drift_revert", "dev", "drift_reverted")],
    ),
    Case(
        "drift while the new bundle is rejected goes back to the applied one",
        [rev(problems=(BAD,))],
        {
            ("a", "dev"): ObservedEntry(
                active=RevisionRef(3, D2, "active"), applied=RevisionRef(1, D1, "inactive")
            )
        },
        [("reject", "dev", "bundle_signature_invalid"), ("drift_revert", "dev", "drift_reverted")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    """Each row: desired revisions + observed registry -> the expected actions, in order."""
    desired = DesiredState("c" * 40, {r.key: r for r in case.revisions}, ENVS)
    actions = plan(desired, ObservedState(case.observed), case.options)
    assert [(a.kind.value, a.environment, a.reason) for a in actions] == case.expected


def test_plan_is_deterministic_and_orders_upstream_first() -> None:
    """Environments are planned in chain order, names sorted inside each."""
    revisions = [rev(e, name=n) for e in ("prod", "staging", "dev") for n in ("b", "a")]
    desired = DesiredState("c" * 40, {r.key: r for r in revisions}, ENVS)
    first = plan(desired, ObservedState())
    assert first == plan(desired, ObservedState())
    assert [(a.environment, a.name) for a in first] == [
        ("dev", "a"),
        ("dev", "b"),
        ("staging", "a"),
        ("staging", "b"),
        ("prod", "a"),
        ("prod", "b"),
    ]
    assert [a.kind for a in first][-1] is ActionKind.WAIT_FOR_APPROVAL
    assert first[-1].request_task


def test_open_task_is_not_requested_again() -> None:
    """A pending revision with an open human task does not ask for another task."""
    desired = DesiredState("c" * 40, {r.key: r for r in (rev("staging"), rev("prod"))}, ENVS)
    observed = ObservedState(
        {
            ("a", "staging"): STAGING_D2,
            ("a", "prod"): ObservedEntry(
                pending=RevisionRef(1, D2, "pending_approval"), task_open=True
            ),
        }
    )
    _, action = plan(desired, observed)
    assert action.kind is ActionKind.WAIT_FOR_APPROVAL and not action.request_task
    assert not action.writes


def test_environment_order_survives_cycles() -> None:
    envs = {"x": env("x", require_approved_in="y"), "y": env("y", require_approved_in="x")}
    assert set(environment_order(envs)) == {"x", "y"}
    assert environment_order(ENVS) == {"dev": 0, "staging": 1, "prod": 2}


CONDITION_CASES = [
    ("activated", rev(), ObservedEntry(), ("True", "Promoted", "True", "Ready")),
    (
        "rejected keeps serving",
        rev(problems=(BAD,)),
        ObservedEntry(active=R1, applied=R1),
        ("False", "Rejected", "False", "ServingPrevious"),
    ),
    (
        "waiting upstream",
        rev("staging"),
        ObservedEntry(),
        ("False", "AwaitingUpstream", "False", "NoActiveRevision"),
    ),
    (
        "pruned",
        None,
        ObservedEntry(active=R1, applied=R1),
        ("False", "Pruned", "False", "NoActiveRevision"),
    ),
    (
        "suspended",
        rev(),
        ObservedEntry(active=R1, applied=R1, suspended=True),
        ("Unknown", "Suspended", "Unknown", "Suspended"),
    ),
]


@pytest.mark.parametrize(
    ("revision", "entry", "expected"),
    [c[1:] for c in CONDITION_CASES],
    ids=[c[0] for c in CONDITION_CASES],
)
def test_conditions(
    revision: DesiredRevision | None, entry: ObservedEntry, expected: tuple[str, str, str, str]
) -> None:
    """Promoted and Ready follow from the planned action; Verified from the file alone."""
    key = ("a", revision.environment if revision else "dev")
    desired = DesiredState("c" * 40, {key: revision} if revision else {}, ENVS)
    actions = plan(desired, ObservedState({key: entry}), PlanOptions(allow_empty=True))
    verified, promoted, ready = conditions_for(revision, entry, actions)
    assert (promoted.status, promoted.reason, ready.status, ready.reason) == expected
    assert verified.status == (
        "True" if revision and revision.ok else "Unknown" if revision is None else "False"
    )
