"""``kneo spec validate|lint|compile|explain|resolve|migrate|policy-report``.

Thin edge over :mod:`kneo.spec`: resolve the project context and environment, load the spec
(overlay + defaults), run :func:`kneo.policy.check.check_spec`, render. Exit codes: 0 ok,
1 findings or invalid input, 2 usage error. ``kneo --help`` never imports this module (the
groups load lazily: :mod:`kneo.cli.main`), so what the commands share is imported here.

Service mode (``--service-url``/``--profile``) goes through :func:`_on_service`, the single
seam where the HTTP client plugs in.

Two imports wait for the command that needs them: :mod:`kneo.mcp.client` for
``lint --probe-mcp`` (+18 ms, asyncio) and :mod:`kneo.spec.explain` (+3 ms of ``kneo spec
lint``, with the graph module).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from kneo.cli.output import console
from kneo.cli.service_client import remote_spec_operation
from kneo.errors import ErrorCode, InvalidRequest, KneoError
from kneo.policy.check import check_spec
from kneo.runtimes import create_runtime_registry
from kneo.settings import Settings
from kneo.spec import SpecCompiler
from kneo.spec.compiler import describe
from kneo.spec.loader import load_spec, overlay_base
from kneo.spec.migrate import detect_version, migrate_spec
from kneo.spec.migrate_kneo_serv import migrate_kneo_serv
from kneo.spec.project import ProjectContext
from kneo.spec.skills import skills_catalog
from kneo.spec.yaml_io import dump_yaml, read_yaml_mapping

if TYPE_CHECKING:
    from kneo.policy.check import SpecReport
    from kneo.spec.diagnostics import Diagnostic
    from kneo.spec.loader import LoadedSpec

from kneo.cli.output import ClientOptions, FileOutput, LazyCommand, Output, lazy_group, options

app = typer.Typer(
    no_args_is_help=True,
    help="Validate and compile specs",
    cls=lazy_group(
        {
            "bundle": LazyCommand(
                "kneo.cli.bundle_cmd", "bundle_app", "Sign and verify approved spec bundles"
            )
        }
    ),
)

SpecPathArg = Annotated[Path | None, typer.Argument(show_default=False)]
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="Environment (overlay + policy); default KNEO_ENV")
]
ToolsOpt = Annotated[
    str | None,
    typer.Option(
        "--tools",
        metavar="MODULE:FACTORY",
        help="The project's tool registry factory (default: tool_registry in the project config)",
    ),
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML")]


class UsageError(KneoError):
    """Missing or contradictory arguments: exit 2 like any other usage error."""

    code = ErrorCode.usage_error
    exit_code = 2


class ServiceModeUnavailable(KneoError):
    code = ErrorCode.service_mode_unavailable


# --------------------------------------------------------------------------- shared helpers


def project_context(env: str | None) -> ProjectContext:
    """The project around the working directory, with ``--env`` (or ``KNEO_ENV``) applied."""
    return ProjectContext.discover(env=env)


def spec_path_or_default(spec_path: Path | None, context: ProjectContext) -> Path:
    if spec_path is not None:
        return spec_path
    default = context.default_spec_path()
    if default is None:
        raise UsageError(
            "no SPEC_PATH given and the project config has no default_spec "
            "(pass a path, or set default_spec in .kneo/config.yaml)"
        )
    return default


def load_for(spec_path: Path | None, context: ProjectContext) -> LoadedSpec:
    """Load with the overlay of an explicitly chosen environment and the project defaults."""
    path = spec_path_or_default(spec_path, context)
    return load_spec(
        path,
        env=context.env if context.env_explicit else None,
        project=context.config,
        declared=context.declared_environments(),
    )


def _overlay_as_spec(
    spec_path: Path | None, context: ProjectContext
) -> tuple[Path | None, ProjectContext]:
    """An environment overlay given as the spec (``specs/x.dev.yaml``) is checked as what it
    is: its spec with the overlay merged, in the overlay's environment."""
    if spec_path is None:
        return spec_path, context
    found = overlay_base(spec_path, context.declared_environments(), context.config)
    if found is None:
        return spec_path, context
    base, overlay_env = found
    if context.env_explicit and context.env != overlay_env:
        raise UsageError(
            f"{spec_path} is the {overlay_env!r} overlay of {base}: check it with "
            f"'kneo spec lint {base} --env {overlay_env}' (not --env {context.env})"
        )
    return base, project_context(overlay_env)


