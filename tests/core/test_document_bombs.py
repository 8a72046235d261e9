"""Document bombs at every entry point: each is refused with its limit, never a crash.

A table of hostile documents (deep nesting, huge numbers, alias bombs, a recursive alias,
an oversized file, too many values, files that are not files) against every place YAML or
JSON enters Kneo: spec, overlay, project config, environment file, controller config,
keyring index, profiles and bundle files on disk; the controller's Git blobs; the HTTP
API's bodies and ``spec_path``; a person's decision content. Each case asserts the stable
code (or, where an entry point wraps it, its own code plus the limit as ``reason``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.errors import KneoError

DEEP = 50_000  # libyaml's composer overflowed the C stack around here
DIGITS = 100_000  # Python's int() refuses more than 4,300
LARGE = 9 * 1024 * 1024  # above the 8 MiB document limit


@dataclass(frozen=True)
class Bomb:
    name: str
    code: str
    #: what the error message says about the limit (entry points that wrap the code keep it)
    says: str
    yaml: Callable[[], str] | None = None
    json: Callable[[], str] | None = None


def _laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


BOMBS = [
    Bomb(
        "deep",
        "E_DOCUMENT_TOO_DEEP",
        "max_depth",
        yaml=lambda: "version: v1\nagent: " + "[" * DEEP + "]" * DEEP + "\n",
        json=lambda: '{"version": "v1", "agent": ' + "[" * DEEP + "]" * DEEP + "}",
    ),
    Bomb(
        "long number",
        "E_NUMBER_TOO_LONG",
        "max_number_digits",
        yaml=lambda: "version: v1\nagent: " + "9" * DIGITS + "\n",
        json=lambda: '{"version": "v1", "agent": ' + "9" * DIGITS + "}",
    ),
    Bomb("alias bomb", "E_DOCUMENT_TOO_COMPLEX", "max_nodes", yaml=_laughs),
    Bomb("recursive alias", "E_DOCUMENT_TOO_COMPLEX", "containing it", yaml=lambda: "a: &a [*a]\n"),
    Bomb(
        "too many values",
        "E_DOCUMENT_TOO_COMPLEX",
        "max_nodes",
        json=lambda: "[" + "0," * 300_000 + "0]",
    ),
    Bomb(  # one reading: a second value for a key is refused, never the last one taken
        "duplicate key",
        "E_DUPLICATE_KEY",
        "given twice",
        yaml=lambda: "version: v1\nagent: {name: a}\nversion: v1\n",
        json=lambda: '{"version": "v1", "agent": {}, "version": "v1"}',
    ),
    Bomb(
        "oversized",
        "E_DOCUMENT_TOO_LARGE",
        "max_bytes",
        yaml=lambda: "version: v1\nx: '" + "a" * LARGE + "'\n",
        json=lambda: '{"x": "' + "a" * LARGE + '"}',
    ),
]


def _refused(exc: KneoError, bomb: Bomb) -> bool:
    """The bomb's code, directly or as the ``reason`` of the entry point's own error, or at
    least its limit named in the message."""
    return (
        exc.code == bomb.code or exc.details.get("reason") == bomb.code or bomb.says in exc.message
    )


# --------------------------------------------------------------------------- files on disk


def _spec(path: Path) -> Any:
    from kneo.spec.loader import load_spec

    return load_spec(path)


def _overlay(path: Path) -> Any:
    from kneo.spec.loader import load_spec

    overlay = path.with_name("base.dev.yaml")
    os.replace(path, overlay)
    base = path.with_name("base.yaml")
    base.write_text("version: v1\nagent: {name: a, system_prompt: hi}\n")
    return load_spec(base, env="dev")


def _project_config(path: Path) -> Any:
    from kneo.spec.project import load_project_config

    return load_project_config(path)


def _environment_file(path: Path) -> Any:
    from kneo.policy.environment import load_environment_file

    target = path.with_name("dev.yaml")
    os.replace(path, target)
    return load_environment_file(target)


def _controller_config(path: Path) -> Any:
    from kneo.controller.config import load_controller_config

    return load_controller_config(path)


def _keyring_index(path: Path) -> Any:
    from kneo.bundle.keys import load_keyring

    os.replace(path, path.with_name("keyring.yaml"))
    return load_keyring(path.parent)


def _profiles(path: Path) -> Any:
    from kneo.cli.profiles import ProfileStore

    return ProfileStore(path).get("default")


def _bundle_file(path: Path) -> Any:
    from kneo.bundle.format import parse_bundle
    from kneo.documents import read_file

    return parse_bundle(read_file(path))


YAML_FILES: dict[str, Callable[[Path], Any]] = {
    "spec file": _spec,
    "spec overlay": _overlay,
    "project config": _project_config,
    "environment file": _environment_file,
    "controller config": _controller_config,
    "keyring index": _keyring_index,
}
JSON_FILES: dict[str, Callable[[Path], Any]] = {
    "profiles file": _profiles,
    "bundle file": _bundle_file,
}


def _cases(kind: str, entries: dict[str, Callable[[Path], Any]]) -> list[Any]:
    return [
        pytest.param(entry, bomb, id=f"{entry}-{bomb.name}")
        for entry in entries
        for bomb in BOMBS
        if getattr(bomb, kind) is not None
    ]


@pytest.mark.parametrize(("entry", "bomb"), _cases("yaml", YAML_FILES) + _cases("json", JSON_FILES))
def test_file_bombs_are_refused(entry: str, bomb: Bomb, tmp_path: Path) -> None:
    loader = YAML_FILES.get(entry) or JSON_FILES[entry]
    text = (bomb.yaml if entry in YAML_FILES else bomb.json)()  # type: ignore[misc]
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    with pytest.raises(KneoError) as caught:
        loader(path)
    assert _refused(caught.value, bomb), caught.value.to_dict()
    assert len(caught.value.message) < 2_000  # the document is never echoed back


@pytest.mark.parametrize("entry", [*YAML_FILES, *JSON_FILES])
@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo"])
def test_files_that_are_not_files_are_refused_without_reading(
    entry: str, kind: str, tmp_path: Path
) -> None:
    loader = YAML_FILES.get(entry) or JSON_FILES[entry]
    path = tmp_path / "doc.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block without O_NONBLOCK
    else:
        path.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(KneoError) as caught:
        loader(path)
    error = caught.value
    assert "E_NOT_A_FILE" in (error.code, error.details.get("reason")) or "not a regular file" in (
        error.message
    ), error.to_dict()


# --------------------------------------------------------------------------- Git blobs


class MemorySource:
    """A repository at one commit, in memory (the loader only needs the Source protocol)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.blobs = {hashlib.sha1(data).hexdigest(): data for data in files.values()}
        self.files = files

    def fetch(self) -> str:
        return "0" * 40

    def list_files(self, commit: str) -> dict[str, Any]:
        from kneo.controller.source import TreeFile

        return {p: TreeFile(p, hashlib.sha1(d).hexdigest()) for p, d in self.files.items()}

    def read_blob(self, blob_sha: str) -> bytes:
        return self.blobs[blob_sha]

    def read_blobs(self, blob_shas: list[str]) -> Any:
        return ((sha, self.blobs[sha]) for sha in blob_shas)

    def describe(self) -> str:
        return "memory"


