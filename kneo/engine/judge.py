"""A model judge: one criterion, one transcript, PASS or FAIL (and one sentence why).

One implementation for both of its users: an eval suite's ``judge`` (:mod:`kneo.evals.runner`)
and a rollout analysis' ``judge`` (:mod:`kneo.platform.rollout_judge`). The model is called
through a grant (:class:`~kneo.policy.access.HostAccess`): only where the grant lets runs
reach, with only the secrets it declares, each only where it is bound. A refused model is
refused when the judge is built, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kneo.engine.providers import create_provider_registry
from kneo.engine.providers.base import ChatMessage, Provider
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.models import ModelSpec

__all__ = ["JUDGE_INSTRUCTION", "ModelJudge", "transcript"]

#: What the judge is told; its reply passes when it starts with PASS.
JUDGE_INSTRUCTION = (
    "You grade an AI agent's reply against one criterion. Answer PASS if the reply meets "
    "the criterion, otherwise FAIL, then one sentence why."
)
#: The longest reason kept of a judge's reply.
REASON_CHARS = 200


def transcript(input_text: str, reply: str) -> str:
    """What the judge reads of a run or a case: its input and the agent's reply."""
    return f"Input: {input_text}\nReply: {reply}"


class ModelJudge:
    """Grades criteria with ``model`` under ``grant`` (module docstring): call it with a
    criterion and a :func:`transcript`; ``(passed, reason)``."""

    def __init__(self, model: ModelSpec, grant: HostAccess, provider: Provider) -> None:
        grant.model_call(model, path="judge")  # refuse now: nothing is sent
        self.model = model
        self.grant = grant
        self.provider = provider

    @classmethod
    def build(
        cls,
        model: ModelSpec,
        grant: HostAccess,
        *,
        settings: Settings | None = None,
        secrets: Mapping[str, str] | None = None,
        providers: Callable[[str], Provider] | None = None,
    ) -> ModelJudge:
        """A judge of ``model`` from ``providers`` (a lookup by name), else from the default
        registry with the project's provider ``secrets`` map. The grant is asked first: a
        refused model's provider is not even looked up."""
        grant.model_call(model, path="judge")
        if providers is None:
            registry = create_provider_registry(settings or Settings.from_env(), secrets=secrets)
            providers = registry.get
        return cls(model, grant, providers(model.provider))

    def __call__(self, criterion: str, text: str) -> tuple[bool, str]:
        model, reach = self.grant.model_call(self.model, path="judge")
        reply = self.provider.complete(
            model=model,
            messages=[
                ChatMessage("system", JUDGE_INSTRUCTION),
                ChatMessage("user", f"Criterion: {criterion}\n\n{text}"),
            ],
            tools=[],
            reach=reach,
        )
        said = (reply.text or "").strip()
        return said.upper().startswith("PASS"), said[:REASON_CHARS] or "empty reply"