def check(
    spec_path: Path | None,
    env: str | None,
    tools_ref: str | None = None,
    *,
    probe_mcp: bool = False,
) -> tuple[LoadedSpec, SpecReport, Any]:
    """Load, validate and enforce; returns the loaded spec, the report and the compiler
    (the project's tool registry and the runtimes) for commands that go on to compile.
    ``probe_mcp`` (validate, lint) asks each ``mcp.imports`` server for its tools."""
    context = project_context(env)
    spec_path, context = _overlay_as_spec(spec_path, context)
    loaded = load_for(spec_path, context)
    compiler = SpecCompiler(
        runtime_registry=create_runtime_registry(), tool_registry=context.tool_registry(tools_ref)
    )
    probe = None
    if probe_mcp and loaded.spec.mcp.imports:
        from kneo.mcp.client import check_imports

        settings = context.settings or Settings.from_env()

        def probe(spec: Any, access: Any) -> list[Any]:
            return check_imports(spec, settings, access)

    report = check_spec(
        loaded,
        env=context.env,
        context=context,
        tool_registry=compiler.tool_registry,
        runtime_registry=compiler.runtime_registry,
        probe=probe,
    )
    return loaded, report, compiler


def _compiled(
    spec_path: Path | None, env: str | None, tools_ref: str | None
) -> tuple[LoadedSpec, SpecReport, dict[str, Any]]:
    """:func:`check`, then the compiled workflow's summary (:func:`describe`): what
    ``compile`` and ``explain`` show."""
    loaded, report, compiler = check(spec_path, env, tools_ref)
    compiled = compiler.compile(
        loaded.spec,
        base_dir=loaded.base_dir,
        diagnostics=report.diagnostics,
        source=str(loaded.path),
    )
    return loaded, report, describe(compiled)


def local_only(opts: ClientOptions) -> None:
    """A spec checked here is checked against this directory's ``.kneo/config.yaml``: a
    project (tenant) is a service's, so ``--project`` needs one (``--service-url`` or
    ``--profile``), never silently ignored."""
    if opts.project is not None:
        raise InvalidRequest(
            "--project names a project on a service: add --service-url or --profile (a spec "
            "checked here is checked against this directory's .kneo/config.yaml)",
            field="project",
        )


def _on_service(
    command: str, opts: ClientOptions, spec_path: Path | None, env: str | None, *, judged: bool
) -> None:
    """With ``--service-url`` or ``--profile``: run ``command`` (``validate``, ``compile``,
    ``explain``, ``policy-report``) on that Kneo service instead, print its answer under
    ``--json`` (an explanation's lines without), and exit (1 when ``judged`` and the service
    found the spec invalid). Else nothing."""
    if not opts.remote:
        local_only(opts)
        return

    payload = {"spec_path": str(spec_path) if spec_path else None, "environment": env}
    result = remote_spec_operation(
        command,
        service_url=opts.service_url,
        profile=opts.profile,
        payload=payload,
        project=opts.project,
    )
    if not opts.printed_json(result) and command == "explain":
        print("\n".join(result["explanation"]["lines"]))
    raise typer.Exit(1 if judged and not result.get("valid") else 0)