def _load(files: dict[str, bytes]) -> Any:
    from kneo.bundle.keys import Keyring
    from kneo.controller.loader import DesiredStateLoader

    return DesiredStateLoader(Keyring(), spec_checker=lambda spec, policy: ([], [])).load(
        MemorySource(files), "0" * 40
    )


@pytest.mark.parametrize("bomb", [b for b in BOMBS if b.yaml], ids=lambda b: b.name)
@pytest.mark.parametrize("path", ["environments/dev.yaml", ".kneo/config.yaml"])
def test_git_yaml_blob_bombs_reject_that_file_only(path: str, bomb: Bomb) -> None:
    files = {"environments/dev.yaml": b"version: v1\n", "environments/qa.yaml": b"version: v1\n"}
    files[path] = bomb.yaml().encode()  # type: ignore[misc]
    desired = _load(files)
    problems = [p for env in desired.environments.values() for p in env.problems]
    assert problems and all(bomb.says in p.message for p in problems), problems
    if path.startswith("environments/"):
        assert not desired.environments["qa"].problems  # the other environment is untouched


@pytest.mark.parametrize("bomb", [b for b in BOMBS if b.json], ids=lambda b: b.name)
def test_git_bundle_blob_bombs_reject_that_bundle_only(bomb: Bomb) -> None:
    files = {
        "environments/dev.yaml": b"version: v1\n",
        "bundles/bad/dev.json": bomb.json().encode(),  # type: ignore[misc]
        "bundles/also-bad/dev.json": b"{}",
    }
    desired = _load(files)
    (problem,) = desired.revisions[("bad", "dev")].problems
    assert problem.code == "bundle_malformed" and bomb.says in problem.message
    assert desired.revisions[("also-bad", "dev")].problems[0].code == "bundle_malformed"


