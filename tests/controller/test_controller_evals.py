"""The eval gate through real Git, real bundles and the controller: the support agent's
prompt change (two cases broken) is promoted in ``dev`` (no gate) and held back in ``prod``
(``require_evals`` at 100 %) with a condition naming the suite and the rate; the fixed spec
passes and is promoted; an edited attestation is refused like an edited bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import SIGNED_AT, Keys, Repo, make_controller

from kneo.bundle import BundleSource, dump_bundle, sign_bundle
from kneo.clock import ManualClock
from kneo.evals import load_suite, run_suite
from kneo.evals.runner import attestation
from kneo.spec.loader import load_spec
from kneo.spec.pinning import pin_code
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery

ROOT = Path(__file__).resolve().parents[2]
SPEC = "examples/support_agent.yaml"
SUITE = "examples/evals/support_agent.eval.yaml"
PROD = (
    "version: v1\npromotion:\n  require_evals:\n    - {suite: support-agent, min_pass_rate: 1.0}\n"
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The support agent as it is (``good``) and after the worked example's prompt change
    (``broken``): each resolved spec with its real eval result's attestation (and, under
    ``<label>-file``, the result file ``kneo eval run --results`` writes)."""
    work = tmp_path_factory.mktemp("support")
    shutil.copytree(ROOT / "examples", work / "examples")
    (work / ".kneo").mkdir()
    (work / ".kneo/config.yaml").write_text(
        "version: v1\nname: s\ntool_registry: examples.project_tools:create_registry\n"
    )
    suite = load_suite(ROOT / SUITE)
    out = {}
    spec = work / SPEC
    good = spec.read_text()
    broken = good.replace(
        "Our refund window is 30 days. Ticket opened.", "We will get back to you."
    )
    assert broken != good
    cwd = Path.cwd()
    try:
        import os

        os.chdir(work)
        for label, text in (("good", good), ("broken", broken)):
            spec.write_text(text)
            context = ProjectContext.discover()
            loaded = load_spec(spec, project=context.config)
            data = pin_code(loaded.spec, loaded.data, loaded.base_dir)  # what a bundle signs
            out["code"] = {f["path"]: (work / f["path"]).read_bytes() for f in data["code"]}
            result = run_suite(suite, spec, workers=2).to_dict()
            out[label] = (data, attestation(result))
            out[f"{label}-file"] = work / f"{label}.result.json"
            out[f"{label}-file"].write_text(json.dumps(result))
    finally:
        os.chdir(cwd)
    assert out["good"][1].pass_rate == 1.0
    assert out["broken"][1].regressions() == ["refund-window", "ticket-opened"]
    return out


@pytest.fixture(autouse=True)
def _pinned_code(repo: Repo, results: dict[str, Any]) -> None:
    """The project files the signed spec pins, in the watched repository at their paths."""
    for path, data in results["code"].items():
        repo.write(path, data)
    repo.commit("the project's code")


def _bundle(keys: Keys, env: str, data: dict[str, Any], attested: Any) -> str:
    return dump_bundle(
        sign_bundle(
            data,
            keys.private["ci"],
            name="support",
            environment=env,
            approved_by="ci-pipeline",
            approved_at=SIGNED_AT,
            source=BundleSource(path="specs/support.yaml"),
            evals=[attested] if attested is not None else [],
        )
    )


def _promoted(store: Any, env: str) -> tuple[str, str, str]:
    c = {c.type: c for c in store.registry.list_conditions("support", env)}["Promoted"]
    return c.status, c.reason, c.message


def _active(store: Any, env: str) -> str | None:
    active = store.registry.get_active("support", env)
    return None if active is None else str(active.digest)


