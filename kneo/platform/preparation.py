"""Preparing a spec for a run: admit, load, check against environment policy, compile, cache.

:class:`SpecPreparation` raises before any run exists: first the admission gate
(:class:`~kneo.platform.admission.RunAdmission`), then load, check and compile. A prepared
spec is cached by what it depends on (:func:`prepare_key`: spec file, environment overlay and
policy file stamps, or an inline spec's content digest), with the JSON text its runs store in
``specs``; its compiled workflow goes to the driver's cache by ``(spec digest, target)``.
:func:`create_run` turns a prepared spec and an input into a run record in one transaction:
queued for a worker, or started and leased for this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneo.engine.lifecycle import RunStatus, transition
from kneo.engine.state import ExecutionState
from kneo.errors import InvalidRequest, PayloadTooLarge
from kneo.jsontext import content_hash
from kneo.lrucache import LRUCache
from kneo.names import check_name
from kneo.platform.admission import RunAdmission, environment_files, file_stamp
from kneo.platform.driver import RunDriver
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec, load_spec_data
from kneo.spec.models import Spec
from kneo.spec.project import ProjectContext
from kneo.store import RunRecord, Store
from kneo.store.steps import json_text


class SpecPreparation:
    """Admits, loads, checks and compiles specs for new runs, with the prepared-spec cache."""

    def __init__(
        self,
        *,
        compiler: SpecCompiler,
        project: ProjectContext | None,
        admission: RunAdmission,
        driver: RunDriver,
        cache_entries: int,
    ) -> None:
        self.compiler = compiler
        self.project = project
        self.admission = admission
        self.driver = driver
        #: prepared specs by what they depend on (see prepare_key)
        self.prepared: LRUCache[tuple[Any, ...], dict[str, Any]] = LRUCache(cache_entries)

    def prepare(
        self,
        *,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        target: str,
        environment: str | None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Admit, load, check (with environment policy) and compile; raises before any run
        exists. ``overrides`` are merged into the spec (the admitted document is inline)."""
        from kneo.policy.check import check_spec

        if environment is not None:
            check_name(environment, kind="environment")
        if (spec_path is None) == (spec is None):
            raise InvalidRequest("give exactly one of spec_path or spec", field="spec_path")
        admitted = self.admission.admit(
            spec_path=spec_path, spec=spec, environment=environment, overrides=overrides
        )
        pinned, spec_path, spec = admitted.bundle, admitted.spec_path, admitted.spec
        project = self.project
        key = prepare_key(project, spec_path, spec, target, environment) if pinned is None else None
        cached = self.prepared.get(key) if key is not None else None
        if cached is not None:
            return dict(cached)
        project_config = project.config if project is not None else None
        base_dir: Path | None
        if spec_path is not None:
            loaded = load_spec(spec_path, env=environment, project=project_config)
            model, data, base_dir, source = (
                loaded.spec,
                loaded.data,
                loaded.base_dir,
                str(spec_path),
            )
        else:
            model = (
                spec
                if isinstance(spec, Spec)
                else load_spec_data(dict(spec or {}), project=project_config)
            )
            data = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
            base_dir, source = None, "<inline>"
        report = check_spec(
            model,
            env=environment,
            context=project,
            tool_registry=self.compiler.tool_registry,
            runtime_registry=self.compiler.runtime_registry,
            base_dir=base_dir,
        )
        workflow = self.compiler.compile(
            model,
            target=target,  # type: ignore[arg-type]
            base_dir=base_dir,
            diagnostics=report.diagnostics,
            source=source,
        )
        digest = pinned.digest if pinned is not None else content_hash(data)
        self.driver.remember(digest, target, workflow)
        prepared = {
            "workflow": workflow,
            "data": data,
            # the ``specs`` row's text, encoded once per prepared spec rather than once per run
            "spec_text": json_text(data) if data else None,
            "digest": digest,
            "target": target,
            "bundle_fields": pinned.run_fields() if pinned is not None else {},
            "base_dir": str(base_dir.resolve()) if base_dir else None,
            "spec_path": str(spec_path) if spec_path else None,
            "environment": report.environment or environment,
        }
        if key is not None:
            self.prepared.put(key, prepared)
        return dict(prepared)


