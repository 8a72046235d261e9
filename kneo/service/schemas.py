"""Request bodies of the HTTP API. Strict: unknown fields are a 422, never ignored.

Size limits that depend on settings (input characters, inline spec bytes, ...) are checked
by :func:`check_limits` in the route layer, because they come from ``KNEO_SERV_MAX_*``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from kneo.errors import PayloadTooLarge, ValidationFailed
from kneo.setting_groups import Limits
from kneo.spec.extensions import SkillsOverlay

Decision = Literal["approved", "rejected", "edited", "selected", "provided"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpecSource(_Strict):
    """Which spec: a path on the server, an inline spec document, or a registry bundle."""

    spec_path: str | None = Field(None, description="Path of a YAML spec, on the server.")
    spec: dict[str, Any] | None = Field(None, description="An inline spec document.")
    environment: str | None = Field(None, description="Environment: overlays and policy.")
    overrides: dict[str, Any] | None = Field(
        None, description="Deep-merged into the spec after overlays."
    )

    def source_count(self) -> int:
        return sum(x is not None for x in (self.spec_path, self.spec))


class SpecRequest(SpecSource):
    """Body of ``/v1/specs/validate|compile|explain|policy-report``."""

    @model_validator(mode="after")
    def _one_source(self) -> SpecRequest:
        if self.source_count() != 1:
            raise ValueError("give exactly one of spec_path or spec")
        return self


class CompileRequest(SpecRequest):
    """Body of ``/v1/specs/compile``."""

    strict: bool = Field(
        True,
        description="true: an invalid spec is 400 with its diagnostics; false: 200 with "
        "ok=false and the diagnostics (an editor's preview).",
    )


class CreateRunRequest(SpecSource):
    """Body of ``POST /v1/runs`` and ``POST /v1/specs/run``."""

    input: str = Field(..., description="Input text for the run.")
    bundle: str | None = Field(
        None, description="Run the active revision of this bundle in `environment`."
    )
    target: Literal["workflow", "agent"] = "workflow"
    async_mode: bool = Field(False, description="Enqueue for a worker and return at once.")
    timeout_seconds: float | None = Field(None, gt=0, description="Run-level deadline.")
    metadata: dict[str, Any] | None = None
    skills: SkillsOverlay | None = Field(
        None,
        description="Switch declared skills on (`add`) or off (`remove`) for the run's agents "
        "(`agents`: only these); recorded on the run as `metadata.skills_overlay`.",
    )
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
        description="Group the run in this session: listed by `GET /v1/runs?session_id=` "
        "and chained in order by `GET /v1/sessions/{session_id}`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CreateRunRequest:
        sources = self.source_count() + (self.bundle is not None)
        if sources != 1:
            raise ValueError("give exactly one of spec_path, spec or bundle")
        if self.bundle is not None and not self.environment:
            raise ValueError("a bundle run needs an environment")
        return self


class ResumeRequest(_Strict):
    """Body of ``POST /v1/human-tasks/{continuation_id}/resume``."""

    request_id: str = Field(..., min_length=1, max_length=200)
    decision: Decision
    content: str | None = None
    selected_option: str | None = None
    metadata: dict[str, Any] | None = None


class DecisionItem(_Strict):
    """One decision of ``POST /v1/human-tasks/{continuation_id}/decisions``."""

    request_id: str = Field(..., min_length=1, max_length=200)
    decision: Decision
    content: str | None = None
    selected_option: str | None = None


class DecisionsRequest(_Strict):
    """Body of ``POST /v1/human-tasks/{continuation_id}/decisions``: several requests of one
    task decided together (all written, or none)."""

    decisions: list[DecisionItem] = Field(..., min_length=1, max_length=100)
    #: stored with each decision, as ``metadata`` of a resume is
    metadata: dict[str, Any] | None = None


class ContinueRequest(_Strict):
    """Body of ``POST /v1/runs/{run_id}/continue`` (optional)."""

    metadata: dict[str, Any] | None = None
    #: Move the run to other code first, on purpose and audited: a revision number of its
    #: bundle, ``active`` (the revision serving), or ``current`` (a spec run: its project
    #: files as they are now). A paused run stays paused, on that code.
    to_revision: Annotated[StrictInt, Field(ge=1)] | Literal["active", "current"] | None = None


def _json_size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8"))


def check_limits(body: BaseModel, limits: Limits) -> None:
    """Apply the ``KNEO_SERV_MAX_*`` field limits to a parsed request body."""
    text = getattr(body, "input", None)
    if isinstance(text, str) and len(text) > limits.max_input_chars:
        raise ValidationFailed(
            f"input is {len(text)} characters; the limit is {limits.max_input_chars} "
            "(KNEO_SERV_MAX_INPUT_CHARS)",
            field="input",
        )
    content = getattr(body, "content", None)
    if isinstance(content, str) and len(content) > limits.max_human_content_chars:
        raise ValidationFailed(
            f"content is {len(content)} characters; the limit is "
            f"{limits.max_human_content_chars} (KNEO_SERV_MAX_HUMAN_CONTENT_CHARS)",
            field="content",
        )
    path = getattr(body, "spec_path", None)
    if isinstance(path, str) and len(path) > limits.max_path_chars:
        raise ValidationFailed(
            f"spec_path exceeds {limits.max_path_chars} characters (KNEO_SERV_MAX_PATH_CHARS)",
            field="spec_path",
        )
    for name, limit, variable in (
        ("spec", limits.max_inline_spec_bytes, "KNEO_SERV_MAX_INLINE_SPEC_BYTES"),
        ("overrides", limits.max_overrides_bytes, "KNEO_SERV_MAX_OVERRIDES_BYTES"),
        ("metadata", limits.max_metadata_bytes, "KNEO_SERV_MAX_METADATA_BYTES"),
    ):
        value = getattr(body, name, None)
        if value is not None and _json_size(value) > limit:
            raise PayloadTooLarge(
                f"{name} exceeds {limit} bytes ({variable})", field=name, limit_bytes=limit
            )


class RollbackRequest(_Strict):
    """Body of ``POST /v1/registry/bundles/{bundle}/{environment}/rollback``."""

    to: int = Field(..., ge=1, le=2**31 - 1, description="The earlier revision to restore.")
    reason: str | None = Field(None, max_length=2000)


class ReasonRequest(_Strict):
    """Body of the pin and suspend operations (optional)."""

    reason: str | None = Field(None, max_length=2000)


class BlockRequest(_Strict):
    """Body of ``POST /v1/registry/blocked-digests``."""

    digest: str = Field(..., max_length=128, description="sha256:<64 hex digits>")
    reason: str = Field(..., min_length=1, max_length=2000)


class CreateProjectRequest(_Strict):
    """``POST /v1/projects``: a project and its definition (a project config document, the
    schema of ``.kneo/config.yaml``; none: no environments, secrets or servers of its own)."""

    name: str = Field(..., min_length=1, max_length=64)
    definition: dict[str, Any] | None = None


class ProjectDefinitionRequest(_Strict):
    """``PUT /v1/projects/{project}``: the project's new definition (replaces the old)."""

    definition: dict[str, Any] | None


class PromoteRolloutRequest(_Strict):
    """Body of ``POST /v1/rollouts/{rollout_id}/promote`` (optional)."""

    full: bool = Field(
        False, description="true: to 100 % at once; false: past the step it stands at."
    )


class AbortRolloutRequest(_Strict):
    """Body of ``POST /v1/rollouts/{rollout_id}/abort``: why (audited with the decision)."""

    reason: str = Field(..., min_length=1, max_length=2000)