def test_prod_holds_back_a_change_that_fails_its_suite_until_it_is_fixed(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
) -> None:
    repo.write("environments/prod.yaml", PROD)
    broken, attested = results["broken"]
    for env in ("dev", "prod"):
        repo.write(f"bundles/support/{env}.json", _bundle(keys, env, broken, attested))
    repo.commit("a shorter prompt")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok

    assert _active(store, "dev") == attested.digest, _promoted(store, "dev")  # no gate in dev
    assert _active(store, "prod") is None
    status, reason, message = _promoted(store, "prod")
    assert (status, reason) == ("False", "EvalsFailed")
    assert "eval suite 'support-agent' failed: 82% (requires 100%)" in message
    assert "failing: refund-window, ticket-opened" in message
    [event] = store.audit.list_audit(
        AuditQuery(event_type="promotion.evals_failed", limit=10)
    ).items
    assert event.payload["environment"] == "prod"
    seen: list[Any] = []
    store.notifications.route_notifications(lambda e: seen.append(e) or [])
    [notice] = [e for e in seen if e.event_type == "promotion.evals_failed"]
    from kneo.platform.notifications import summary

    assert summary(notice).startswith("support (prod) was held back by its eval gate: eval suite")

    clock.advance(30)  # pass after pass, the refusal holds and is audited once
    assert ctl.reconcile_once(full=True).ok
    assert _active(store, "prod") is None
    assert (
        len(store.audit.list_audit(AuditQuery(event_type="promotion.evals_failed", limit=10)).items)
        == 1
    )

    fixed, passing = results["good"]
    repo.write("bundles/support/prod.json", _bundle(keys, "prod", fixed, passing))
    repo.commit("the prompt fixed")
    assert ctl.reconcile_once().ok
    assert _active(store, "prod") == passing.digest
    assert _promoted(store, "prod")[:2] == ("True", "Promoted")


def test_no_result_or_a_result_for_another_digest_is_held_back(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
) -> None:
    repo.write("environments/prod.yaml", PROD)
    good, _ = results["good"]
    repo.write("bundles/support/prod.json", _bundle(keys, "prod", good, None))
    repo.commit("signed without --evals")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    status, reason, message = _promoted(store, "prod")
    assert (status, reason) == ("False", "EvalsFailed")
    assert "no signed result for this digest (requires 100%)" in message
    assert _active(store, "prod") is None


def test_an_edited_attestation_is_refused_like_an_edited_bundle(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
) -> None:
    repo.write("environments/prod.yaml", PROD)
    broken, attested = results["broken"]
    document = json.loads(_bundle(keys, "prod", broken, attested))
    forged = document["evals"][0]
    forged.update(passed=forged["total"], pass_rate=1.0)
    for case in forged["cases"]:
        case["outcome"] = "passed"
    repo.write("bundles/support/prod.json", json.dumps(document, indent=2))
    repo.commit("the result edited to pass")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    assert _active(store, "prod") is None
    status, reason, message = _promoted(store, "prod")
    assert (status, reason) == ("False", "Rejected")
    assert "bundle_signature_invalid" in message or "signature" in message
    [rejected] = store.audit.list_audit(AuditQuery(event_type="bundle.rejected", limit=10)).items
    assert rejected.payload["environment"] == "prod"


def _record(
    keys: Keys, tmp_path: Path, bundle: str, result: Path, env: str = "prod", key: str = "ci"
) -> str:
    """``kneo eval sign`` for ``bundle`` (its default output: evals/<env>.json beside it)."""
    from typer.testing import CliRunner

    from kneo.cli.main import app

    path = tmp_path / "signing" / "bundles" / "support" / f"{env}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bundle)
    key_file = keys.trusted_dir.parent / "private" / f"{key}.key"
    args = ["eval", "sign", "--bundle", str(path), "--evals", str(result)]
    run = CliRunner().invoke(app, [*args, "--recorded-by", "ci", "--key-file", str(key_file)])
    assert run.exit_code == 0, run.output
    assert f"signed {path.parent / 'evals' / f'{env}.json'}" in run.output
    return (path.parent / "evals" / f"{env}.json").read_text()


