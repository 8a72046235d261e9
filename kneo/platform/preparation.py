"""Preparing a spec for a run: admit, load, check against environment policy, compile, cache.

:class:`SpecPreparation` raises before any run exists: first the admission gate's rules
(:meth:`~kneo.platform.admission.RunAdmission.admit`, before the spec is loaded), then one
load, the gate's policy check (:meth:`~kneo.platform.admission.RunAdmission.check`) and the
compile. A prepared spec is cached by what it depends on (:func:`prepare_key`: spec file,
environment overlay and policy file stamps, or an inline spec's content digest; a request's
overrides and the stored policy by digest), with the JSON text its runs store in
``specs``; its compiled workflow goes to the driver's cache by ``(spec digest, target)``.
:func:`create_run` turns a prepared spec and an input into a run record in one transaction:
queued for a worker, or started and leased for this process.

Two values carry a run's start through the layers: a :class:`RunRequest` (what the caller asks:
spec, input, target, environment, who) and a :class:`PreparedSpec` (what preparation made of
it: the compiled workflow and what each run stores), so no layer passes an untyped dict or
re-lists the same keywords.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo.engine.state import ExecutionState
from kneo.errors import InvalidRequest, PayloadTooLarge
from kneo.jsontext import content_hash
from kneo.kernel.code import code_record, missing, remember, unchanged
from kneo.lifecycle import RunStatus, transition
from kneo.lrucache import LRUCache
from kneo.names import check_name
from kneo.platform.admission import RunAdmission, environment_files, file_stamp
from kneo.platform.driver import RunDriver
from kneo.policy.access import Origin
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.extensions import SkillsOverlay
from kneo.spec.loader import (
    deep_merge,
    load_spec,
    load_spec_data,
    offline_environments,
    overlay_path,
)
from kneo.spec.models import Spec
from kneo.spec.pinning import pinned_code
from kneo.spec.project import ProjectContext
from kneo.spec.skills import apply_skills_overlay
from kneo.store import RunRecord
from kneo.store.runs.steps import json_text

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction
    from kneo.store.wire.executor import HeldConnection


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """A run as a caller asks for it: exactly one of ``spec_path`` and ``spec`` (a model or a
    document; ``overrides`` are merged in and checked by the admission gate), the input, the
    target and environment, ``metadata`` stored with the run and the ``actor`` audited.
    ``timeout_seconds``: a queued run's deadline (``deadline_at``); a run executed at once
    takes none."""

    input_text: str
    spec_path: str | Path | None = None
    spec: Spec | Mapping[str, Any] | None = None
    target: str = "workflow"
    environment: str | None = None
    overrides: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    actor: str | None = None
    timeout_seconds: float | None = None
    #: ``inline``: a document sent to the API, which may name only the functions the project
    #: declares by name (:class:`~kneo.policy.access.HostAccess`)
    origin: Origin = "spec"
    #: the run's skills overlay: declared skills switched on or off for its agents, applied
    #: before the spec is checked (:func:`~kneo.spec.skills.apply_skills_overlay`)
    skills: SkillsOverlay | None = None
    #: the session the caller groups the run in (listed and chained: ``/v1/sessions``)
    session_id: str | None = None
    #: the run's id, chosen before it exists (a child run's: its parent recorded it first,
    #: so a second start of the same child is refused by the key, never run twice)
    run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PreparedSpec:
    """A spec admitted, checked and compiled for runs (cached, shared by every run of it):
    the workflow, and what each run stores of it."""

    workflow: CompiledWorkflow
    #: the spec document each run stores, and its JSON text (the ``specs`` row), encoded
    #: once per prepared spec rather than once per run
    data: Mapping[str, Any]
    spec_text: str | None = None
    digest: str
    target: str
    environment: str | None
    base_dir: str | None = None
    spec_path: str | None = None
    #: the run columns that pin a bundle run to its revision (none for a spec run)
    bundle_fields: Mapping[str, Any] = field(default_factory=dict)
    #: where a provider error can point: overlays of this file that run offline
    offline_environments: Sequence[str] | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class SpecPreparation:
    """Admits, loads, checks and compiles specs for new runs, with the prepared-spec cache."""

    compiler: SpecCompiler
    project: ProjectContext | None
    admission: RunAdmission
    driver: RunDriver
    cache_entries: InitVar[int]
    #: checks a spec before its run exists (the providers' keys it needs; see
    #: :func:`kneo.engine.providers.require_spec_secrets`), on every prepare, cached or not
    check_spec: Callable[[Spec], None] | None = None
    #: prepared specs by what they depend on (see prepare_key)
    prepared: LRUCache[tuple[Any, ...], PreparedSpec] = field(init=False)

    def __post_init__(self, cache_entries: int) -> None:
        self.prepared = LRUCache(cache_entries)

    def prepare(self, request: RunRequest) -> PreparedSpec:
        """:meth:`_prepare`, then :attr:`check_spec` on the spec (cached or not): both raise
        before any run exists."""
        prepared = self._prepare(request)
        if self.check_spec is not None:
            self.check_spec(prepared.workflow.spec)
        return prepared

    def _prepare(self, request: RunRequest) -> PreparedSpec:
        """Admit (in the environment the run is recorded under: the one requested, else the
        project's default), load (``overrides`` merged in; an environment's overlay only when
        one is requested), check against the environment's policy and compile the request's
        spec; raises before any run exists. The spec is loaded once, and not at all when a
        prepared spec for the same files, overrides and stored policy is cached."""
        spec_path, spec, environment = request.spec_path, request.spec, request.environment
        target, overrides = request.target, request.overrides
        skills = request.skills if request.skills is not None and not request.skills.empty else None
        if environment is not None:
            check_name(environment, kind="environment")
        if (spec_path is None) == (spec is None):
            raise InvalidRequest("give exactly one of spec_path or spec", field="spec_path")
        admitted = self.admission.admit(spec_path=spec_path, spec=spec, environment=environment)
        pinned = admitted.bundle
        key = self._cache_key(request, skills, admitted.policy_key) if pinned is None else None
        cached = self.prepared.get(key) if key is not None else None
        if cached is not None and (
            pinned is not None or unchanged(cached.workflow.code, cached.workflow.code_root)
        ):
            return cached
        model, data, base_dir, source, offline = self._load(spec_path, spec, environment, overrides)
        code = pinned_code(model)
        if code is not None and missing(code):  # a signed spec's files, from the store
            remember(self.driver.store.code.get(missing(code)))
        if skills is not None:
            config = self.project.config if self.project is not None else None
            data = apply_skills_overlay(data, skills, config)
            model = load_spec_data(data, source=source)
        report = self.admission.check(
            model,
            environment=admitted.environment,
            base_dir=base_dir,
            source=source,
            policy=admitted.policy,
            origin="bundle" if pinned is not None else request.origin,
            published=admitted.published,
        )
        workflow = self.compiler.compile(
            model,
            target=target,  # type: ignore[arg-type]
            # an inline spec's refs are the project's, found where admission judged them
            base_dir=base_dir or (self.project.root if self.project is not None else None),
            diagnostics=report.diagnostics,
            source=source,
        )
        digest = pinned.digest if pinned is not None else content_hash(data)
        self.driver.remember(digest, target, workflow)
        prepared = PreparedSpec(
            workflow=workflow,
            data=data,
            spec_text=json_text(data) if data else None,
            digest=digest,
            target=target,
            environment=admitted.environment,
            base_dir=str(base_dir.resolve()) if base_dir else None,
            spec_path=shown_path(spec_path, self.project),
            bundle_fields=pinned.run_fields() if pinned is not None else {},
            offline_environments=offline or None,
        )
        if key is not None:
            self.prepared.put(key, prepared)
        return prepared

    def _cache_key(
        self, request: RunRequest, skills: SkillsOverlay | None, policy_key: str | None
    ) -> tuple[Any, ...] | None:
        """Where the prepared spec of an unpinned ``request`` is cached: its files,
        overrides, skills, environment, the stored policy, and an inline spec's origin (it is
        checked by a narrower grant). ``None``: not cached (:func:`prepare_key`)."""
        overrides = request.overrides
        key = prepare_key(
            self.project,
            request.spec_path,
            request.spec,
            request.target,
            request.environment,
            overrides={"overrides": overrides, "skills": skills.model_dump()}
            if skills is not None
            else overrides,
            policy_key=policy_key,
        )
        if key is None or request.origin == "spec":
            return key
        return (*key, request.origin)

    def _load(
        self,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        environment: str | None,
        overrides: Mapping[str, Any] | None,
    ) -> tuple[Spec, dict[str, Any], Path | None, str, list[str]]:
        """``(model, document, base_dir, source, offline environments)`` of a spec file (its
        environment overlay and the project's defaults applied) or an inline spec, with
        ``overrides`` merged in."""
        config = self.project.config if self.project is not None else None
        if spec_path is not None:
            source = str(spec_path)
            declared = self.project.declared_environments() if self.project else None
            loaded = load_spec(spec_path, env=environment, project=config, declared=declared)
            offline = offline_environments(loaded, config)
            if not overrides:
                return loaded.spec, loaded.data, loaded.base_dir, source, offline
            data = deep_merge(loaded.data, overrides)
            return load_spec_data(data, source=source), data, loaded.base_dir, source, offline
        if isinstance(spec, Spec) and not overrides:
            model = spec
        else:
            document = (
                spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
                if isinstance(spec, Spec)
                else dict(spec or {})
            )
            if overrides:
                document = deep_merge(document, overrides)
            model = load_spec_data(document, project=config)
        data = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        # a model built in code leaves ``version`` unset; the stored document must load again
        data.setdefault("version", model.version)
        return model, data, None, "<inline>", []


def shown_path(spec_path: str | Path | None, project: ProjectContext | None) -> str | None:
    """A spec file's path as runs record and show it: relative to the project root when it
    lies under it (the server's own layout is nobody's business), else its name."""
    if spec_path is None:
        return None
    path = Path(spec_path)
    if not path.is_absolute():
        return str(spec_path)
    if project is not None:
        try:
            return str(path.resolve().relative_to(project.root.resolve()))
        except ValueError:
            pass
    return path.name


def prepare_key(
    project: ProjectContext | None,
    spec_path: str | Path | None,
    spec: Spec | Mapping[str, Any] | None,
    target: str,
    environment: str | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    policy_key: str | None = None,
) -> tuple[Any, ...] | None:
    """What a prepared (loaded, checked, compiled) spec depends on: the spec file, its
    environment overlay and the environment's policy file, each by :func:`file_stamp` —
    or an inline spec's content digest — plus target, environment, the digest of a request's
    ``overrides`` and of the stored policy it was checked against (``policy_key``). ``None``:
    do not cache (a file is missing; the slow path reports it).

    A path is keyed as given (plus the working directory when relative), not resolved:
    resolving walks every directory of the path on every run, and the stamp's inode already
    tells two files apart, whichever symlinks lead to them."""
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
    extra = (content_hash(overrides) if overrides else None, policy_key)
    return (source, target, environment, tuple(stamps), extra)


def _check_input(input_text: object, limit: int) -> None:
    """A run's input: text of at most ``limit`` characters."""
    if not isinstance(input_text, str):
        raise InvalidRequest("input must be text", field="input")
    if len(input_text) > limit:
        raise PayloadTooLarge(
            f"input is longer than {limit} characters (KNEO_SERV_MAX_INPUT_CHARS)",
            field="input",
        )


#: what Kneo records in a run's metadata itself: a caller's ``metadata`` may not set it
PLATFORM_METADATA = ("base_dir", "spec_path", "offline_environments", "code")


def _run_metadata(prepared: PreparedSpec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's ``metadata`` and what Kneo records beside it: where the spec's refs
    resolve and the code the run is pinned to (a caller naming one is refused)."""
    taken = sorted(set(given or {}) & set(PLATFORM_METADATA))
    if taken:
        raise InvalidRequest(
            f"metadata.{taken[0]} is recorded by Kneo itself; choose another key",
            field=f"metadata.{taken[0]}",
        )
    offline = prepared.offline_environments
    return {
        **dict(given or {}),
        "base_dir": prepared.base_dir,
        "spec_path": prepared.spec_path,
        "offline_environments": list(offline) if offline is not None else None,
        "code": code_record(prepared.workflow.code),
    }


def _creation_records(
    prepared: PreparedSpec, *, started_by: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``run.created`` audit payload and the run's first events (``run_started`` too
    when ``started_by``, the owner, runs it at once)."""
    workflow = prepared.workflow
    audit = {
        "target": prepared.target,
        "workflow_name": workflow.name,
        "workflow_kind": workflow.family,
        "environment": prepared.environment,
        "spec_path": prepared.spec_path,
    }
    events = [
        {
            "event_type": "run_created",
            "payload": {"workflow_kind": workflow.family, "target": prepared.target},
        }
    ]
    if started_by is not None:
        events.append({"event_type": "run_started", "payload": {"owner": started_by}})
    return audit, events


def create_run(
    store: Store,
    prepared: PreparedSpec,
    input_text: str,
    *,
    start: bool,
    lease: tuple[str, float],
    max_input_chars: int,
    deadline_at: Any = None,
    metadata: Mapping[str, Any] | None = None,
    actor: str | None = None,
    decisions: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    slot: Callable[[Transaction], None] | None = None,
    connection: HeldConnection | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """The run record of ``prepared`` with ``input_text`` (in ``session_id``): queued, or
    (``start``) running and leased to ``lease`` (``(owner, seconds)``: this process runs it).
    ``slot``: what a started run takes first in the same transaction (the project's
    ``max_running_runs``, counted under its row lock, so two starts never take one slot);
    ``connection``: the one to write on (kept for the run's steps)."""
    _check_input(input_text, max_input_chars)
    workflow = prepared.workflow
    agent = workflow.steps[0].agent if workflow.target == "agent" else workflow.spec.agent
    meta = _run_metadata(prepared, metadata)
    # Started: created ``running`` at once (the transition is checked, not written twice).
    status = transition(RunStatus.QUEUED, RunStatus.RUNNING) if start else RunStatus.QUEUED
    # Everything that needs no database is built before the transaction opens: on SQLite it
    # holds the database's one write lock, which the other request threads wait for.
    state = dict(ExecutionState.initial(input_text), decisions=dict(decisions or {}))
    target = prepared.target
    audit, events = _creation_records(prepared, started_by=lease[0] if start else None)
    with store.transaction(connection) as tx:
        if start and slot is not None:
            slot(tx)
        run = tx.create_run(
            run_id=run_id,
            target=target,
            input_text=input_text,
            status=status,
            started_at=tx.now if start else None,
            workflow_name=workflow.name,
            workflow_kind=workflow.family,
            agent_name=agent.name if agent else None,
            environment=prepared.environment,
            spec=prepared.data,
            spec_text=prepared.spec_text,
            spec_digest=prepared.digest,
            **prepared.bundle_fields,
            state=state,
            deadline_at=deadline_at,
            metadata={k: v for k, v in meta.items() if v is not None},
            events=events,
            # created, started and leased: this process executes it
            lease=lease if start else None, session_id=session_id,
        )  # fmt: skip
        tx.add_audit("run.created", actor=actor, run_id=run.run_id, payload=audit)
        if not start:
            tx.enqueue(run.run_id)
        run = tx.current(run)
    return run