# --------------------------------------------------------------------------- HTTP API


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.settings import Settings
    from kneo.store import open_store

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json")})
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings=settings, store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    store.close()


@pytest.mark.parametrize("bomb", [b for b in BOMBS if b.yaml], ids=lambda b: b.name)
def test_spec_path_bombs_on_the_api(client: TestClient, tmp_path: Path, bomb: Bomb) -> None:
    (tmp_path / "bomb.yaml").write_text(bomb.yaml())  # type: ignore[misc]
    for route, extra in (("/v1/specs/validate", {}), ("/v1/runs", {"input": "x"})):
        r = client.post(route, json={"spec_path": "bomb.yaml", **extra})
        assert r.status_code in (400, 413), r.text
        assert r.json()["error"] == bomb.code, r.text


@pytest.mark.parametrize("bomb", [b for b in BOMBS if b.json], ids=lambda b: b.name)
def test_request_body_bombs_on_the_api(client: TestClient, bomb: Bomb) -> None:
    body = bomb.json()  # type: ignore[misc]
    for route in ("/v1/runs", "/v1/specs/validate", "/v1/human-tasks/c/resume"):
        r = client.post(route, content=body, headers={"content-type": "application/json"})
        if bomb.code == "E_DOCUMENT_TOO_LARGE":  # the streamed body limit (1 MiB) comes first
            assert (r.status_code, r.json()["error"]) == (413, "payload_too_large"), r.text
        else:
            assert (r.status_code, r.json()["error"]) == (400, bomb.code), r.text


def test_decision_content_bomb_is_an_invalid_decision() -> None:
    from kneo.engine.human import HumanDecision, HumanRequest, validate_decision

    request = HumanRequest(
        request_id="req_1",
        kind="input",
        wait_key="w",
        step_id="s",
        prompt="?",
        input_schema={"type": "object"},
        decisions=("provided",),
    )
    deep = "[" * 10_000 + "]" * 10_000  # within the 20,000-character content limit
    with pytest.raises(KneoError) as caught:
        validate_decision(
            request, HumanDecision(request_id="req_1", decision="provided", content=deep)
        )
    assert caught.value.code == "invalid_human_input"


