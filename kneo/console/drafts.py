"""Nothing typed is lost: a decision posted after the session expired, or with a CSRF
token that is no longer the session's, keeps what the person typed.

The decision's fields (:func:`draft_fields`: the decision, content, typed input fields, the
chosen option, the request and the form's idempotency key) travel as hidden ``draft.*``
fields of the sign-in form, and after sign-in the task page shows the form filled in again
for one more click (:data:`SessionLost` is what the decision routes raise instead of
``403 csrf_failed`` / a plain redirect to sign in). Nothing is decided on the way: the draft
is only put back in the form, under the new session's CSRF token, and the idempotency key
it keeps makes the final click apply once.

Only a form posted from the console itself gets this (``Sec-Fetch-Site: same-origin``, or
an ``Origin`` naming the console's own host): a cross-site post is still ``403
csrf_failed``, so another site cannot put words in a reviewer's form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from kneo.console.auth import ConsoleAuth, Posted, SignInRequired, Viewer
from kneo.console.forms import FIELD_PREFIX
from kneo.errors import Forbidden

#: Prefix of a draft's fields in the sign-in form.
DRAFT_PREFIX = "draft."
#: What a draft keeps of a posted decision (and ``field.*``: typed input).
_KEPT = ("request_id", "request_ids", "decision", "content", "selected_option", "idempotency_key")
#: Characters a draft may hold in all: more is not a decision form's.
MAX_DRAFT_CHARS = 200_000
#: The pages a decision is typed on (route names).
_PAGES = ("task", "promotion")
SESSION_ENDED = (
    "Your session ended before your answer was sent. Sign in again: your answer is kept, "
    "and the form comes back filled in for you to check and submit."
)
SIGNED_IN_AGAIN = (
    "Signed in again. Your answer is below as you typed it: nothing was decided yet, "
    "check it and submit."
)
TOKEN_CHANGED = (
    "This form was from an earlier sign-in, so it was not sent. Your answer is below as you "
    "typed it: nothing was decided yet, check it and submit."
)


class SessionLost(Exception):
    """A decision arrived without a valid session or with another session's CSRF token,
    from the console's own page: it is kept and put back after sign-in (or at once, for a
    viewer still signed in whose token changed)."""

    def __init__(
        self, draft: dict[str, str], viewer: Viewer | None, back: str, continuation_id: str
    ) -> None:
        super().__init__("session lost")
        self.draft = draft
        self.viewer = viewer
        self.back = back  # the page the form was on: "task" or "promotion"
        self.continuation_id = continuation_id


def same_origin(request: Request) -> bool:
    """Whether the browser says the post came from the console's own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return bool(origin and host and urlsplit(origin).netloc == host)


def draft_fields(posted: Mapping[str, str]) -> dict[str, str]:
    """The decision fields of a posted form (empty when there are none, or too many
    characters to be a decision)."""
    kept = {
        k: v
        for k, v in posted.items()
        if (k in _KEPT or k.startswith(FIELD_PREFIX)) and isinstance(v, str)
    }
    if sum(len(k) + len(v) for k, v in kept.items()) > MAX_DRAFT_CHARS:
        return {}
    return kept if "decision" in kept else {}


def kept_draft(posted: Mapping[str, str]) -> SessionLost | None:
    """The decision a sign-in form carries back (its ``draft.*`` fields, the page and the
    task they were typed on), or ``None``."""
    draft = draft_fields(
        {k.removeprefix(DRAFT_PREFIX): v for k, v in posted.items() if k.startswith(DRAFT_PREFIX)}
    )
    back, cid = posted.get("draft_back"), posted.get("draft_continuation_id")
    if not draft or back not in _PAGES or not cid:
        return None
    return SessionLost(draft, None, str(back), str(cid))


def kept_context(lost: SessionLost) -> dict[str, Any]:
    """What the sign-in page needs to carry ``lost``'s decision through sign-in."""
    return {
        "draft": {DRAFT_PREFIX + k: v for k, v in lost.draft.items()},
        "draft_back": lost.back,
        "draft_continuation_id": lost.continuation_id,
        "notice": SESSION_ENDED,
    }


def kept_form(auth: ConsoleAuth, page: str, back: str) -> Callable[[Request], Awaitable[Posted]]:
    """:meth:`ConsoleAuth.form` for a decision on the ``back`` page (``task``,
    ``promotion``): a failed CSRF check or a lost session on a same-origin post of a
    decision raises :class:`SessionLost` with what was typed, not ``403`` or a redirect."""
    checked = auth.form(page)

    async def dependency(request: Request) -> Posted:
        try:
            return await checked(request)
        except (Forbidden, SignInRequired) as exc:
            if isinstance(exc, Forbidden) and exc.code != "csrf_failed":
                raise
            if not same_origin(request):
                raise
            form = await request.form()  # read once already: Starlette keeps it
            draft = draft_fields({k: v for k, v in form.items() if isinstance(v, str)})
            cid = request.path_params.get("continuation_id")
            if not draft or not isinstance(cid, str):
                raise
            viewer = auth.viewer(request)
            if viewer is not None:  # still signed in: the form again, in its project
                viewer = auth.in_project(request, viewer)
            raise SessionLost(draft, viewer, back, cid) from None

    return dependency
