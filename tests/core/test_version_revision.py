"""The revision of a Git checkout, read from Git's files: loose, packed, detached, worktree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kneo.version import checkout_revision


def _git(cwd: Path, *argv: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *argv],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_every_layout_git_leaves_names_the_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert checkout_revision(repo) is None  # no commit yet: nothing to name
    (repo / "a").write_text("a")
    _git(repo, "add", "a")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    assert checkout_revision(repo) == first  # a loose ref
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert checkout_revision(repo) == first  # a packed ref
    _git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    (tmp_path / "side" / "b").write_text("b")
    _git(tmp_path / "side", "add", "b")
    _git(tmp_path / "side", "commit", "-qm", "two")
    second = _git(tmp_path / "side", "rev-parse", "HEAD")
    assert checkout_revision(tmp_path / "side") == second != first  # a linked worktree
    assert checkout_revision(repo) == first
    _git(repo, "checkout", "-q", "--detach", second)
    assert checkout_revision(repo) == second  # a detached HEAD
    assert checkout_revision(tmp_path) is None  # not a checkout (a wheel's site-packages)


def test_kneo_build_info_names_the_revision_of_every_install_kind() -> None:
    """Run from this checkout (the editable install's case): the commit checked out; the
    image's build argument wins over it; the wheel's recorded commit is the wheel test's."""
    from kneo.metrics import exposition_registry, render
    from kneo.settings import Settings
    from kneo.version import SOURCE_ROOT

    def revision(env: dict[str, str]) -> str:
        body, _ = render(exposition_registry(None, Settings.from_env(env)))
        [line] = [
            line for line in body.decode().splitlines() if line.startswith("kneo_build_info{")
        ]
        return line.split('revision="')[1].split('"')[0]

    head = checkout_revision(SOURCE_ROOT)
    assert head is not None  # the suite runs from a checkout
    assert revision({}) == head[:12]
    assert revision({"KNEO_SERV_BUILD_REVISION": "0123abcd"}) == "0123abcd"
