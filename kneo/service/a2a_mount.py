"""``/a2a`` and the agent card on the service (``create_app(a2a=True)``,
``kneo service serve --a2a``): who may call, and what the card says.

* ``POST /a2a``: the SDK's JSON-RPC dispatcher over :class:`~kneo.service.a2a.KneoRequestHandler`;
  a request without a valid key is ``401`` (a ``Bearer`` challenge) before any A2A handling,
  through the service's sign-in and its throttle, exactly as ``/mcp``;
* push notifications (``capabilities.pushNotifications``) where the operator allows push
  destinations (``KNEO_SERV_A2A_PUSH_DESTINATIONS``): the configs' methods, and the push
  sweep for the app's lifetime (:meth:`A2aServer.background`);
* ``GET /.well-known/agent-card.json``: the agent card. Its skills are the approved (active)
  bundle revisions, one per bundle and environment, that the caller may start: with a key
  that holds ``runs:write`` and ``registry:read``; without a key (or without those scopes)
  the card lists none and says how to authenticate. The same card, for the caller, is the
  extended card of ``GetExtendedAgentCard``.

Both act in the caller's project: the one its ``X-Kneo-Project`` header names, else its key's
home project. The card's skills are that project's bundles; every API call the endpoint
makes carries the project, and push configs are kept in it. A project the key holds no
grant in is ``404 project_not_found`` (the API's one answer) before any A2A handling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.types import a2a_pb2 as pb
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from a2a.utils.errors import A2AError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kneo import __version__
from kneo.errors import KneoError
from kneo.platform.a2a_push import PushGrant
from kneo.service import dependencies
from kneo.service.a2a import KneoRequestHandler
from kneo.service.a2a_bridge import CALLER_STATE, ApiCalls, Caller
from kneo.service.a2a_push import PushConfigs, PushSweep
from kneo.service.a2a_tasks import skill_id
from kneo.service.auth import (
    Authenticator,
    Principal,
    project_principal,
    requested_project,
    sign_in,
)
from kneo.service.errors import error_headers
from kneo.service.mcp import bearer_challenge, in_process_client, presented
from kneo.service.throttle import SignInThrottle

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: Where the JSON-RPC endpoint is mounted.
PATH = "/a2a"
#: Headers the call context never keeps (they carry the caller's credentials).
SECRET = frozenset({"authorization", "x-api-key", "cookie"})
#: What a caller needs for the card to list a skill: to start runs and to read the registry.
SKILL_SCOPES = ("runs:write", "registry:read")
DESCRIPTION = (
    "Kneo runs approved AI agent workflows with durable human approval. Each skill is a "
    "signed bundle approved for one environment; name it in the message's metadata.skill. "
    "A run paused for a person is input-required: answer with a data part "
    "{decision, request_id, content?, selected_option?}."
)


def _security() -> dict[str, Any]:
    """The card's security: the API's bearer token or ``X-API-Key`` (one of them)."""
    return {
        "security_schemes": {
            "bearer": pb.SecurityScheme(
                http_auth_security_scheme=pb.HTTPAuthSecurityScheme(
                    scheme="Bearer", description="A Kneo API key or OpenID token"
                )
            ),
            "apiKey": pb.SecurityScheme(
                api_key_security_scheme=pb.APIKeySecurityScheme(
                    location="header", name="X-API-Key", description="A Kneo API key"
                )
            ),
        },
        "security_requirements": [
            pb.SecurityRequirement(schemes={"bearer": pb.StringList()}),
            pb.SecurityRequirement(schemes={"apiKey": pb.StringList()}),
        ],
    }


def skill(revision: dict[str, Any]) -> pb.AgentSkill:
    """One approved bundle revision as a skill."""
    bundle, environment = str(revision["bundle_name"]), str(revision["environment"])
    return pb.AgentSkill(
        id=skill_id(bundle, environment),
        name=f"{bundle} ({environment})",
        description=f"Run bundle {bundle}, revision {revision.get('revision')} as approved "
        f"for {environment} (digest {revision.get('digest')}).",
        tags=["kneo-bundle", environment],
        input_modes=["text/plain", "application/json"],
        output_modes=["text/plain"],
    )


def agent_card(base_url: str, skills: list[pb.AgentSkill], *, push: bool) -> pb.AgentCard:
    """The card: one JSON-RPC interface at ``base_url`` + :data:`PATH`, streaming, push
    notifications where configured, the caller's skills."""
    return pb.AgentCard(
        name="Kneo",
        description=DESCRIPTION,
        version=__version__,
        supported_interfaces=[
            pb.AgentInterface(
                url=base_url.rstrip("/") + PATH, protocol_binding="JSONRPC", protocol_version="1.0"
            )
        ],
        provider=pb.AgentProvider(organization="Kneo", url=base_url),
        capabilities=pb.AgentCapabilities(
            streaming=True, push_notifications=push, extended_agent_card=True
        ),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain"],
        skills=skills,
        **_security(),
    )


