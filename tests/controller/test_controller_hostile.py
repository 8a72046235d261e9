"""Hostile repositories (issue rows 1, 2, 6, 8): each bad file is rejected alone, with its
condition and event; everything else in the commit applies; nothing unverified decides
where a bundle applies; the controller never dies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller, spec

from kneo.clock import ManualClock
from kneo.errors import KneoError
from kneo.store import AuditQuery, RegistryQuery


def _verified(store: Any, name: str, env: str) -> Any:
    return next(c for c in store.registry.list_conditions(name, env) if c.type == "Verified")


def _rejections(store: Any) -> dict[str, str]:
    """Bundle name -> first rejection code, from the ``bundle.rejected`` audit events."""
    return {
        e.payload["bundle"]: e.payload["reasons"][0]["code"]
        for e in store.audit.list_audit(AuditQuery(event_type="bundle.rejected", limit=100)).items
    }


def test_row1_deep_environment_file_is_a_problem_not_a_crash(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Row 1: a commit of a 50,000-level ``environments/dev.yaml`` used to kill the process
    (libyaml's composer overflowed the C stack) on every restart. Now the file is invalid,
    a new bundle for dev is judged by dev's last verified policy, and the other
    environments reconcile."""
    repo.write("environments/qa.yaml", "version: v1\n")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.write("bundles/helper/qa.json", keys.bundle("helper", "qa"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    repo.write("environments/dev.yaml", "version: v1\nx: " + "[" * 50_000 + "]" * 50_000)
    repo.write("bundles/helper/qa.json", keys.bundle("helper", "qa", spec("v2")))
    repo.commit("deep environment file")
    result = ctl.reconcile_once()
    assert result.ok, result.error
    [kept] = [p for p in result.problems if p["code"] == "policy_kept"]
    assert "environments/dev.yaml" in kept["message"] and "max_depth" in kept["message"]
    assert store.registry.get_active("helper", "dev").revision == 1  # still serving
    assert store.registry.get_active("helper", "qa").revision == 2  # the rest applied


def test_row2_malformed_bundles_are_rejected_alone_and_the_rest_applies(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Row 2: a 100,000-digit integer (``ValueError``) and a 200,000-deep array
    (``RecursionError``) in one commit with a valid update of another bundle aborted the
    whole reconcile. Now each is rejected with ``bundle_malformed``, a ``Verified=False``
    condition and a ``bundle.rejected`` event, and the valid update is applied."""
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    digits = json.loads(keys.bundle("x", "dev"))
    repo.write("bundles/x/dev.json", json.dumps(digits)[:-1] + ', "n": ' + "1" * 100_000 + "}")
    repo.write("bundles/y/dev.json", "[" * 200_000 + "]" * 200_000)
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v2")))
    repo.commit("two bombs and an update")
    result = ctl.reconcile_once()
    assert result.ok, result.error
    assert store.registry.get_active("helper", "dev").revision == 2
    assert {k: v for k, v in _rejections(store).items() if k in "xy"} == {
        "x": "bundle_malformed",
        "y": "bundle_malformed",
    }
    for name in ("x", "y"):
        condition = _verified(store, name, "dev")
        assert (condition.status, condition.reason) == ("False", "bundle_malformed")
    assert {p["path"] for p in result.problems} == {"bundles/x/dev.json", "bundles/y/dev.json"}
    assert ctl.status()["problems"] == result.problems  # ok, with problems


def test_row2_bundle_verify_says_bundle_malformed(
    keys: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 2: ``kneo spec bundle verify`` on such a file printed ``internal_error``."""
    import sys

    from kneo.cli.main import app
    from kneo.cli.output import run_cli

    document = json.loads(keys.bundle("x", "dev"))
    bomb = tmp_path / "x.json"
    bomb.write_text(json.dumps(document)[:-1] + ', "n": ' + "1" * 100_000 + "}")
    monkeypatch.setattr(
        sys,
        "argv",
        ["kneo", "spec", "bundle", "verify", str(bomb), "--keyring", str(keys.trusted_dir)],
    )
    code = run_cli(app)
    out, err = capsys.readouterr()
    assert code != 0 and "error[bundle_malformed]" in out + err, out + err
    assert "E_NUMBER_TOO_LONG" in out + err or "max_number_digits" in out + err


def test_row6_an_unverified_environment_field_never_moves_a_bundle(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Row 6: a copy of the active ``bundles/good/dev.json`` whose ``environment`` was edited
    to ``prod`` (signature now invalid) made the controller deactivate the serving revision.
    Now the path decides which bundle the file speaks for: the file is rejected, r1 serves.
    A validly signed prod bundle copied to the dev path is rejected too (path mismatch)."""
    repo.write("bundles/good/dev.json", keys.bundle("good", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    edited = json.loads(keys.bundle("good", "dev"))
    edited["environment"] = "prod"
    repo.write("bundles/good/dev.json", json.dumps(edited))
    repo.commit("edit the environment field")
    result = ctl.reconcile_once()
    assert result.ok
    assert _rejections(store)["good"] == "bundle_signature_invalid"
    assert store.registry.get_active("good", "dev").revision == 1
    assert store.registry.get_active("good", "prod") is None

    repo.write("bundles/good/dev.json", keys.bundle("good", "prod", spec("prod")))
    repo.commit("a prod bundle at the dev path")
    assert ctl.reconcile_once().ok
    condition = _verified(store, "good", "dev")
    assert (condition.status, condition.reason) == ("False", "bundle_path_mismatch")
    history = store.registry.list_revisions("good", "dev")
    assert [r.status for r in history if r.status != "rejected"] == ["active"]  # never pruned
    assert store.registry.get_active("good", "dev").revision == 1


def test_row8_bundle_names_outside_the_pattern_are_refused(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Row 8: ``--name ../../etc/passwd`` was signed, accepted and activated. Signing refuses
    it (tests/bundle), the registry refuses it, a bundle that carries it is malformed, and a
    file whose path is no bundle name is not read."""
    from kneo.bundle.format import parse_bundle

    with pytest.raises(KneoError) as refused, store.transaction() as tx:
        tx.add_revision("../../etc/passwd", "dev", digest="sha256:" + "0" * 64)
    assert refused.value.code == "invalid_name"
    document = json.loads(keys.bundle("helper", "dev"))
    document["name"] = "../../etc/passwd"
    with pytest.raises(KneoError) as malformed:
        parse_bundle(json.dumps(document))
    assert malformed.value.code == "bundle_malformed" and malformed.value.details["field"] == "name"

    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.write("bundles/nested/dir/dev.json", keys.bundle("helper", "dev"))
    repo.write("bundles/bad name/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    result = make_controller(store, repo, keys, clock, tmp_path).reconcile_once()
    assert result.ok
    assert sorted(p["code"] for p in result.problems) == ["bundle_path_invalid"] * 2
    assert [
        r.bundle_name for r in store.registry.list_registry(RegistryQuery(status=None)).items
    ] == ["helper"]
