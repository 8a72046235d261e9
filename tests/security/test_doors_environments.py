"""Environments are declared, never guessed (issue 52, item 3).

A project declares its environments (``environments:`` in ``.kneo/config.yaml`` and its
``environments/<env>.yaml`` files; one that declares none has exactly ``dev``). Every way a
run starts asks the one answer (``kneo.spec.project.judge_environment``, through
``RunAdmission.environment``): an environment the project does not declare is
``E_UNKNOWN_ENV``, and an omitted one is the project's default, judged by exactly the rules
of the environment the run is then recorded under.

The attack: every declared run environment requires approved bundles, yet an inline spec
sent to ``POST /v1/runs`` with no ``environment`` (recorded as ``dev``) or with a made-up one
(``prod2``) ran. Here each way in (inline spec and ``spec_path`` on the API, ``kneo run``,
a bundle through the API and through the MCP ``start_run`` tool, an eval suite) x omitted /
declared / undeclared -> the documented outcome. Every spec calls a project function that
writes a marker file: a refused run leaves no marker and no run row.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.cli import output
from kneo.cli.main import app
from kneo.clock import ManualClock
from kneo.controller.spec_checks import default_spec_checker
from kneo.errors import KneoError
from kneo.evals.runner import run_suite
from kneo.evals.suite import load_suite
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext, declared_environments
from kneo.store import RunQuery, open_store
from tests.controller.gitops_fixtures import Keys, Repo, make_controller
from tests.mcp_tests.test_mcp_server import error_text, payload, session
from tests.service.svc_helpers import serving_app

OPERATOR_KEY = "planted-operator-key-e7a210"
AUTH = {"KNEO_SERV_AUTH_ENABLED": "true", "KNEO_SERV_API_KEYS": f"ops:{OPERATOR_KEY}:operator"}
BEARER = {"Authorization": f"Bearer {OPERATOR_KEY}"}

#: What a spec run (inline, ``spec_path``, ``kneo run``) meets, by the environment it names
#: (``None``: omitted, so the project's default ``dev``, which runs only approved bundles).
SPEC_RUN: dict[str | None, tuple[int, str | None]] = {
    None: (403, "bundle_not_approved"),
    "prod": (403, "bundle_not_approved"),
    "prod2": (400, "E_UNKNOWN_ENV"),  # declared nowhere
    "canary": (400, "E_UNKNOWN_ENV"),  # the watched repository's: for bundles only
    "guarded": (400, "E_POLICY_HUMAN_REVIEW_REQUIRED"),  # declared by its file: its policy
    "sandbox": (200, None),  # declared, open to specs
}


class World:
    """A project whose declared environments are ``dev`` and ``prod`` (approved bundles
    only), ``sandbox`` (open) and ``guarded`` (declared by its file alone, needing human
    review), with a function that writes a marker when a run really ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / "ran"
        self.module = f"envsteps_{secrets.token_hex(4)}"
        (root / ".kneo").mkdir(parents=True)
        (root / "environments").mkdir()
        (root / f"{self.module}.py").write_text(
            "from pathlib import Path\n\n\n"
            "def touch(text: str) -> str:\n"
            f"    Path({str(self.marker)!r}).write_text(text)\n"
            "    return 'touched'\n"
        )
        self.configure()
        for env in ("dev", "prod"):
            self.env_file(env, "runs: {require_approved_bundle: true}\n")
        self.env_file("guarded", "policy_enforcement: {require_human_review: true}\n")
        (root / "spec.yaml").write_text(json.dumps(self.spec()))

    def configure(self, **extra: Any) -> None:
        config = {
            "version": "v1",
            "functions": {"declared": [f"{self.module}:touch"]},
            "environments": {"dev": {}, "prod": {}, "sandbox": {}},
            **extra,
        }
        (self.root / ".kneo" / "config.yaml").write_text(json.dumps(config))

    def env_file(self, env: str, text: str) -> None:
        (self.root / "environments" / f"{env}.yaml").write_text(f"version: v1\n{text}")

    def spec(self) -> dict[str, Any]:
        steps = [{"id": "s", "kind": "function", "ref": f"{self.module}:touch"}]
        return {"version": "v1", "workflow": {"type": "sequential", "steps": steps}}

    def nothing_ran(self) -> None:
        assert not self.marker.exists()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One project for the module; each test starts with no marker."""
    return World(tmp_path_factory.mktemp("envs") / "project")


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KNEO_ENV", "KNEO_PROJECT_CONFIG", "KNEO_SERV_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if "world" in request.fixturenames:  # the service runs in its project, as deployed
        world = request.getfixturevalue("world")
        world.marker.unlink(missing_ok=True)
        monkeypatch.chdir(world.root)


class Service:
    """The real app over one store, with a GitOps controller that activated bundle ``b``
    in ``prod`` and in ``canary`` (an environment only the watched repository declares)."""

    def __init__(self, world: World, tmp_path: Path, *, gitops: bool = True) -> None:
        self.clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
        self.settings = Settings.from_env(AUTH)
        self.store = open_store(
            f"sqlite:///{tmp_path / 'service.sqlite'}", settings=self.settings, clock=self.clock
        )
        self.project = ProjectContext.discover(cwd=world.root, settings=self.settings)
        self.manager = create_platform(
            self.settings, self.project, store=self.store, clock=self.clock
        )
        if gitops:
            self._controller(world, tmp_path)

    def _controller(self, world: World, tmp_path: Path) -> None:
        repo = Repo(tmp_path / "git")
        repo.write("environments/prod.yaml", "version: v1\nruns: {require_approved_bundle: true}\n")
        repo.write("environments/canary.yaml", "version: v1\n")
        keys = Keys(tmp_path / "keys")
        for env in ("prod", "canary"):
            repo.write(f"bundles/b/{env}.json", keys.bundle("b", env, world.spec()))
        repo.commit("bundle b in prod and canary")
        ctl = make_controller(self.store, repo, keys, self.clock, tmp_path)
        ctl.loader.spec_checker = default_spec_checker(self.project.tool_registry(), self.project)
        assert ctl.reconcile_once().ok
        assert {e for e in ("prod", "canary") if self.store.registry.get_active("b", e)} == {
            "prod",
            "canary",
        }

    def app(self, **options: Any) -> Any:
        return create_app(
            False, settings=self.settings, manager=self.manager, start_worker=False, **options
        )

    def runs(self) -> set[str]:
        return {run.run_id for run in self.store.runs.list_runs(RunQuery(count=False)).items}


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    made = Service(world, tmp_path_factory.mktemp("service"))
    yield made
    made.store.close()


@pytest.fixture
def api(service: Service) -> Iterator[TestClient]:
    with TestClient(service.app(), raise_server_exceptions=False) as client:
        yield client


def _body(source: dict[str, Any], environment: str | None) -> dict[str, Any]:
    body = {**source, "input": "x"}
    if environment is not None:
        body["environment"] = environment
    return body


def _outcome(
    world: World,
    service: Service,
    before: set[str],
    response: Any,
    environment: str | None,
    *,
    bundle: bool,
) -> None:
    """The documented outcome of a run naming ``environment``: refused with nothing run
    and no run row, or run and recorded under exactly that environment."""
    status, code = SPEC_RUN[environment] if not bundle else BUNDLE_RUN[environment]
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"] == code, response.text
        world.nothing_ran()
        assert service.runs() == before
        return
    assert response.json()["status"] == "succeeded", response.text
    assert world.marker.read_text() == "x"
    [new] = service.runs() - before
    run = service.store.runs.get_run(new)
    assert run.environment == environment
    assert (run.bundle_name is not None) == bundle


# --------------------------------------------------------------------------- the answer


def test_what_a_project_declares(tmp_path: Path) -> None:
    """Its config's environments and its environment files, nothing else; none: ``dev``."""
    own = World(tmp_path / "own")
    context = ProjectContext.discover(cwd=own.root, settings=Settings.from_env({}))
    assert context.declared_environments() == ("dev", "guarded", "prod", "sandbox")
    (own.root / "spec.prod2.yaml").write_text("version: v1\n")  # an overlay declares nothing
    (own.root / "environments" / "not a name.yaml").write_text("version: v1\n")
    assert "prod2" not in context.declared_environments()
    own.env_file("qa", "")  # a file added is seen by the next question
    assert "qa" in context.declared_environments()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert declared_environments(None, empty) == ("dev",)


