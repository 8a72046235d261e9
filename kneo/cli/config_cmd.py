"""``kneo config init|show|resolve|secrets|render-spec|check-env``: config, from the CLI.

Secrets are shown as references only: the environment-variable name and whether it is set,
never the value. Only Typer is imported at module level (fast ``--help``). Service profiles
(``kneo config profile ...``) are attached to :data:`app` by the service-client module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kneo.cli.init_cmd import PACKAGE
from kneo.cli.output import Output, options
from kneo.cli.spec_cmd import load_for, project_context, write_yaml
from kneo.documents import parse_yaml
from kneo.envcheck import SHAPES, check_env_file
from kneo.errors import ConfigError, ErrorCode
from kneo.policy.check import resolve_environment_policy
from kneo.redaction import REDACTED
from kneo.settings import Settings
from kneo.spec.loader import overlay_path
from kneo.spec.project import CONFIG_DIR, CONFIG_FILE, ProjectConfig
from kneo.spec.yaml_io import dump_yaml

if TYPE_CHECKING:
    from kneo.spec.project import ProjectContext

app = typer.Typer(no_args_is_help=True, help="Manage project config")

EnvOpt = Annotated[
    str | None, typer.Option("--env", help="Environment; default KNEO_ENV, else dev")
]
SpecOpt = Annotated[
    Path | None, typer.Option("--spec", help="Spec file; default: the project's default_spec")
]

#: Service credentials reported by presence only.
SERVICE_SECRET_VARS = {  # labels avoid secret-looking words so redaction keeps the entries
    "cli_client": "KNEO_SERV_API_KEY",
    "service_keys": "KNEO_SERV_API_KEYS",
    "admin": "KNEO_SERV_ADMIN_API_KEY",
    "bundle_signing": "KNEO_SERV_SPEC_SIGNING_KEY",
}

_INIT_TEMPLATE = """\
# yaml-language-server: $schema=schemas/project_config.schema.json
# Kneo project config. Reference: docs/project_config.md
version: v1
name: {name}
owner: null

service:
  default_url: null

paths:
  state_dir: .kneo
  artifacts_dir: .kneo/artifacts
  logs_dir: .kneo/logs

default_spec: null

runtime:
  preferred_mode: native
  allowed_modes: [native, bridge]

environments:
  dev:
    policy_enforcement:
      enabled: false
  staging:
    policy_enforcement:
      require_tool_permissions: true
      blocked_diagnostic_codes: [E_UNSAFE_TOOL_IMPORT, E_UNSAFE_FUNCTION_IMPORT]
  prod:
    policy_enforcement:
      require_tool_permissions: true
      deny_unrestricted_tools: true
      require_human_review: true
      require_guardrails: true
      blocked_diagnostic_codes: [E_UNSAFE_TOOL_IMPORT, E_UNSAFE_FUNCTION_IMPORT]

# Environment-variable NAMES only; never secret values.
secrets:
  providers:
    openai: OPENAI_API_KEY
    openai-agents: OPENAI_API_KEY
    azure-openai: AZURE_OPENAI_API_KEY
    anthropic: ANTHROPIC_API_KEY
    google: GOOGLE_API_KEY
    google-adk: GOOGLE_API_KEY
  extra: {{}}

retention:
  runs_days: 30
  checkpoints_days: 14
"""


def _context(env: str | None = None, *, required: bool = True) -> ProjectContext:
    context = project_context(env)
    if required and context.config_path is None:
        raise ConfigError(
            "no project config found (.kneo/config.yaml here or above, or KNEO_PROJECT_CONFIG); "
            "create one with 'kneo config init'",
            code=ErrorCode.project_config_not_found,
        )
    return context


@app.command("show")
@options
def show_command(out: Output = Output()) -> None:
    """Show project config."""
    context = _context()
    data = context.config.model_dump(mode="json")
    if out.printed_json(
        {"path": str(context.config_path), "root": str(context.root), "config": data}
    ):
        return
    print(f"# {context.config_path}")
    print(dump_yaml(data), end="")


@app.command("init")
def init_command(
    name: Annotated[str, typer.Option("--name", help="Project name")] = "kneo-serv-project",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config")] = False,
) -> None:
    """Create a .kneo/config.yaml project config."""
    if not name.strip() or any(ch in name for ch in "\n\r:#"):
        raise ConfigError(
            f"invalid project name {name!r}", code=ErrorCode.config_error, field="name"
        )
    path = Path.cwd() / CONFIG_DIR / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists; pass --force to overwrite",
            code=ErrorCode.config_exists,
            file=str(path),
        )
    text = _INIT_TEMPLATE.format(name=name.strip())
    ProjectConfig.model_validate(
        parse_yaml(text, source="<template>")
    )  # the template must stay valid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    _copy_schema(path.parent / "schemas", "project_config.schema.json")
    print(f"created {path.relative_to(Path.cwd())} (project '{name.strip()}')")


def _copy_schema(folder: Path, name: str) -> None:
    """The schema the config's modeline names, beside it: an editor resolves it offline."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PACKAGE / "schemas" / name, folder / name)


