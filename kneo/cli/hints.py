"""What to do next, printed under a CLI error as ``hint: ...``.

The error's message says what went wrong and, where the server or core knows, what fixes it;
a hint adds what only the command line knows: which flag, profile or command to reach for.
Pure: an error in, a line (or ``None``) out. Every code is explained in
``docs/troubleshooting.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from kneo.errors import KneoError

Hint = Callable[[KneoError], "str | None"]


def _forbidden(error: KneoError) -> str | None:
    scope = error.details.get("required_scope")
    if not scope:
        return None
    roles = [r for r in error.details.get("roles") or () if isinstance(r, str)]
    role = roles[0] if roles else "role"
    article = "an" if role[0] in "aeiou" else "a"
    return (
        f"this key lacks {scope}; send the command with {article} {role} key: "
        f"'kneo config profile set {role} --service-url URL --api-key KEY --no-activate', "
        f"then add '--profile {role}' (docs/quickstart.md, 'Run as a service')"
    )


def _unauthorized(error: KneoError) -> str | None:
    return (
        "give the service an API key: '--profile NAME' (kneo config profile set NAME "
        "--service-url URL --api-key KEY) or KNEO_SERV_API_KEY"
    )


def _unreachable(error: KneoError) -> str | None:
    return (
        "is the service running ('kneo service serve')? Check --service-url, "
        "'kneo config profile list' (the active profile) and service.default_url in "
        ".kneo/config.yaml; without any of them, commands run locally"
    )


def _throttled(error: KneoError) -> str | None:
    wait = error.details.get("retry_after")
    return f"too many wrong keys from this client: wait {wait} s, then use the right key"


def _tool_factory(error: KneoError) -> str | None:
    return (
        "fix the module or the name in tool_registry (.kneo/config.yaml), or pass "
        "--tools module:factory; 'kneo runs'/'kneo human list' still work meanwhile "
        "(docs/tutorial_custom_tool.md)"
    )


HINTS: dict[str, Hint] = {
    "E_TOOL_FACTORY": _tool_factory,
    "forbidden": _forbidden,
    "unauthorized": _unauthorized,
    "service_unavailable": _unreachable,
    "too_many_requests": _throttled,
}


def hint_for(error: KneoError) -> str | None:
    """The hint for ``error``: its own ``hint`` detail, else one from :data:`HINTS`."""
    own = error.details.get("hint")
    if isinstance(own, str) and own:
        return own
    make = HINTS.get(error.code)
    return make(error) if make is not None else None