# --------------------------------------------------------------------------- API: spec runs


@pytest.mark.parametrize("environment", list(SPEC_RUN))
@pytest.mark.parametrize("source", ["inline", "spec_path"])
def test_a_spec_run_through_the_api(
    world: World, service: Service, api: TestClient, source: str, environment: str | None
) -> None:
    spec = {"spec": world.spec()} if source == "inline" else {"spec_path": "spec.yaml"}
    before = service.runs()
    response = api.post("/v1/runs", headers=BEARER, json=_body(spec, environment))
    _outcome(world, service, before, response, environment, bundle=False)


def test_the_refusal_names_the_field_and_the_declared_environments(api: TestClient) -> None:
    response = api.post("/v1/runs", headers=BEARER, json=_body({"spec_path": "spec.yaml"}, "prd"))
    body = response.json()
    assert (body["error"], body["field"], body["environment"]) == (
        "E_UNKNOWN_ENV",
        "environment",
        "prd",
    )
    assert body["known"] == ["dev", "guarded", "prod", "sandbox"]
    assert "did you mean 'prod'?" in body["message"]


@pytest.mark.parametrize(
    ("default", "status", "code"),
    [
        ("sandbox", 200, None),
        ("guarded", 400, "E_POLICY_HUMAN_REVIEW_REQUIRED"),
        ("prod", 403, "bundle_not_approved"),
        ("nowhere", 400, "E_UNKNOWN_ENV"),
    ],
)
def test_an_omitted_environment_is_judged_as_the_one_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default: str, status: int, code: str | None
) -> None:
    """Whatever the project's default environment is, a run that names none meets exactly
    its rules, and is recorded under it."""
    own = World(tmp_path / "own")
    monkeypatch.chdir(own.root)
    own.configure(default_environment=default)
    made = Service(own, tmp_path, gitops=False)
    with TestClient(made.app(), raise_server_exceptions=False) as client:
        response = client.post("/v1/runs", headers=BEARER, json=_body({"spec": own.spec()}, None))
    assert response.status_code == status, response.text
    if code is None:
        assert [made.store.runs.get_run(r).environment for r in made.runs()] == [default]
        assert own.marker.exists()
    else:
        assert response.json()["error"] == code
        if code == "E_UNKNOWN_ENV":
            assert "no environment given" in response.json()["message"]
        assert made.runs() == set()
        own.nothing_ran()
    made.store.close()


