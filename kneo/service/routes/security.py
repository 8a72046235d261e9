"""Credential inventory and service-managed environment policies.

The inventory reports which secret *references* are configured and present, never a value;
every read is a ``credential.inventory_accessed`` audit event. Environment policies are
stored in the store's project metadata under ``policy.environment.<name>`` and every change
is a ``policy.changed`` audit event carrying the previous and current policy and the
changed field names.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from kneo.errors import NotFound
from kneo.names import check_name
from kneo.platform import PlatformManager
from kneo.redaction import REDACTED
from kneo.service.auth import Principal, parse_api_keys, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.query_params import StrictQueryRoute
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.spec.project_blocks import PolicyEnforcement, SecretsConfig

router = APIRouter(route_class=StrictQueryRoute)


def _reference(name: str, env_var: str, present: bool) -> dict[str, Any]:
    return {
        "name": name,
        "env_var": env_var,
        "present": present,
        "value": REDACTED if present else None,
    }


def credential_inventory(settings: Settings) -> dict[str, Any]:
    """Provider, extra and service-token references with presence flags; no values."""
    try:
        context = ProjectContext.discover(settings=settings)
        secrets = context.config.secrets
        env_extra = context.config.environments.get(context.env)
        extra = {**secrets.extra, **(env_extra.secrets if env_extra else {})}
    except Exception:  # no or broken project config: report the defaults
        secrets = SecretsConfig()
        extra = {}
    providers = {
        name: _reference(f"provider:{name}", var, bool(settings.secret(var)))
        for name, var in sorted(secrets.providers.items())
    }
    extras = {
        name: _reference(f"extra:{name}", var, bool(settings.secret(var)))
        for name, var in sorted(extra.items())
    }
    service: dict[str, Any] = {}
    try:
        for key in parse_api_keys(settings.api_keys):
            service[key.name] = _reference(f"service:{key.name}", "KNEO_SERV_API_KEYS", True)
    except Exception:
        service["api_keys"] = _reference("service:api_keys", "KNEO_SERV_API_KEYS", True)
    service["admin"] = _reference(
        "service:admin", "KNEO_SERV_ADMIN_API_KEY", bool(settings.admin_api_key)
    )
    service["client"] = _reference(
        "service:client", "KNEO_SERV_API_KEY", bool(settings.client_api_key)
    )
    service["spec_signing"] = _reference(
        "service:spec_signing", "KNEO_SERV_SPEC_SIGNING_KEY", bool(settings.spec_signing_key)
    )
    return {"providers": providers, "extra": extras, "service": service}


@router.get("/security/credentials", tags=["security"])
def get_credentials(
    request: Request,
    providers: list[str] | None = Query(None, description="Only these providers."),
    extras: list[str] | None = Query(None, description="Only these extra secrets."),
    include_service_tokens: bool = Query(True, description="false: leave `service` out."),
    principal: Principal = Depends(require_scope("credentials:read")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Redacted inventory of configured secret references (presence only), optionally
    narrowed to named providers and extra secrets."""
    inventory = credential_inventory(request.app.state.settings)
    for section, wanted in (("providers", providers), ("extra", extras)):
        if wanted is not None:
            inventory[section] = {k: v for k, v in inventory[section].items() if k in wanted}
    if not include_service_tokens:
        del inventory["service"]
    groups = [g for g in inventory.values() if isinstance(g, dict)]
    refs = [ref for g in groups for ref in g.values()]
    manager.add_audit(
        "credential.inventory_accessed",
        actor=principal.name,
        payload={
            "reference_count": len(refs),
            "present_count": sum(1 for r in refs if r["present"]),
            "present": sorted(r["name"] for r in refs if r["present"]),
            "missing": sorted(r["name"] for r in refs if not r["present"]),
        },
    )
    return {"inventory": inventory}


def _env_param(environment: str) -> str:
    return check_name(environment, kind="environment")


@router.get(
    "/policies/environment",
    tags=["policies"],
    dependencies=[Depends(require_scope("policies:read"))],
)
def list_environment_policies(manager: PlatformManager = Depends(manager_dep)) -> dict[str, Any]:
    """Every service-managed environment policy, by environment."""
    stored = manager.environment_policies()
    policies = {env: value for env, value in sorted(stored.items())}
    return {"policies": policies, "count": len(policies), "total": len(policies)}


@router.get(
    "/policies/environment/{environment}",
    tags=["policies"],
    dependencies=[Depends(require_scope("policies:read"))],
)
def get_environment_policy(
    environment: str = Path(...), manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """One environment's service-managed policy (404 when none is stored)."""
    env = _env_param(environment)
    value = manager.environment_policy(env)
    if value is None:
        raise NotFound(f"no service-managed policy for environment {env!r}", resource="policy")
    return {"environment": env, "policy": value}


@router.put("/policies/environment/{environment}", tags=["policies"])
def put_environment_policy(
    environment: str = Path(...),
    policy: PolicyEnforcement = Body(...),
    principal: Principal = Depends(require_scope("policies:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Replace an environment's policy; answers with the previous one too."""
    env = _env_param(environment)
    current = policy.model_dump(mode="json")
    previous = manager.put_environment_policy(env, current, actor=principal.name)
    return {"environment": env, "policy": current, "previous_policy": previous}


@router.post(
    "/policies/environment/{environment}/preview",
    tags=["policies"],
    dependencies=[Depends(require_scope("policies:read"))],
)
def preview_environment_policy(
    environment: str = Path(...),
    policy: PolicyEnforcement = Body(...),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """What ``PUT`` with this body would change: each gate it loosens or tightens against
    the policy in force, whether the change loosens any (``needs_policy_approval``), and the
    recent runs there it would admit or refuse otherwise. Writes nothing."""
    env = _env_param(environment)
    return manager.preview_environment_policy(env, policy.model_dump(mode="json"))