def test_results_recorded_beside_the_bundle_gate_it_like_signed_ones(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
) -> None:
    """A bundle signed without results, then a suite's result recorded for its digest in a
    later commit (an incremental reconcile): failing, it holds prod back like a signed one;
    passing, prod is promoted."""
    repo.write("environments/prod.yaml", PROD)
    broken, _ = results["broken"]
    bundle = _bundle(keys, "prod", broken, None)
    repo.write("bundles/support/prod.json", bundle)
    repo.commit("signed without --evals")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    assert "no signed result for this digest" in _promoted(store, "prod")[2]

    repo.write(
        "bundles/support/evals/prod.json", _record(keys, tmp_path, bundle, results["broken-file"])
    )
    repo.commit("the suite's result, recorded")
    assert ctl.reconcile_once().ok
    status, reason, message = _promoted(store, "prod")
    assert (status, reason) == ("False", "EvalsFailed")
    assert "eval suite 'support-agent' failed: 82% (requires 100%)" in message
    assert "failing: refund-window, ticket-opened" in message

    fixed, passing = results["good"]
    bundle = _bundle(keys, "prod", fixed, None)
    repo.write("bundles/support/prod.json", bundle)
    repo.write(
        "bundles/support/evals/prod.json", _record(keys, tmp_path, bundle, results["good-file"])
    )
    repo.commit("the prompt fixed, its result recorded")
    assert ctl.reconcile_once().ok
    assert _active(store, "prod") == passing.digest
    assert _promoted(store, "prod")[:2] == ("True", "Promoted")


@pytest.mark.parametrize("fault", ["edited", "other digest", "untrusted key"])
def test_a_tampered_or_mismatched_results_file_is_refused_like_a_tampered_bundle(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
    fault: str,
) -> None:
    repo.write("environments/prod.yaml", PROD)
    broken, _ = results["broken"]
    bundle = _bundle(keys, "prod", broken, None)
    recorded = json.loads(_record(keys, tmp_path, bundle, results["broken-file"]))
    if fault == "edited":
        forged = recorded["evals"][0]
        forged.update(passed=forged["total"], pass_rate=1.0)
        for case in forged["cases"]:
            case["outcome"] = "passed"
        expected = "bundle_signature_invalid"
    elif fault == "other digest":  # the fixed spec's passing result, beside the broken bundle
        fixed, _ = results["good"]
        recorded = json.loads(
            _record(keys, tmp_path, _bundle(keys, "prod", fixed, None), results["good-file"])
        )
        expected = "eval_results_mismatch"
    else:
        from kneo.bundle.eval_results import dump_eval_results, sign_eval_results
        from kneo.bundle.format import parse_bundle
        from kneo.evals.runner import attestation

        result = json.loads(results["good-file"].read_text())
        model = parse_bundle(_bundle(keys, "prod", results["good"][0], None))[0]
        signed = sign_eval_results(
            model, [attestation(result)], keys.forged, recorded_by="x", recorded_at=SIGNED_AT
        )
        recorded = json.loads(dump_eval_results(signed))
        bundle = _bundle(keys, "prod", results["good"][0], None)
        expected = "bundle_signature_invalid"  # a trusted key id whose signature does not verify
    repo.write("bundles/support/prod.json", bundle)
    repo.write("bundles/support/evals/prod.json", json.dumps(recorded, indent=2))
    repo.commit(f"a results file: {fault}")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    assert _active(store, "prod") is None
    status, reason, message = _promoted(store, "prod")
    assert (status, reason) == ("False", "Rejected"), message
    assert message.startswith("bundles/support/evals/prod.json: "), message
    [rejected] = store.audit.list_audit(AuditQuery(event_type="bundle.rejected", limit=10)).items
    assert rejected.payload["environment"] == "prod"
    assert [r["code"] for r in rejected.payload["reasons"]] == [expected]


def test_results_signed_by_a_key_whose_window_ends_are_judged_again_then(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    results: dict[str, Any],
) -> None:
    """The bundle's key has no window, the results file's key has one: when it ends the
    bundle is judged again (the verdict is not cached past it) and refused like a bundle
    signed by an expired key."""
    from datetime import UTC, datetime

    (keys.trusted_dir / "keyring.yaml").write_text(
        "keys:\n  release: {not_after: 2026-06-01T00:00:00Z}\n", encoding="utf-8"
    )
    repo.write("environments/prod.yaml", PROD)
    fixed, passing = results["good"]
    bundle = _bundle(keys, "prod", fixed, None)
    repo.write("bundles/support/prod.json", bundle)
    recorded = _record(keys, tmp_path, bundle, results["good-file"], key="release")
    repo.write("bundles/support/evals/prod.json", recorded)
    repo.commit("results recorded with the release key")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    assert _active(store, "prod") == passing.digest
    clock.set(datetime(2026, 6, 2, tzinfo=UTC))
    result = ctl.reconcile_once()
    assert result.stats["full_reason"] == "recheck_due"
    assert {p["code"] for p in result.problems} == {"bundle_key_expired"}