def test_a_project_that_declares_none_has_exactly_dev(tmp_path: Path) -> None:
    """The quickstart: no config, no environment files; a run names ``dev`` or nothing."""
    root = tmp_path / "bare"
    root.mkdir()
    settings = Settings.from_env({})
    project = ProjectContext.discover(cwd=root, settings=settings)
    manager = create_platform(
        settings, project, store=open_store(None, settings=settings, state_dir=root)
    )
    spec = {"version": "v1", "agent": {"name": "a", "model": {"provider": "dummy"}}}
    for named in (None, "dev"):
        ran = manager.run_from_spec(input_text="hi", spec=spec, environment=named)
        assert manager.store.runs.get_run(ran.run_id).environment == "dev"
    for guessed in ("staging", "prod"):
        with pytest.raises(KneoError) as refused:
            manager.run_from_spec(input_text="hi", spec=spec, environment=guessed)
        assert refused.value.code == "E_UNKNOWN_ENV"
    manager.store.close()


# --------------------------------------------------------------------------- bundles

#: A bundle run names its environment (the request schema requires one); ``prod`` and
#: ``canary`` have the active revision, ``sandbox`` is declared but has none.
BUNDLE_RUN: dict[str | None, tuple[int, str | None]] = {
    None: (422, "validation_error"),
    "prod": (200, None),
    "canary": (200, None),  # declared by the watched repository, where the bundle is active
    "sandbox": (404, "not_found"),
    "prod2": (400, "E_UNKNOWN_ENV"),  # before the registry is asked
}


@pytest.mark.parametrize("environment", list(BUNDLE_RUN))
def test_a_bundle_run_through_the_api(
    world: World, service: Service, api: TestClient, environment: str | None
) -> None:
    before = service.runs()
    response = api.post("/v1/runs", headers=BEARER, json=_body({"bundle": "b"}, environment))
    _outcome(world, service, before, response, environment, bundle=True)


@pytest.fixture
def mcp_url(service: Service) -> Iterator[str]:
    """The service with ``/mcp`` on a real socket (uvicorn in a thread)."""
    with serving_app(service.app(mcp=True)) as base:
        yield base + "/mcp"


