"""What a plan says of a promotion that will roll out: the steps, instead of "activate".

A promotion into an environment whose policy has a ``rollout:`` (:mod:`kneo.policy.rollout`)
does not take every new run at once when something already serves there: the controller
begins a rollout with it (:func:`kneo.controller.rollout_pass.begin_with_promotion`). The
plan (``kneo controller plan``, the pull request's comment: :mod:`kneo.controller.review`)
says so: :func:`with_rollout` adds the steps to the activation's message, and
:func:`rollout_steps` gives them to the review's JSON. A first promotion (nothing active)
takes every run at once, as the controller does. Reconcile layer, pure.
"""

from __future__ import annotations

import dataclasses

from kneo.controller.model import Action, ActionKind, DesiredEnvironment, ObservedEntry

__all__ = ["describe", "rollout_steps", "with_rollout"]


def rollout_steps(
    action: Action, environment: DesiredEnvironment | None, entry: ObservedEntry
) -> list[str] | None:
    """The steps the promotion ``action`` will roll out by (each described), or ``None``
    when it takes every new run at once."""
    policy = environment.policy if environment is not None else None
    rollout = policy.rollout if policy is not None else None
    if rollout is None or action.kind is not ActionKind.ACTIVATE or entry.active is None:
        return None
    if action.target is not None and action.target.digest == entry.active.digest:
        return None  # putting the active digest back: nothing to roll out
    return [step.describe() for step in rollout.steps]


def describe(steps: list[str]) -> str:
    """``rolls out in N steps: a → b → c``."""
    return f"rolls out in {len(steps)} steps: {' → '.join(steps)}"


def with_rollout(
    action: Action, environment: DesiredEnvironment | None, entry: ObservedEntry
) -> Action:
    """``action`` with its rollout's steps in its message, when it rolls out."""
    steps = rollout_steps(action, environment, entry)
    if steps is None:
        return action
    return dataclasses.replace(action, message=f"{action.message}; {describe(steps)}")