def render_diagnostics(diagnostics: list[Diagnostic], *, source: str) -> None:
    """One line per finding: ``severity CODE path: message (hint: ...)``."""
    if not diagnostics:
        return  # nothing to show: do not pay for importing Rich

    out = console()
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for d in diagnostics:
        hint = f" [dim](hint: {d.suggestion})[/dim]" if d.suggestion else ""
        out.print(
            f"[{styles[d.severity]}]{d.severity:<7}[/] {d.code} [bold]{d.path}[/]: {_escape(d.message)}{hint}",
            highlight=False,
        )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _counts(diagnostics: list[Diagnostic]) -> tuple[int, int]:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = sum(d.severity == "warning" for d in diagnostics)
    return errors, warnings


def _verdict(
    opts: ClientOptions, report: SpecReport, loaded: LoadedSpec, *, table: bool = False
) -> NoReturn:
    """The report under ``--json``; else (``table``: the governance table first) every
    diagnostic, then ``PATH: valid|invalid (env ...): N error(s), M warning(s)``; exit 1 when
    invalid: ``validate`` and ``policy-report`` end the same way."""
    if not opts.printed_json(report.to_dict()):
        if table:
            _render_report(report.report)
        render_diagnostics(report.diagnostics, source=str(loaded.path))
        errors, warnings = _counts(report.diagnostics)
        verdict = "valid" if report.valid else "invalid"
        print(
            f"{loaded.path}: {verdict}{_env_note(report, loaded)}: {errors} error(s), {warnings} warning(s)"
        )
    raise typer.Exit(0 if report.valid else 1)


def _env_note(report: SpecReport, loaded: LoadedSpec | None = None) -> str:
    """What was applied: the environment's policy, and its overlay only when ``--env`` (or
    ``KNEO_ENV``) chose the environment; the default environment says it has none."""
    if not report.environment:
        return ""
    if loaded is not None and loaded.env is None:
        return f" (env {report.environment} policy; no overlay without --env)"
    overlay = (
        f", overlay {', '.join(p.name for p in loaded.overlays)}"
        if loaded and loaded.overlays
        else ""
    )
    return f" (env {report.environment}{overlay})"


# --------------------------------------------------------------------------- commands


@app.command("validate", short_help="Validate a spec; exit 1 on errors.")
@options
def validate_command(
    spec_path: SpecPathArg = None,
    env: EnvOpt = None,
    opts: ClientOptions = ClientOptions(),
    tools: ToolsOpt = None,
) -> None:
    """Validate a spec: schema, references, governance diagnostics and environment policy.

    Prints every diagnostic (errors, warnings, info); exits 1 only when there are errors.
    """
    _on_service("validate", opts, spec_path, env, judged=True)
    loaded, report, _ = check(spec_path, env, tools, probe_mcp=True)
    _verdict(opts, report, loaded)


@app.command("lint", short_help="Surface validator warnings and errors. Exits 1 if any are found.")
@options
def lint_command(
    spec_path: SpecPathArg = None,
    env: EnvOpt = None,
    out: Output = Output(),
    tools: ToolsOpt = None,
) -> None:
    """Surface validator warnings and errors. Exits 1 if any are found."""
    loaded, report, _ = check(spec_path, env, tools, probe_mcp=True)
    findings = [d for d in report.diagnostics if d.severity != "info"]
    errors, warnings = _counts(findings)
    shown = {
        "clean": not findings,
        "warning_count": warnings,
        "error_count": errors,
        "diagnostics": [d.to_dict() for d in findings],
    }
    if not out.printed_json(shown):
        render_diagnostics(findings, source=str(loaded.path))
        verdict = "clean" if not findings else f"{errors} error(s), {warnings} warning(s)"
        print(f"{loaded.path}: {verdict}{_env_note(report, loaded)}")
    raise typer.Exit(1 if findings else 0)