class A2aServer:
    """The card and the endpoint over one :class:`ApiCalls` (see the module docstring)."""

    def __init__(
        self,
        api: ApiCalls,
        authenticator: Authenticator,
        throttle: SignInThrottle,
        *,
        public_url: str,
        max_wait_seconds: float,
        push: PushConfigs | None = None,
        sweep: PushSweep | None = None,
    ) -> None:
        self.api = api
        self.sweep = sweep
        self._authenticator = authenticator
        self._throttle = throttle
        self._public_url = public_url
        self.handler = KneoRequestHandler(
            api, self.extended_card, max_wait_seconds=max_wait_seconds, push=push
        )
        builder = _ContextBuilder()
        self._dispatch = create_jsonrpc_routes(
            self.handler, PATH, context_builder=builder, enable_v0_3_compat=True
        )[0].endpoint

    @contextmanager
    def background(self) -> Iterator[None]:
        """What runs for the app's lifetime: the push sweep, where pushes are on."""
        if self.sweep is None:
            yield
            return
        with self.sweep.running():
            yield

    def _base_url(self, request: Request) -> str:
        return self._public_url or str(request.base_url).rstrip("/")

    async def card_for(
        self, principal: Principal | None, caller: Caller, base: str
    ) -> pb.AgentCard:
        """The card for ``principal`` (in its project): the project's active bundles it may
        start as skills."""
        skills: list[pb.AgentSkill] = []
        if principal is not None and all(principal.has(s) for s in SKILL_SCOPES):
            try:
                skills = [skill(r) for r in await self.api.active_bundles(caller)]
            except A2AError:
                skills = []
        return agent_card(base, skills, push=self.handler.push is not None)

    async def extended_card(self, context: ServerCallContext) -> pb.AgentCard:
        principal = context.state.get("kneo_principal")
        caller = context.state.get(CALLER_STATE) or Caller(None)
        return await self.card_for(principal, caller, str(context.state.get("kneo_base_url")))

    def _sign_in(self, request: Request, *, required: bool) -> tuple[Principal | None, Any]:
        """The caller's principal in the project the request names (``None``: no key where
        none is required), or the ``401`` / ``429`` answer, or the ``404`` of a project it
        holds no grant in."""
        key = presented(request.headers)
        if key is None and not required and self._authenticator.enabled:
            return None, None
        try:
            principal = sign_in(self._authenticator, self._throttle, request, key, surface="a2a")
            return project_principal(principal, requested_project(request)), None
        except KneoError as exc:
            body = {"error": exc.code, "message": exc.message}
            headers = error_headers(exc.http_status, exc.code, exc.retry_after)
            if exc.http_status == 401:
                headers["WWW-Authenticate"] = bearer_challenge(key is not None)
            return None, JSONResponse(body, status_code=exc.http_status, headers=headers)

    async def card(self, request: Request) -> Any:
        """``GET /.well-known/agent-card.json``."""
        principal, refused = self._sign_in(request, required=False)
        if refused is not None:
            return refused
        caller = Caller(presented(request.headers), principal.project if principal else None)
        found = await self.card_for(principal, caller, self._base_url(request))
        body = agent_card_to_dict(found)
        body.setdefault("skills", [])  # required by the card's schema, even when empty
        return JSONResponse(body)

    async def endpoint(self, request: Request) -> Any:
        """``POST /a2a``: signed in, then the SDK's dispatcher."""
        principal, refused = self._sign_in(request, required=True)
        if refused is not None:
            return refused
        request.state.kneo_principal = principal
        assert principal is not None  # required: signed in or refused
        request.state.kneo_caller = Caller(presented(request.headers), principal.project)
        request.state.kneo_base_url = self._base_url(request)
        return await self._dispatch(request)


class _ContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, with the caller's key and principal (signed in already)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        # the SDK reads A2A-Version there; the key lives in one place only (KEY_STATE)
        headers = context.state.get("headers") or {}
        context.state["headers"] = {k: v for k, v in headers.items() if k.lower() not in SECRET}
        context.state[CALLER_STATE] = getattr(request.state, "kneo_caller", None) or Caller(
            presented(request.headers)
        )
        context.state["kneo_principal"] = getattr(request.state, "kneo_principal", None)
        context.state["kneo_base_url"] = getattr(request.state, "kneo_base_url", "")
        return context


def mount(app: Starlette) -> A2aServer:
    """Serve A2A at :data:`PATH` and the card at the well-known path on the service ``app``;
    calls go to ``app`` itself (``app.state.a2a``). Push notifications are on where the
    settings allow push destinations (a bad list is a ``config_error`` here, at start)."""
    settings = app.state.settings
    api = ApiCalls(in_process_client(app))
    grant = PushGrant.from_settings(settings)
    push = sweep = None
    if grant is not None:

        def manager() -> Any:
            return dependencies.current_manager(app)

        def store(project: str) -> Any:
            return manager().for_project(project).store

        push = PushConfigs(api, store, grant)
        sweep = PushSweep(manager, settings.notifications.poll_seconds or 0.5)
    server = A2aServer(
        api,
        app.state.authenticator,
        app.state.sign_in_throttle,
        public_url=settings.public_url,
        max_wait_seconds=float(settings.limits.max_wait_seconds),
        push=push,
        sweep=sweep,
    )
    app.router.routes.append(Route(PATH, endpoint=server.endpoint, methods=["POST"]))
    app.router.routes.append(
        Route(AGENT_CARD_WELL_KNOWN_PATH, endpoint=server.card, methods=["GET"])
    )
    app.state.a2a = server
    return server


__all__ = ["PATH", "SKILL_SCOPES", "A2aServer", "agent_card", "mount", "skill"]
