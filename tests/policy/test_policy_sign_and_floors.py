"""``kneo policy sign`` writes the approval the controller verifies; floors read clearly."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kneo.bundle import generate_ed25519, load_keyring
from kneo.bundle.keys import Keyring
from kneo.bundle.policy_approval import verify_policy_approval
from kneo.cli.main import app
from kneo.cli.output import run_cli
from kneo.errors import BundleError, ConfigError, ErrorCode
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.floors import load_floors, parse_floors
from kneo.policy.ratchet import checkout_policy, policy_digest

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "environments").mkdir(parents=True)
    (root / ".kneo").mkdir()
    (root / "environments" / "prod.yaml").write_text("version: v1\nrequired_signatures: 1\n")
    (root / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments:\n  prod:\n    policy_enforcement: {require_guardrails: true}\n"
    )
    for key_id in ("ci", "release", "intern"):
        generate_ed25519(key_id, tmp_path / "keys")
    (tmp_path / "trusted").mkdir()
    for key_id in ("ci", "release"):
        (tmp_path / "trusted" / f"{key_id}.pub").write_bytes(
            (tmp_path / "keys" / f"{key_id}.pub").read_bytes()
        )
    return root


def kneo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["kneo", *args])
    code = run_cli(app)
    out = capsys.readouterr()
    return code, out.out + out.err


def sign(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root: Path,
    key: str,
    *extra: str,
) -> tuple[int, str]:
    return kneo(
        monkeypatch,
        capsys,
        "policy",
        "sign",
        "prod",
        "--repo",
        str(root),
        "--key-file",
        str(root.parent / "keys" / f"{key}.key"),
        "--approved-by",
        "release-team",
        *extra,
    )


def test_sign_then_cosign_then_verify_as_the_controller_does(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = sign(monkeypatch, capsys, checkout, "ci", "--summary", "one signature")
    assert code == 0, text
    assert "signatures: ci" in text and "PRIVATE" not in text
    code, text = sign(monkeypatch, capsys, checkout, "release", "--json")
    assert code == 0, text
    data = json.loads(text)
    assert data["signers"] == ["ci", "release"]
    # the digest is the effective policy's: the file and the project config's enforcement
    policy = checkout_policy(checkout, "prod")
    assert policy is not None and policy.policy_enforcement is not None
    assert policy.policy_enforcement.require_guardrails
    assert data["policy_digest"] == policy_digest("prod", policy)
    raw = (checkout / "environments" / "approvals" / "prod.json").read_bytes()
    keyring = load_keyring(checkout.parent / "trusted")
    signers = verify_policy_approval(
        raw,
        keyring,
        now=NOW,
        environment="prod",
        policy_digest=data["policy_digest"],
        required_signatures=2,
        accepted_key_ids=None,
    )
    assert signers == ("ci", "release")
    # a key the policy in force does not accept does not count
    with pytest.raises(BundleError) as err:
        verify_policy_approval(
            raw,
            keyring,
            now=NOW,
            environment="prod",
            policy_digest=data["policy_digest"],
            required_signatures=2,
            accepted_key_ids=["ci"],
        )
    assert err.value.code == ErrorCode.bundle_insufficient_signatures
    assert "release is not accepted in prod" in err.value.message
    # the same rules written otherwise are the same policy; other rules are not
    (checkout / "environments" / "prod.yaml").write_text("version: v1  # reformatted\n")
    assert policy_digest("prod", checkout_policy(checkout, "prod")) == data["policy_digest"]
    (checkout / "environments" / "prod.yaml").write_text("version: v1\nrequired_signatures: 2\n")
    other = policy_digest("prod", checkout_policy(checkout, "prod"))
    with pytest.raises(BundleError) as err:
        verify_policy_approval(
            raw,
            keyring,
            now=NOW,
            environment="prod",
            policy_digest=other,
            required_signatures=1,
            accepted_key_ids=None,
        )
    assert err.value.code == ErrorCode.policy_approval_mismatch
    # an untrusted key's signature (an intern's) adds nothing, an edit breaks the rest
    code, _ = sign(monkeypatch, capsys, checkout, "intern")
    assert code == 0
    doc = json.loads((checkout / "environments" / "approvals" / "prod.json").read_text())
    assert [s["key_id"] for s in doc["signatures"]] == ["intern"]  # a new policy: re-signed
    doc["summary"] = "edited after signing"
    with pytest.raises(BundleError) as err:
        verify_policy_approval(
            json.dumps(doc),
            keyring,
            now=NOW,
            environment="prod",
            policy_digest=other,
            required_signatures=1,
            accepted_key_ids=None,
        )
    assert err.value.code == ErrorCode.bundle_insufficient_signatures


def test_a_removal_is_signed_only_when_asked_for(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = sign(monkeypatch, capsys, checkout, "ci", "--removal")
    assert code != 0 and "--removal signs a deleted file" in text
    (checkout / "environments" / "prod.yaml").unlink()
    code, text = sign(monkeypatch, capsys, checkout, "ci")
    assert code != 0 and "pass --removal" in text
    assert not (checkout / "environments" / "approvals").exists()
    code, text = sign(monkeypatch, capsys, checkout, "ci", "--removal")
    assert code == 0, text
    doc = json.loads((checkout / "environments" / "approvals" / "prod.json").read_text())
    assert doc["policy_digest"] == policy_digest("prod", None)
    assert doc["summary"] == "environment removed"


def test_a_malformed_approval_is_named() -> None:
    for raw, field in (
        ("{", None),
        ('{"kind": "KneoSpecBundle"}', "kind"),
        ('{"kind": "KneoPolicyApproval"}', "environment"),
    ):
        with pytest.raises(BundleError) as err:
            verify_policy_approval(
                raw,
                load_keyring_empty(),
                now=NOW,
                environment="prod",
                policy_digest="sha256:" + "0" * 64,
                required_signatures=1,
                accepted_key_ids=None,
            )
        assert err.value.code == ErrorCode.policy_approval_malformed
        if field:
            assert err.value.details.get("field") == field


def load_keyring_empty() -> Keyring:
    return Keyring()


def test_floors_name_the_field_at_fault(tmp_path: Path) -> None:
    good = tmp_path / "floors.yaml"
    good.write_text(
        "version: v1\nenvironments:\n  prod:\n    required_signatures: 2\n"
        "    promotion: {refuse_downgrade: true}\n"
    )
    floors = load_floors(good)
    floor = floors.get("prod")
    assert floor is not None and floor.paths == {
        "required_signatures",
        "promotion.refuse_downgrade",
    }
    weak = EnvironmentPolicy(environment="prod", required_signatures=1)
    assert [c.gate for c in floor.below(weak)] == [
        "required_signatures",
        "promotion.refuse_downgrade",
    ]
    # a field the floor does not set is no floor (bundle_processes defaults to false)
    strong = EnvironmentPolicy.model_validate(
        {
            "required_signatures": 3,
            "promotion": {"refuse_downgrade": True},
            "resources": {"bundle_processes": True},
        }
    )
    assert floor.below(strong) == []
    for text, field in (
        (
            "environments:\n  prod: {required_signatures: zero}\n",
            "environments.prod.required_signatures",
        ),
        ("environments:\n  prod: {no_such_gate: 1}\n", "environments.prod.no_such_gate"),
        ("environments:\n  'bad name!': {}\n", "environments.bad name!"),
        ("version: v2\n", "version"),
        ("- a list\n", "environments"),
    ):
        good.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_floors(good)
        assert err.value.details.get("field") == field, text
    good.write_text(
        "environments:\n  prod: {required_signatures: 2}\n  prod: {required_signatures: 1}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_floors(good)
    assert "prod" in err.value.message
    assert parse_floors(None, source="x").environments == {}
    assert load_floors(None).environments == {}
