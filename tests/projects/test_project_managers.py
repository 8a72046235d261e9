"""One platform manager per project, built on first use on the store's view of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kneo.errors import NotFound
from kneo.platform import create_platform, projects
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store


def test_managers_are_kept_per_project_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({})
    store = open_store(None, settings=settings, state_dir=tmp_path)
    root = create_platform(settings, ProjectContext.discover(cwd=tmp_path), store=store)
    for name in ("team-a", "team-b", "team-c"):
        store.projects.create_project(name)
    monkeypatch.setattr(projects, "MAX_MANAGERS", 2)
    a = root.for_project("team-a")
    assert a is root.for_project("team-a") and a.store.project == "team-a"
    assert root.for_project("default") is root
    root.for_project("team-b")
    root.for_project("team-c")  # past the bound: team-a's, built first, goes
    assert root.for_project("team-a") is not a
    root.for_project("team-c")  # kept: the catalog's archive drops it at once
    root.archive_project("team-c", actor="admin")
    with pytest.raises(NotFound) as refused:
        root.for_project("team-c")
    assert refused.value.code == "project_not_found"
    root.close()