@app.command("compile", short_help="Build the executable workflow (nothing runs).")
@options
def compile_command(
    spec_path: SpecPathArg = None,
    env: EnvOpt = None,
    opts: ClientOptions = ClientOptions(),
    tools: ToolsOpt = None,
) -> None:
    """Resolve every reference and build the executable workflow (nothing runs)."""
    _on_service("compile", opts, spec_path, env, judged=False)
    loaded, report, summary = _compiled(spec_path, env, tools)
    shown = {
        "compiled": True,
        "environment": report.environment,
        "workflow": summary,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }
    if opts.printed_json(shown):
        return
    print(
        f"{loaded.path}: compiled {summary['family']} workflow '{summary['name']}'{_env_note(report, loaded)}"
    )
    for step in summary["steps"]:
        detail = step["agent"] and f"agent {step['agent']} ({step['model']}, {step['runtime']})"
        detail = detail or step["function_ref"] or f"human {step['ref']}"
        tools_text = (
            f" tools: {', '.join(t['name'] for t in step['tools'])}" if step["tools"] else ""
        )
        print(f"  - {step['id']} [{step['kind']}] {detail}{tools_text}")


@app.command("explain", short_help="Say what a spec does: steps, agents, tools, pauses, policy.")
@options
def explain_command(
    spec_path: SpecPathArg = None,
    env: EnvOpt = None,
    opts: ClientOptions = ClientOptions(),
    tools: ToolsOpt = None,
) -> None:
    """Explain a spec for people: its steps in order (a graph's routes), the agents and the
    tools they may call, where a run waits for a person, and the environment's policy gates.
    The spec is checked and compiled first (exit 1 with its diagnostics when invalid).
    ``--json`` prints the structured explanation; with ``--service-url``/``--profile`` the
    service explains it (``POST /v1/specs/explain``)."""
    _on_service("explain", opts, spec_path, env, judged=False)
    loaded, report, summary = _compiled(spec_path, env, tools)
    from kneo.spec.explain import explain  # cost: module docstring

    explained = explain(summary, report.report)
    shown = {
        "valid": True,
        "environment": report.environment,
        "explanation": explained,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }
    if not opts.printed_json(shown):
        print(f"{loaded.path}{_env_note(report, loaded)}:")
        print("\n".join(explained["lines"]))


@app.command("resolve", short_help="Write the spec with overlay and defaults applied.")
def resolve_command(output: OutputOpt, spec_path: SpecPathArg = None, env: EnvOpt = None) -> None:
    """Write the spec with the environment overlay merged and project defaults applied."""
    context = project_context(env)
    loaded = load_for(spec_path, context)
    write_yaml(output, dump_yaml(loaded.data))
    overlays = ", ".join(str(p) for p in loaded.overlays) or "no overlay"
    print(f"wrote {output} ({overlays})")


def write_yaml(output: Path, text: str) -> None:
    if str(output) == "-":
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise KneoError(
            f"{output}: cannot write: {exc.strerror}", code=ErrorCode.E_WRITE_FAILED
        ) from None


@app.command("migrate")
@options
def migrate_command(
    spec_path: Annotated[Path, typer.Argument(show_default=False)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the v1 spec here")
    ] = None,
    check_only: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the spec needs migrating")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The dialect the spec is written in: kneo-serv (the original platform's "
            "specs: top-level tools, implementation module.fn, ...); default: an older Kneo "
            "spec",
        ),
    ] = None,
    out: FileOutput = FileOutput(),
) -> None:
    """Migrate an older YAML spec to the current v1 shape."""
    data, _ = read_yaml_mapping(spec_path)
    if source not in (None, "kneo-serv"):
        raise KneoError(
            f"--from: {source!r} is not a dialect migrate knows (kneo-serv)",
            code=ErrorCode.invalid_request,
            field="--from",
        )
    if source == "kneo-serv":
        source_version = "kneo-serv"
        migrated, changes = migrate_kneo_serv(data)
    else:
        source_version = detect_version(data)
        migrated, changes = migrate_spec(data)
    written = None if check_only else output
    if written is not None:
        write_yaml(written, dump_yaml(migrated))
    shown = {
        "spec_path": str(spec_path),
        "source_version": source_version,
        "target_version": migrated["version"],
        "needs_migration": bool(changes),
        "changes": changes,
        "output": None if written is None else str(written),
    }
    exit_code = 1 if check_only and changes else 0
    if out.printed_json(shown):
        raise typer.Exit(exit_code)
    if check_only or written is not None:
        status = "needs migration" if changes else f"already {migrated['version']}"
        print(
            f"{spec_path}: {status}"
            if check_only
            else f"wrote {written} ({len(changes)} change(s))"
        )
        for change in changes:
            print(f"  - {change}")
    else:
        sys.stdout.write(dump_yaml(migrated))
    raise typer.Exit(exit_code)


