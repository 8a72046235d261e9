"""What every console page is drawn with: the signed-in viewer's request, the platform
manager of its project it reads through, its template renderer and its redirects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from kneo.console.auth import Viewer
from kneo.console.paths import console_path
from kneo.console.session import Session
from kneo.errors import NotReady
from kneo.service.dependencies import current_manager


class Render(Protocol):
    """Renders a template into a response (``kneo.console.app``)."""

    def __call__(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        session: Session | None = None,
    ) -> Response: ...


@dataclass(frozen=True)
class PageView:
    """A signed-in viewer's request, and how its page is drawn."""

    request: Request
    viewer: Viewer
    render: Render

    @property
    def manager(self) -> Any:
        """The platform manager of the page's project (the viewer's,
        :meth:`~kneo.console.auth.ConsoleAuth.in_project`)."""
        found = current_manager(self.request.app.state.parent)
        if found is None:
            raise NotReady("no platform manager is configured", check="manager")
        return found.for_project(self.viewer.project)

    def show(self, template: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
        """``template`` over ``context``, the viewer and the platform clock's now."""
        shown = {"viewer": self.viewer, **context, "now": self.manager.clock.now()}
        return self.render(self.request, template, shown, status_code=status_code)

    def redirect(self, name: str, **params: Any) -> Response:
        """303 to the console route ``name``; for a form htmx posted, ``HX-Redirect`` (the
        browser loads the page, as after a plain form)."""
        target = console_path(self.request, name, **params)
        if self.request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
