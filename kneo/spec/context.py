"""The one way every command gets an environment's policy.

CLI, HTTP and controller all call :func:`resolve_environment_policy` so that "which gates
apply in prod" has a single answer. Today it is the project config's policy for the
environment; ``kneo.policy.environment`` extends it with ``environments/<env>.yaml``
(stricter wins). Keep this function small.
"""

from __future__ import annotations

from kneo.spec.project import PolicyEnforcement, ProjectContext


def resolve_environment_policy(context: ProjectContext, env: str) -> PolicyEnforcement | None:
    """The policy enforced in ``env``, or None when nothing is configured for it."""
    from kneo.policy.environment import resolve_for_context  # + environments/<env>.yaml

    return resolve_for_context(context, env).policy_enforcement