@app.command("skills", short_help="List the skills a spec declares and who uses them.")
@options
def skills_command(
    spec_path: SpecPathArg = None, env: EnvOpt = None, out: Output = Output()
) -> None:
    """List the skills the spec declares: description, tools, and the agents using each."""
    loaded = load_for(spec_path, project_context(env))
    catalog = skills_catalog(loaded.spec)
    if out.printed_json({"spec_path": str(loaded.path), "skills": catalog}):
        return
    if not catalog:
        print(f"{loaded.path}: no skills declared")
        return
    from rich.table import Table

    table = Table("skill", "description", "tools", "agents")
    for skill in catalog:
        table.add_row(
            skill["name"],
            skill["description"] or "-",
            ", ".join(skill["tools"]) or "-",
            ", ".join(skill["agents"]) or "-",
        )
    console().print(table)


@app.command("policy-report")
@options
def policy_report_command(
    spec_path: SpecPathArg = None,
    env: EnvOpt = None,
    opts: ClientOptions = ClientOptions(),
    tools: ToolsOpt = None,
) -> None:
    """Generate a policy evaluation report for a spec."""
    _on_service("policy-report", opts, spec_path, env, judged=True)
    loaded, report, _ = check(spec_path, env, tools)
    _verdict(opts, report, loaded, table=True)


def _render_report(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]agent[/]: {data['agent_name'] or '-'}   [bold]workflow[/]: {data['workflow_name'] or '-'}"
        f" ({data['workflow_kind'] or '-'})   [bold]environment[/]: {data['environment'] or '-'}"
    )
    table = Table("agent", "tool selection", "tools", "policy", "guardrails", "memory")
    for agent in data["agents"]:
        tools = (
            ", ".join(
                t["name"]
                + (f" [{','.join(t['capabilities'])}]" if t["capabilities"] else "")
                + (" (approval)" if t["requires_approval"] else "")
                for t in agent["tools"]
            )
            or "-"
        )
        policy = agent["tool_policy"]
        policy_text = (
            "-"
            if policy is None
            else (
                f"network={policy['network']} shell={policy['shell']} fs={policy['filesystem']}"
                + (
                    f" domains={','.join(policy['allowed_domains'])}"
                    if policy["allowed_domains"]
                    else ""
                )
            )
        )
        table.add_row(
            agent["name"],
            agent["tool_selection"],
            tools,
            policy_text,
            ", ".join(agent["guardrail_stages"]) or "-",
            agent["memory"]["type"],
        )
    out.print(table)
    human = data["human_approval"]
    out.print(
        f"[bold]human approval[/]: {'yes' if human['present'] else 'no'}"
        f" (steps: {', '.join(human['human_steps']) or '-'};"
        f" review gates: {', '.join(g['step'] for g in human['review_gates']) or '-'};"
        f" approval tools: {', '.join(human['tools_requiring_approval']) or '-'})"
    )
    if data["mcp_imports"]:
        out.print(f"[bold]mcp imports[/]: {', '.join(i['name'] for i in data['mcp_imports'])}")
    if data["policy"]:
        enabled = [k for k, v in data["policy"].items() if v is True and k != "enabled"]
        out.print(
            f"[bold]policy[/]: {'enabled' if data['policy']['enabled'] else 'disabled'}"
            f" ({', '.join(enabled) or 'no gates'}; blocked: {', '.join(data['policy']['blocked_diagnostic_codes']) or '-'})"
        )
