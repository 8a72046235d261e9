"""Hostile callers (issue rows 1, 7, 8, 9, 10): a clear error with a stable code, never a
crash, a hang, a 500 or a leak. Rows 3-4 are tests/operations/test_database_faults.py, row 5
tests/service/test_planted_secrets_everywhere.py, row 7's fuzzing
tests/service/test_openapi_fuzz.py, rows 2 and 6 tests/controller/test_controller_hostile.py."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from svc_helpers import ROOT, auth_env, headers

from kneo.settings import Settings
from tests.cli_zygote import KNEO

SMOKE = "examples/smoke_human_workflow.yaml"
HOOK_SECRET = "webhook-secret-value"


def _kneo(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*KNEO, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The real app, auth on, a controller attached (for the webhook), SQLite or PostgreSQL."""
    from kneo.bundle.keys import Keyring
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import Controller
    from kneo.controller.source import GitSource
    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.store import open_store

    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    settings = Settings.from_env(
        {**auth_env(), "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p"), "HOOK": HOOK_SECRET}
    )
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings=settings, store=store)
    controller = Controller(
        store,
        GitSource(str(tmp_path / "no-repo")),
        Keyring(),
        config=ControllerConfig(webhook_secret_env="HOOK"),
    )
    app = create_app(
        False, settings=settings, manager=manager, start_worker=False, controller=controller
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    store.close()


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code, response.text


def test_row1_deep_yaml_is_a_clear_error_not_a_segfault(tmp_path: Path) -> None:
    """Row 1: ``kneo spec validate`` on 50,000 nested ``[`` exited 139 (segfault)."""
    deep = tmp_path / "d.yaml"
    deep.write_text("version: v1\nworkflow: " + "[" * 50_000 + "]" * 50_000 + "\n")
    done = _kneo(tmp_path, "spec", "validate", str(deep))
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "error[E_DOCUMENT_TOO_DEEP]" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_row1_viewer_spec_path_to_a_deep_file(client: TestClient, tmp_path: Path) -> None:
    """Row 1: a viewer key did the same through ``POST /v1/specs/validate`` with a path."""
    deep = ROOT / ".kneo" / f"deep-{os.getpid()}-{time.monotonic_ns()}.yaml"
    deep.parent.mkdir(exist_ok=True)
    deep.write_text("version: v1\nworkflow: " + "[" * 20_000 + "]" * 20_000 + "\n")
    try:
        r = client.post(
            "/v1/specs/validate", headers=headers("viewer"), json={"spec_path": str(deep)}
        )
    finally:
        deep.unlink()
    _error(r, 400, "E_DOCUMENT_TOO_DEEP")


@pytest.mark.parametrize("route", ["/v1/runs", "/v1/specs/run"])
def test_row7_invalid_environment_is_400(client: TestClient, route: str) -> None:
    """Row 7: ``environment: "+A"`` was a pydantic error, so a 500."""
    for body in (
        {"input": "x", "spec_path": SMOKE, "environment": "+A"},
        {"input": "x", "spec_path": SMOKE, "environment": "../../prod"},
        {"input": "x", "bundle": "helper", "environment": "+A"},
        {"input": "x", "bundle": "../x", "environment": "dev"},
    ):
        r = client.post(route, headers=headers("operator"), json=body)
        _error(r, 400, "invalid_name")


@pytest.mark.parametrize("route", ["/v1/runs", "/v1/human-tasks", "/v1/audit-events"])
def test_row7_offset_beyond_every_integer_is_400(client: TestClient, route: str) -> None:
    """Row 7: ``?offset=9223372036854775808`` overflowed the driver: a 500. An offset above
    ``KNEO_SERV_MAX_LIST_OFFSET`` (10,000) is ``offset_too_deep``, pointing to the cursor."""
    for offset in ("9223372036854775808", str(2**31), "-1"):
        _error(
            client.get(route, params={"offset": offset}, headers=headers("viewer")),
            400,
            "invalid_request",
        )
    deep = client.get(route, params={"offset": 2**31 - 1}, headers=headers("viewer"))
    _error(deep, 400, "offset_too_deep")
    assert "cursor" in deep.json()["message"] and deep.json()["field"] == "offset"
    assert (
        client.get(route, params={"offset": 10_000}, headers=headers("viewer")).status_code == 200
    )


def test_ages_and_ids_beyond_what_a_date_or_a_driver_holds_are_400(client: TestClient) -> None:
    """Found by the schema fuzzer: ``older_than_seconds=1e20`` overflowed a date and an id of
    2**70 overflowed SQLite's integer (both 500s)."""
    for age in ("1e20", "-1", "nan", "inf"):
        r = client.get(
            "/v1/human-tasks", params={"older_than_seconds": age}, headers=headers("viewer")
        )
        assert r.status_code in (400, 422), (age, r.text)
        assert r.json()["error"] in ("invalid_request", "validation_error")
    assert (
        client.get(
            "/v1/human-tasks", params={"older_than_seconds": 3600}, headers=headers("viewer")
        ).status_code
        == 200
    )
    r = client.post("/v1/notifications/retry", json={"ids": [2**70]}, headers=headers("admin"))
    assert r.status_code in (400, 422) and "ids" in r.text


def test_row7_nul_in_path_query_or_body_is_400(client: TestClient) -> None:
    """Row 7: on PostgreSQL a NUL byte in a path or a query reached a text column: a 500."""
    viewer, operator = headers("viewer"), headers("operator")
    _error(client.get("/v1/runs/a%00b", headers=viewer), 400, "invalid_request")
    _error(client.get("/v1/runs?status=%00", headers=viewer), 400, "invalid_request")
    _error(client.get("/v1/human-tasks?run_id=x%00", headers=viewer), 400, "invalid_request")
    body = '{"input": "a\\u0000b", "spec_path": "' + SMOKE + '"}'
    r = client.post(
        "/v1/runs", headers={**operator, "content-type": "application/json"}, content=body
    )
    _error(r, 400, "invalid_request")


def test_row7_webhook_with_a_non_ascii_signature_is_401(client: TestClient) -> None:
    """Row 7: a non-ASCII ``X-Hub-Signature-256`` raised ``TypeError`` in compare_digest."""
    for signature in ("sha256=é".encode(), b"sha256=\xff\xfe", b"sha256=" + b"0" * 64):
        r = client.post(
            "/v1/controller/webhook",
            content=b"{}",
            headers={"X-Hub-Signature-256": signature, "content-type": "application/json"},  # type: ignore[dict-item]
        )
        _error(r, 401, "unauthorized")


def test_row8_signing_refuses_a_path_as_bundle_name(tmp_path: Path) -> None:
    """Row 8: ``kneo spec bundle sign --name ../../etc/passwd`` was signed and activated."""
    out = tmp_path / "out.json"
    done = _kneo(
        ROOT,
        "spec",
        "bundle",
        "sign",
        SMOKE,
        "--name",
        "../../etc/passwd",
        "--approved-by",
        "ci",
        "--key-file",
        str(ROOT / "examples" / "keys" / "demo.key"),
        "--env",
        "dev",
        "--output",
        str(out),
    )
    assert done.returncode != 0 and "error[invalid_name]" in done.stdout + done.stderr, done
    assert not out.exists()


def test_row9_spec_path_outside_the_roots_reveals_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    """Row 9: a viewer learned whether any server file exists, its YAML shape and keys."""
    viewer = headers("viewer")
    link = ROOT / ".kneo" / f"link-{os.getpid()}-{time.monotonic_ns()}.yaml"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to("/etc/passwd")
    answers = []
    try:
        for path in ("/etc/passwd", "/etc/no-such-file", "../outside.yaml", str(link)):
            r = client.post("/v1/specs/validate", headers=viewer, json={"spec_path": path})
            _error(r, 403, "spec_path_not_allowed")
            answers.append({k: v for k, v in r.json().items() if k != "request_id"})
    finally:
        link.unlink()
    assert all(a == answers[0] for a in answers)  # existing or not: the same answer
    assert "root:" not in str(answers[0]) and "passwd" not in str(answers[0])  # no content
    assert (
        client.post("/v1/specs/validate", headers=viewer, json={"spec_path": SMOKE}).status_code
        == 200
    )
    r = client.post(
        "/v1/runs", headers=headers("operator"), json={"input": "x", "spec_path": "/etc/passwd"}
    )
    _error(r, 403, "spec_path_not_allowed")


def test_row9_spec_roots_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``KNEO_SERV_SPEC_ROOTS`` replaces the project root as the only place specs may be."""
    from kneo.errors import KneoError
    from kneo.service.spec_source import confined_spec_path

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text("version: v1\n")
    (tmp_path / "b.yaml").write_text("version: v1\n")
    settings = Settings.from_env({"KNEO_SERV_SPEC_ROOTS": "specs"})
    assert (
        confined_spec_path("specs/a.yaml", settings, tmp_path)
        == (tmp_path / "specs" / "a.yaml").resolve()
    )
    with pytest.raises(KneoError) as caught:
        confined_spec_path("b.yaml", settings, tmp_path)
    assert caught.value.code == "spec_path_not_allowed"


def test_row10_symlink_to_dev_zero_does_not_hang(tmp_path: Path) -> None:
    """Row 10: ``kneo spec validate`` on a symlink to ``/dev/zero`` read forever."""
    link = tmp_path / "z.yaml"
    link.symlink_to("/dev/zero")
    started = time.monotonic()
    done = _kneo(tmp_path, "spec", "validate", str(link), timeout=30)
    assert done.returncode == 1 and "error[E_NOT_A_FILE]" in done.stdout + done.stderr, done
    assert time.monotonic() - started < 30


def test_row10_malformed_json_is_400_invalid_request(client: TestClient) -> None:
    """Row 10: malformed JSON bodies were ``422 validation_error`` ("JSON decode error")."""
    for route in ("/v1/runs", "/v1/specs/validate", "/v1/human-tasks/c/resume"):
        for body in (b"{bad", b'{"input": "x",}', b"\xff\xfe", b'{"a": NaN}'):
            r = client.post(
                route,
                headers={**headers("admin"), "content-type": "application/json"},
                content=body,
            )
            _error(r, 400, "invalid_request")


NUMBERS = {
    "underscores": ("1_" * 300 + "1", "E_NUMBER_TOO_LONG"),
    "hex": ("0x" + "F" * 300, "E_NUMBER_TOO_LONG"),
    "sexagesimal": (":".join(["59"] * 3000), "E_NUMBER_TOO_LONG"),
    "infinite": ("1.0e+999", "E_NUMBER_OUT_OF_RANGE"),
}


@pytest.mark.parametrize("shape", sorted(NUMBERS))
@pytest.mark.parametrize(
    ("route", "role"),
    [("/v1/specs/validate", "viewer"), ("/v1/specs/compile", "viewer"), ("/v1/runs", "operator")],
)
def test_numbers_however_written_are_400_naming_the_line(
    client: TestClient, route: str, role: str, shape: str
) -> None:
    """Grouped digits (``1_000``), hex and sexagesimal (``1:30``) bypassed the digit limit
    and reached Python's ``int_max_str_digits``: a 500 on validate, compile and runs."""
    number, code = NUMBERS[shape]
    path = ROOT / ".kneo" / f"numbers-{os.getpid()}-{time.monotonic_ns()}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"version: v1\nagent:\n  name: a\n  model:\n    max_tokens: {number}\n")
    body = {"spec_path": str(path), **({"input": "x"} if route == "/v1/runs" else {})}
    try:
        r = client.post(route, headers=headers(role), json=body)
    finally:
        path.unlink()
    _error(r, 400, code)
    assert f"{path.name}:5" in r.json()["message"]


def test_json_numbers_beyond_a_float_are_400_not_null(client: TestClient) -> None:
    """``1e999`` was parsed as infinity and stored as ``null``."""
    body = '{"input": "x", "spec": {"version": "v1", "agent": {"name": "a",\n "model": {"temperature": 1e999}}}}'
    r = client.post(
        "/v1/runs",
        headers={**headers("operator"), "content-type": "application/json"},
        content=body,
    )
    _error(r, 400, "E_NUMBER_OUT_OF_RANGE")
    assert r.json()["line"] == 2 and "1e999" in r.json()["message"]


def test_a_lone_surrogate_escape_is_400_not_a_500_at_insert(client: TestClient) -> None:
    """``\\ud800`` is valid JSON but no UTF-8 text: the insert failed with a 500."""
    for text in ("a\\ud800b", "\\udc00", "\\ud83d\\ud83d"):
        body = '{"input": "' + text + '", "spec_path": "' + SMOKE + '"}'
        r = client.post(
            "/v1/runs",
            headers={**headers("operator"), "content-type": "application/json"},
            content=body,
        )
        _error(r, 400, "invalid_request")
        assert "surrogate" in r.json()["message"]
    paired = '{"input": "smile \\ud83d\\ude00", "spec_path": "' + SMOKE + '"}'
    r = client.post(
        "/v1/runs",
        headers={**headers("operator"), "content-type": "application/json"},
        content=paired,
    )
    assert r.status_code == 200, r.text


def test_no_caller_sees_the_servers_paths(client: TestClient) -> None:
    """A run's view carried ``base_dir`` and an absolute ``spec_path``: the server's layout."""
    run = client.post(
        "/v1/runs", headers=headers("operator"), json={"input": "x", "spec_path": SMOKE}
    ).json()
    for role in ("viewer", "admin"):
        view = client.get(f"/v1/runs/{run['run_id']}", headers=headers(role)).json()
        assert "base_dir" not in view["metadata"]
        assert view["metadata"]["spec_path"] == SMOKE
        audit = client.get("/v1/audit-events", headers=headers(role)).text
        assert str(ROOT) not in json.dumps(view) and str(ROOT) not in audit