def prepare_key(
    project: ProjectContext | None,
    spec_path: str | Path | None,
    spec: Spec | Mapping[str, Any] | None,
    target: str,
    environment: str | None,
) -> tuple[Any, ...] | None:
    """What a prepared (loaded, checked, compiled) spec depends on: the spec file, its
    environment overlay and the environment's policy file, each by :func:`file_stamp` —
    or an inline spec's content digest — plus target and environment. ``None``: do not
    cache (a file is missing; the slow path reports it).

    A path is keyed as given (plus the working directory when relative), not resolved:
    resolving walks every directory of the path on every run, and the stamp's inode already
    tells two files apart, whichever symlinks lead to them."""
    from kneo.spec.loader import overlay_path

    env = environment or (project.env if project is not None else None)
    files: list[str | Path] = []
    if spec_path is not None:
        text = str(spec_path)
        files.append(text)
        if environment is not None:
            config = project.config if project is not None else None
            files.append(overlay_path(Path(text), environment, config))
        source: Any = (text, None if os.path.isabs(text) else os.getcwd())
    elif isinstance(spec, Mapping):
        source = content_hash(spec)
    else:
        return None  # a Spec model: its content is not cheap to key
    if env is not None and project is not None:
        files += environment_files(project.root, env)
    stamps = []
    for index, file in enumerate(files):
        stamp = file_stamp(file)
        if stamp is False or (stamp is None and index == 0 and spec_path is not None):
            return None
        stamps.append(stamp)
    return (source, target, environment, tuple(stamps))


def create_run(
    store: Store,
    prepared: Mapping[str, Any],
    input_text: str,
    *,
    start: bool,
    lease: tuple[str, float],
    max_input_chars: int,
    deadline_at: Any = None,
    metadata: Mapping[str, Any] | None = None,
    actor: str | None = None,
    decisions: Mapping[str, Any] | None = None,
) -> RunRecord:
    """The run record of ``prepared`` with ``input_text``: queued, or (``start``) running and
    leased to ``lease`` (``(owner, seconds)``: this process executes it)."""
    if not isinstance(input_text, str):
        raise InvalidRequest("input must be text", field="input")
    limit = max_input_chars
    if len(input_text) > limit:
        raise PayloadTooLarge(
            f"input is longer than {limit} characters (KNEO_SERV_MAX_INPUT_CHARS)",
            field="input",
        )
    workflow: CompiledWorkflow = prepared["workflow"]
    agent = workflow.steps[0].agent if workflow.target == "agent" else workflow.spec.agent
    meta = {
        "base_dir": prepared["base_dir"],
        "spec_path": prepared["spec_path"],
        **dict(metadata or {}),
    }
    # Started: created ``running`` at once (the transition is checked, not written twice).
    status = transition(RunStatus.QUEUED, RunStatus.RUNNING) if start else RunStatus.QUEUED
    # Everything that needs no database is built before the transaction opens: on SQLite it
    # holds the database's one write lock, which the other request threads wait for.
    state = dict(ExecutionState.initial(input_text), decisions=dict(decisions or {}))
    target = prepared["target"]
    audit = {
        "target": target,
        "workflow_name": workflow.name,
        "workflow_kind": workflow.family,
        "environment": prepared["environment"],
        "spec_path": prepared["spec_path"],
    }
    events = [
        {
            "event_type": "run_created",
            "payload": {"workflow_kind": workflow.family, "target": target},
        }
    ]
    if start:
        events.append({"event_type": "run_started", "payload": {"owner": lease[0]}})
    with store.transaction() as tx:
        run = tx.create_run(
            target=target,
            input_text=input_text,
            status=status,
            started_at=tx.now if start else None,
            workflow_name=workflow.name,
            workflow_kind=workflow.family,
            agent_name=agent.name if agent else None,
            environment=prepared["environment"],
            spec=prepared["data"],
            spec_text=prepared.get("spec_text"),
            spec_digest=prepared["digest"],
            **prepared.get("bundle_fields", {}),
            state=state,
            deadline_at=deadline_at,
            metadata={k: v for k, v in meta.items() if v is not None},
            events=events,
            # created, started and leased: this process executes it
            lease=lease if start else None,
        )
        tx.add_audit("run.created", actor=actor, run_id=run.run_id, payload=audit)
        if not start:
            tx.enqueue(run.run_id)
        run = tx.current(run)
    return run