def test_unterminated_string_full_of_escaped_quotes_is_linear(client: TestClient) -> None:
    """Blanking strings by regex retried at every later quote when one was left open: a 1 MB
    body of ``\\"`` took hours. Now it is one linear pass (the suite's timeout would catch a
    regression) and an ``E_JSON`` / ``400 invalid_request``."""
    from kneo.documents import DocumentError, parse_json

    text = "[" * 70 + '"' + '\\"' * 400_000
    with pytest.raises(DocumentError) as caught:
        parse_json(text, source="body")
    assert caught.value.code == "E_JSON" and "unterminated string" in caught.value.message
    r = client.post("/v1/runs", content=text, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")


# --------------------------------------------------------------------------- one reading


@pytest.mark.parametrize(
    ("text", "path", "lines"),
    [
        ("a: 1\nb: 2\na: 3\n", "a", (1, 3)),
        ("a: 1\n'a': 2\n", "a", (1, 2)),  # quoted or plain: one key
        (
            "p:\n  required_signatures: 2\n  x: 1\n  required_signatures: 1\n",
            "p.required_signatures",
            (2, 4),
        ),
        ("16: a\n0x10: b\n", "16", (1, 2)),  # one integer, two spellings
        ("yes: a\ntrue: b\n", "True", (1, 2)),  # YAML 1.1 booleans
        ("~: a\nnull: b\n", "None", (1, 2)),
        ("l:\n  - {a: 1, a: 2}\n", "l[0].a", (2, 2)),
        ("b: &b {x: 1}\nm:\n  <<: *b\n  <<: *b\n", "m.<<", (3, 4)),  # two merge keys
        ("b: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n", "m.y", (4, 5)),  # beside a merge
    ],
)
def test_yaml_with_a_key_twice_names_both_lines(
    text: str, path: str, lines: tuple[int, int]
) -> None:
    from kneo.documents import DocumentError, parse_yaml

    with pytest.raises(DocumentError) as caught:
        parse_yaml(text, source="doc.yaml")
    error = caught.value
    assert error.code == "E_DUPLICATE_KEY"
    assert (error.details["path"], error.details["first_line"], error.details["line"]) == (
        path,
        *lines,
    )
    assert error.message.startswith(f"doc.yaml:{lines[1]}: {path}: ")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # a merge is the one way to override a key: the mapping's own key wins, as YAML says
        ("b: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", {"x": 3, "y": 2}),
        ("b: &b {x: 1}\nc: &c {x: 2}\nm: {<<: [*b, *c]}\n", {"x": 1}),
        # an anchored mapping that merges, merged again before it is itself built
        ("a:\n  i: &i {<<: {x: 1}, x: 2}\nm:\n  <<: *i\n  x: 3\n", {"x": 3}),
        ("m: {'1': a, 1: b}\n", {"1": "a", 1: "b"}),  # a string and an integer: two keys
    ],
)
def test_yaml_overrides_and_distinct_keys_still_read(text: str, value: dict[Any, Any]) -> None:
    from kneo.documents import parse_yaml

    assert parse_yaml(text, source="doc.yaml")["m"] == value


@pytest.mark.parametrize(
    ("text", "path", "lines"),
    [
        ('{"a": 1, "a": 2}', "a", (1, 1)),
        ('{"a": 1, "\\u0061": 2}', "a", (1, 1)),  # one key, escaped or not
        ('{"x": [1, {"k": {"d": 1,\n"d": 2}}]}', "x[1].k.d", (1, 2)),
        ('[{"a": 1}, {"b": [], "b": {}}]', "[1].b", (1, 1)),
    ],
)
def test_json_with_a_member_twice_names_both_lines(
    text: str, path: str, lines: tuple[int, int]
) -> None:
    from kneo.documents import DocumentError, parse_json

    with pytest.raises(DocumentError) as caught:
        parse_json(text, source="body")
    error = caught.value
    assert error.code == "E_DUPLICATE_KEY" and error.http_status == 400
    assert (error.details["path"], error.details["first_line"], error.details["line"]) == (
        path,
        *lines,
    )


def test_json_members_repeated_across_objects_are_fine_and_a_callers_hook_is_checked() -> None:
    from kneo.documents import DocumentError, parse_json

    assert parse_json('[{"a": 1}, {"a": 2}, {"a": {"a": 3}}]', source="body")[2] == {"a": {"a": 3}}
    with pytest.raises(DocumentError) as caught:
        parse_json('{"a": 1, "a": 2}', source="body", object_pairs_hook=dict)
    assert caught.value.code == "E_DUPLICATE_KEY"
