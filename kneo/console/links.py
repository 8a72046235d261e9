"""``/decide/{token}``: a decision from a notification's signed link
(:mod:`kneo.platform.decision_links`), without a console session.

``GET`` shows the request and the choice (a link preview or a mail scanner that fetches it
decides nothing); ``POST`` decides as the link's recipient, in the groups the people
directory lists them in, who must still hold ``human:write`` in the project of the link's
task (an API key of that name, or a person the role map names by ``user:``, one of those
groups or ``*``: :func:`kneo.service.deciders.check_decider`). A recipient whose right comes
from their identity provider's groups (which a link cannot know) decides the same way as in
the console: signed in to the console as the link's recipient, their session's groups count
(:func:`_signed_in_as`; the session cookie is ``SameSite=Strict``, so another site cannot
post with it). The link's token names that project; the request is read and decided there
and nowhere else. A request already decided, or a link past its lifetime, gets a page that
says so (by whom and when). The page shows what is decided: the workflow, environment,
step, kind, expiry and the request's own context, and a link to the task in the console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth
from kneo.engine.human import Decision
from kneo.errors import Conflict, Forbidden, KneoError, NotFound
from kneo.people import Identity, acting, names_of
from kneo.platform.deadlines import swept_late
from kneo.platform.decision_links import LinkClaim
from kneo.service.deciders import check_decider, people_of
from kneo.service.dependencies import current_manager

if TYPE_CHECKING:
    from kneo.console.view import Render
    from kneo.platform.recipients import People


def add_link_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """The decision link's confirmation page and its decision (404 while links are off)."""

    def page(request: Request, token: str, context: dict[str, Any], status: int = 200) -> Response:
        shown = {"viewer": None, "csrf": None, "token": token, **context}
        return render(request, "decision_link.html", shown, status_code=status)

    @router.get("/decide/{token}", name="decision_link")
    def confirm(request: Request, token: str) -> Response:
        try:
            claim, _, entry = _claim_and_entry(auth, token)
        except KneoError as exc:
            return page(request, token, {"error": exc.message}, _status(exc))
        return page(request, token, {"claim": claim, "entry": entry})

    @router.post("/decide/{token}", name="decision_link_decide")
    def decide(request: Request, token: str, decision: str = Form("")) -> Response:
        try:
            claim, manager, entry = _claim_and_entry(auth, token)
            if decision not in ("approved", "rejected"):
                return page(
                    request,
                    token,
                    {"claim": claim, "entry": entry, "error": "Choose approve or reject."},
                    400,
                )
            project = str(manager.store.project)  # the task's: checked and decided there only
            acting(_decider(auth, request, claim, project))
            manager.resume(
                claim.continuation_id, Decision(claim.request_id, decision), actor=claim.recipient
            )
        except Conflict as exc:
            try:
                shown = {"entry": _claim_and_entry(auth, token)[2], "error": exc.message}
            except KneoError:  # the task is gone (its timeout deleted it)
                shown = {"error": exc.message}
            return page(request, token, shown, 409)
        except KneoError as exc:
            return page(request, token, {"error": exc.message}, _status(exc))
        return page(request, token, {"done": decision, "claim": claim, "entry": entry})


def _claim_and_entry(auth: ConsoleAuth, token: str) -> tuple[LinkClaim, Any, dict[str, Any]]:
    """The link's claim, the manager of its project and the request it decides (with
    ``task``: the task's workflow, environment and console path, for context)."""
    if auth.links is None:
        raise NotFound("Decision links are off")
    claim = auth.links.read(token)
    manager = _manager_of(auth, claim)
    try:
        task = manager.get_human_task(claim.continuation_id, show_personal=True)
    except NotFound:  # its timeout deleted it: too late, not "never existed"
        late = swept_late(manager.store, claim.continuation_id, [claim.request_id])
        if late is not None:
            raise late from None
        raise
    entry = next(
        (r for r in task.get("requests", []) if r.get("request_id") == claim.request_id),
        None,
    )
    if entry is None:
        raise NotFound("The request of this link no longer exists")
    about = {k: task.get(k) for k in ("workflow_name", "environment", "workflow_kind")}
    return claim, manager, {**entry, "task": about}


def _decider(auth: ConsoleAuth, request: Request, claim: LinkClaim, project: str) -> Identity:
    """Who decides by the link in ``project``: its recipient when they hold the right by key,
    role map or people directory, else the console session signed in as them."""
    people = people_of(auth.parent, project)
    try:
        return check_decider(
            auth.authenticator, _recipient(claim.recipient), people, project=project
        )
    except Forbidden:  # their right may come from their provider's groups
        return _signed_in_as(auth, request, claim.recipient, people, project)


def _manager_of(auth: ConsoleAuth, claim: LinkClaim) -> Any:
    """The platform manager of the link's project (signed in its token):
    ``project_not_found`` once the project is archived."""
    gone = NotFound("The request of this link no longer exists")
    root = current_manager(auth.parent)
    if root is None:
        raise gone
    try:
        return root.for_project(str(root.store.for_project(claim.project_id).project))
    except NotFound:
        raise gone from None


def _signed_in_as(
    auth: ConsoleAuth, request: Request, recipient: str, people: People, project: str
) -> Identity:
    """The console session's person, when it names the link's ``recipient`` (by their proven
    user claim) and may decide in ``project`` with their own groups; else the ``403`` that
    says to sign in as the recipient (the role map may give them the right by a group only
    their sign-in token lists)."""
    viewer = auth.viewer(request)
    person = viewer.principal.identity() if viewer is not None else None
    if person is None or not {recipient, f"user:{recipient}"} & names_of(person):
        how = "sign in to the console as them and open this link again"
        if auth.authenticator.tokens is None:
            how = "ask an administrator for the right"
        raise Forbidden(
            f"{recipient} may not decide human requests in project {project!r} by this link "
            f"alone (no human:write by key, role map or notifications.people): {how}"
        )
    return check_decider(auth.authenticator, person, people, project=project)


def _status(exc: KneoError) -> int:
    return 404 if exc.code in ("not_found", "decision_link_invalid") else exc.http_status


def _recipient(recipient: str) -> Identity:
    """The link's recipient as a person: Kneo signed the name (the request's ``assignee``),
    so it is proven by the link itself, not by any claim of a provider."""
    return Identity(
        recipient,
        "decision_link",
        email=recipient if "@" in recipient else None,
        user=recipient,
        user_claim="assignee",
    )


__all__ = ["add_link_routes"]