@app.command("resolve")
@options
def resolve_command(env: EnvOpt = None, spec: SpecOpt = None, out: Output = Output()) -> None:
    """Resolve project context, including environment and overlays."""
    context = _context(env, required=False)
    if context.env_explicit:  # --env or KNEO_ENV names one the project declares
        context.run_environment(context.env)
    spec_path = spec or context.default_spec_path()
    overlay: Path | None = None
    if spec_path is not None:
        candidate = overlay_path(spec_path, context.env, context.config)
        overlay = candidate if candidate.is_file() else None
    policy = resolve_environment_policy(context, context.env)
    cfg = context.config
    data: dict[str, Any] = {
        "project": cfg.name,
        "owner": cfg.owner,
        "root": str(context.root),
        "config_path": str(context.config_path) if context.config_path else None,
        "environment": context.env,
        "environment_explicit": context.env_explicit,
        "known_environments": context.known_environments(),
        "spec": str(spec_path) if spec_path else None,
        "overlays": [str(overlay)] if overlay else [],
        "service_url": cfg.service.default_url,
        "paths": {k: str(context.resolve_path(v)) for k, v in cfg.paths.model_dump().items()},
        "runtime_defaults": cfg.runtime.model_dump(exclude_none=True),
        "model_defaults": cfg.model.model_dump(exclude_none=True),
        "policy": policy.model_dump() if policy else None,
    }
    if out.printed_json(data):
        return
    for key, value in data.items():
        print(f"{key}: {value if value not in (None, [], {}) else '-'}")


@app.command("secrets")
@options
def secrets_command(env: EnvOpt = None, out: Output = Output()) -> None:
    """Show configured secret references without exposing values."""
    context = _context(env, required=False)
    inventory = secret_inventory(context)
    if out.printed_json({"environment": context.env, "inventory": inventory}):
        return
    for group, entries in inventory.items():
        print(f"{group}:")
        if not entries:
            print("  (none)")
        for ref, entry in entries.items():
            print(f"  {ref:<20} {entry['env_var']:<28} {'set' if entry['present'] else 'missing'}")


def secret_inventory(context: ProjectContext) -> dict[str, dict[str, dict[str, Any]]]:
    """Each reference with its variable name and whether it is set. Values never leave here."""
    settings = context.settings or Settings.from_env()
    cfg = context.config
    env_cfg = cfg.environments.get(context.env)
    extra = {**cfg.secrets.extra, **(env_cfg.secrets if env_cfg else {})}

    def entry(kind: str, name: str, var: str) -> dict[str, Any]:
        present = settings.secret(var) is not None
        return {
            "name": f"{kind}:{name}",
            "env_var": var,
            "present": present,
            "value": REDACTED if present else None,
        }

    return {
        "providers": {n: entry("provider", n, v) for n, v in cfg.secrets.providers.items()},
        "extra": {n: entry("extra", n, v) for n, v in extra.items()},
        "service": {n: entry("service", n, v) for n, v in SERVICE_SECRET_VARS.items()},
    }


@app.command("render-spec")
def render_spec_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML")],
    env: EnvOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Render default spec plus environment overlays into one YAML file."""
    context = _context(env, required=False)
    loaded = load_for(spec, context)
    write_yaml(output, dump_yaml(loaded.data))
    overlays = ", ".join(str(p) for p in loaded.overlays) or "no overlay"
    print(f"wrote {output} from {loaded.path} ({overlays})")


@app.command("check-env")
@options
def check_env_command(
    env_file: Annotated[
        Path,
        typer.Option(
            "--env-file",
            exists=True,
            dir_okay=False,
            readable=True,
            help="KEY=VALUE file to check, e.g. deploy/production.env",
        ),
    ],
    shape: Annotated[
        str,
        typer.Option(
            "--shape",
            help="compose (deploy/docker-compose.yml), scale-out (PostgreSQL, e.g. "
            "Kubernetes) or single (one machine, SQLite)",
        ),
    ] = "compose",
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too")] = False,
    out: Output = Output(),
) -> None:
    """Check a deployment env file; never prints a value. Exit 0 clean, 1 findings, 2 usage."""
    if shape not in SHAPES:
        raise typer.BadParameter(f"one of {', '.join(SHAPES)}", param_hint="--shape")
    report = check_env_file(env_file, shape)  # type: ignore[arg-type]
    failed = report.errors > 0 or (strict and report.warnings > 0)
    if not out.printed_json({"env_file": str(env_file), **report.to_dict()}):
        for finding in report.findings:
            print(finding.render())
        verdict = "FAILED" if failed else "ok"
        print(
            f"{env_file} ({report.shape}): {verdict}, {report.errors} error(s), "
            f"{report.warnings} warning(s)"
        )
    if failed:
        raise typer.Exit(1)


from kneo.cli.profiles import profile_app  # noqa: E402  (service issue: kneo config profile ...)

app.add_typer(profile_app, name="profile")