def test_the_mcp_start_run_tool(world: World, service: Service, mcp_url: str) -> None:
    """The tool is the API route with the caller's key: the same answers."""
    before = service.runs()
    undeclared, omitted = session(
        mcp_url,
        OPERATOR_KEY,
        [
            ("start_run", {"bundle": "b", "environment": "prod2", "input": "x"}),
            ("start_run", {"bundle": "b", "input": "x"}),  # the tool's schema requires one
        ],
    )
    assert "400 E_UNKNOWN_ENV" in error_text(undeclared)
    assert "environment" in error_text(omitted)
    world.nothing_ran()
    assert service.runs() == before
    [ran] = session(
        mcp_url,
        OPERATOR_KEY,
        [("start_run", {"bundle": "b", "environment": "canary", "input": "x"})],
    )
    assert payload(ran)["status"] == "succeeded"
    [new] = service.runs() - before
    assert (service.store.runs.get_run(new).environment, world.marker.read_text()) == (
        "canary",
        "x",
    )


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def kneo(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    """``kneo`` through its real entry point, in this process, in the project."""

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["kneo", *args])
        monkeypatch.setattr(output, "_error_format", None)
        capsys.readouterr()
        code = output.run_cli(app)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.mark.parametrize(
    ("flags", "kneo_env", "code"),
    [
        ((), None, "bundle_not_approved"),  # omitted: dev, the default
        (("--env", "prod2"), None, "E_UNKNOWN_ENV"),
        ((), "prod2", "E_UNKNOWN_ENV"),
        (("--env", "prod"), None, "bundle_not_approved"),
        (("--env", "sandbox"), None, None),
        (("--bundle", "b", "--env", "prod2"), None, "E_UNKNOWN_ENV"),
    ],
    ids=[
        "omitted",
        "undeclared",
        "undeclared-KNEO_ENV",
        "declared-bundles-only",
        "declared",
        "bundle-undeclared",
    ],
)
def test_kneo_run(
    world: World,
    kneo: Callable[..., tuple[int, str]],
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    kneo_env: str | None,
    code: str | None,
) -> None:
    if kneo_env is not None:
        monkeypatch.setenv("KNEO_ENV", kneo_env)
    source = () if "--bundle" in flags else ("spec.yaml",)
    exit_code, shown = kneo("run", *source, *flags, "--input", "x", "--json")
    if code is None:
        assert exit_code == 0, shown
        assert world.marker.read_text() == "x"
        return
    assert exit_code != 0
    assert code in shown, shown
    world.nothing_ran()


@pytest.mark.parametrize(
    "command",
    [
        ("spec", "validate", "spec.yaml"),
        ("spec", "lint", "spec.yaml"),
        (
            "spec",
            "bundle",
            "sign",
            "spec.yaml",
            "--name",
            "b",
            "-o",
            "b.json",
            "--key-env",
            "K",
            "--approved-by",
            "ci",
        ),
        ("config", "resolve"),
    ],
    ids=["validate", "lint", "sign", "config-resolve"],
)
def test_the_cli_checks_name_only_declared_environments(
    world: World,
    kneo: Callable[..., tuple[int, str]],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.setenv("K", "a-signing-secret-of-32-characters")
    exit_code, shown = kneo(*command, "--env", "prod2")
    assert exit_code != 0 and "E_UNKNOWN_ENV" in shown, shown
    assert not (world.root / "b.json").exists()


def test_the_cli_checks_a_declared_environment(kneo: Callable[..., tuple[int, str]]) -> None:
    for command in (("spec", "validate", "spec.yaml"), ("config", "resolve")):
        exit_code, shown = kneo(*command, "--env", "sandbox")
        assert exit_code == 0, shown


# --------------------------------------------------------------------------- evals

SUITE = """version: v1
suite: touches
cases:
  - id: touched
    input: x
    expect:
      output: {contains: touched}
"""


@pytest.fixture
def suite(world: World) -> Any:
    path = world.root / "touches.eval.yaml"
    path.write_text(SUITE)
    return load_suite(path)


@pytest.mark.parametrize(
    ("environment", "outcome"),
    [
        (None, "passed"),  # the default, dev: a rehearsal of the bundle, so no bundle rule
        ("prod", "passed"),
        ("sandbox", "passed"),
        ("guarded", "E_POLICY_HUMAN_REVIEW_REQUIRED"),  # cases judged where the result says
    ],
)
def test_an_eval_suite_runs_its_cases_in_its_environment(
    world: World, suite: Any, environment: str | None, outcome: str
) -> None:
    result = run_suite(suite, "spec.yaml", environment=environment, workers=1)
    [case] = result.cases
    assert result.environment == environment
    if outcome == "passed":
        assert case.passed, case.failures
        assert world.marker.read_text() == "x"
    else:
        assert not case.passed and case.error == outcome
        world.nothing_ran()


def test_an_eval_suite_for_an_undeclared_environment_runs_no_case(
    world: World, suite: Any, kneo: Callable[..., tuple[int, str]]
) -> None:
    with pytest.raises(KneoError) as refused:
        run_suite(suite, "spec.yaml", environment="prod2", workers=1)
    assert refused.value.code == "E_UNKNOWN_ENV"
    exit_code, shown = kneo(
        "eval", "run", "spec.yaml", "--suite", "touches.eval.yaml", "--env", "prod2"
    )
    assert exit_code != 0 and "E_UNKNOWN_ENV" in shown, shown
    world.nothing_ran()
