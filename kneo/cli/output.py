"""Shared CLI plumbing: error rendering, JSON and YAML output and Rich consoles.

Every command raises :class:`~kneo.errors.KneoError` for user errors; :func:`run_cli` turns it
into ``error[CODE]: message`` on stderr (or the error envelope on stdout, in JSON or YAML, with
``-o json|yaml``) and the error's exit code. No traceback ever reaches a user; unexpected
exceptions become one line too.

Every command, ``kneo --help`` included, imports this module, so two imports wait for their
use: :mod:`kneo.cli.client` (with :mod:`kneo.settings` and :mod:`kneo.tracing`, +11 ms of a
~95 ms ``kneo --help``) and :mod:`kneo.spec.yaml_io` (with :mod:`kneo.documents`, +2 ms).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from kneo.cli.hints import hint_for
from kneo.cli.platform_client import PlatformClient
from kneo.errors import KneoError
from kneo.redaction import redact, redact_text, reduce_url

#: How errors print: ``None`` (one line on stderr), ``json`` or ``yaml`` (the envelope).
_error_format: str | None = None
#: The service this command's requests go to (``None``: this machine's project), which
#: ``-o json|yaml`` output carries as ``meta.service``.
_service: dict[str, Any] | None = None

#: How each rule of the connection precedence reads in the terminal line.
_CHOSEN_BY = {
    "service_url": "--service-url",
    "profile": "--profile {profile}",
    "project_config": "service.default_url in the project config",
    "active_profile": "the active profile {profile}",
}


class OutputFormat(StrEnum):
    """``-o``: kubectl's spelling. ``table`` is the output for people (tables and lines)."""

    table = "table"
    json = "json"
    yaml = "yaml"


def want_structured_errors(output_format: str | None) -> None:
    """Commands with ``-o json|yaml`` call this so errors print as the envelope in it."""
    global _error_format
    _error_format = output_format


def talking_to(
    url: str, *, chosen_by: str, profile: str | None = None, project: str | None = None
) -> None:
    """Record the service a command's requests go to, so it is never invisible: ``-o
    json|yaml`` output carries it as ``meta.service`` (URL without user information, the
    profile, which rule chose it, and the project asked for when one was) and, when stderr is
    a terminal, one line there says so."""
    global _service
    first = _service is None
    _service = {"url": reduce_url(url), "profile": profile, "chosen_by": chosen_by}
    if project is not None:
        _service["project"] = project
    if first and sys.stderr.isatty():
        why = _CHOSEN_BY.get(chosen_by, chosen_by).format(profile=profile)
        sys.stderr.write(f"kneo: service {_service['url']} ({why})\n")
        sys.stderr.flush()


def service_used() -> dict[str, Any] | None:
    """What :func:`talking_to` recorded for this command, or ``None`` (local)."""
    return _service


def print_structured(data: Any, output_format: str) -> None:
    """``data`` as JSON or YAML on stdout, secrets redacted. The YAML is the same document as
    the JSON (values JSON has no type for print as text in both) and starts with ``---``, so a
    command that prints one per event (``controller run``) writes a valid YAML stream.
    Personal data is left as the view shows it: the service redacted it for a caller without
    the decision scope, and a local command's user holds every scope (the policy:
    :mod:`kneo.redaction`)."""
    if _service is not None and isinstance(data, dict) and "meta" not in data:
        data = {**data, "meta": {"service": _service}}
    text = json.dumps(redact(data, show_personal=True), indent=2, sort_keys=False, default=str)
    if output_format == "yaml":
        from kneo.spec.yaml_io import dump_yaml  # cost: module docstring

        text = "---\n" + dump_yaml(json.loads(text)).rstrip("\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()  # whole documents, at once: a stream's reader never waits on a buffer


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def progress_bar(description: str = "{task.description}") -> Any:
    """A rich ``Progress`` (``with`` it) for long commands: on stderr, so ``-o json`` stays
    clean, and gone when done; each task shows ``description``, a bar and ``done/total``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    )


#: Options every command spells the same way (declared once, here).
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the same as -o json)")]
_FORMAT_HELP = "Output format: table (for people, the default), json or yaml"
OutputFormatOpt = Annotated[
    OutputFormat | None,
    typer.Option("--output", "-o", help=_FORMAT_HELP, case_sensitive=False, show_default=False),
]
#: For the commands whose ``-o/--output`` names the file they write (``spec migrate``,
#: ``spec bundle sign``): the format is ``--output-format`` there.
LongOutputFormatOpt = Annotated[
    OutputFormat | None,
    typer.Option("--output-format", help=_FORMAT_HELP, case_sensitive=False, show_default=False),
]
ServiceUrlOpt = Annotated[
    str | None, typer.Option("--service-url", help="Send the request to this Kneo service")
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Service profile name")]
ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--project",
        help="The project (tenant) to act in; default: KNEO_SERV_PROJECT, the profile's, "
        "else your key's home project",
    ),
]
TrustedHmacKeysOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-hmac-key-env",
        metavar="KEY_ID=VAR",
        help="Trust HMAC key KEY_ID whose secret is in variable VAR (repeatable)",
    ),
]
#: The signing key of ``spec bundle sign``, ``eval sign`` and ``policy sign``
#: (:func:`kneo.cli.signing.signing_key`); ``spec bundle sign``'s --key-env shows its default.
SigningKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--key-env", help="Variable holding the HMAC secret (as for bundle sign)"),
]
SigningKeyFileOpt = Annotated[
    Path | None, typer.Option("--key-file", help="Ed25519 private key (PEM)")
]
SigningKeyIdOpt = Annotated[
    str | None,
    typer.Option("--key-id", help="Key id in the signature (default: key file stem, or 'default')"),
]


@dataclass(frozen=True)
class Output:
    """``-o json|yaml`` (``--json`` is ``-o json``): a command's result and errors as JSON or
    YAML (errors: the HTTP envelope), else ``-o table``: tables and lines for people. A
    command takes it as one parameter (:func:`options`)."""

    as_json: JsonOpt = False
    output_format: OutputFormatOpt = None

    @property
    def format(self) -> str:
        """``table``, ``json`` or ``yaml``; ``--json`` with another ``-o`` is a usage error."""
        chosen = self.output_format.value if self.output_format is not None else None
        if self.as_json and chosen not in (None, "json"):
            raise typer.BadParameter(f"--json means -o json, not -o {chosen}: give one of them")
        return "json" if self.as_json else chosen or "table"

    @property
    def structured(self) -> bool:
        """Whether the result prints as JSON or YAML (no progress, no tables)."""
        return self.format != "table"

    def printed_json(self, data: Any) -> bool:
        """With ``-o json|yaml`` (or ``--json``): prints ``data`` in that format and returns
        true (the command is done); with ``-o table`` returns false."""
        if self.structured:
            print_structured(data, self.format)
        return self.structured


@dataclass(frozen=True)
class FileOutput(Output):
    """:class:`Output` for a command whose ``-o/--output`` is the file it writes."""

    output_format: LongOutputFormatOpt = None


@dataclass(frozen=True)
class ClientOptions(Output):
    """``-o``/``--json``, ``--service-url``, ``--profile`` and ``--project``: how a command
    prints, where its platform calls go (the local platform, or a service by URL or
    profile) and in which project."""

    service_url: ServiceUrlOpt = None
    profile: ProfileOpt = None
    project: ProjectOpt = None

    @property
    def remote(self) -> bool:
        """Whether a service was asked for on the command line."""
        return bool(self.service_url or self.profile)

    def client(self, *, environment: str | None = None) -> PlatformClient:
        """The platform client these options choose (local or HTTP)."""
        from kneo.cli.client import get_client  # cost: module docstring

        return get_client(
            service_url=self.service_url,
            profile=self.profile,
            environment=environment,
            project=self.project,
        )


@dataclass(frozen=True)
class ServiceOptions:
    """``--service-url`` and ``--profile`` alone, for a command that prints no result
    (``kneo mcp serve``)."""

    service_url: ServiceUrlOpt = None
    profile: ProfileOpt = None


@functools.cache
def _group_fields(group: type[Any]) -> tuple[inspect.Parameter, ...]:
    """The command-line parameters an option group stands for (read once per group)."""
    hints = get_type_hints(group, include_extras=True)
    return tuple(
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=field.default,
            annotation=hints[field.name],
        )
        for field in dataclasses.fields(group)
    )


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Typer sees an option group's fields where ``command`` takes the group.

    A parameter annotated with a dataclass (:class:`Output`, :class:`ClientOptions`) stands
    for that dataclass's fields, each an ``Annotated`` Typer option, in their order; the
    command is called with the dataclass built from them. With an :class:`Output`, the
    command's errors print as JSON or YAML under ``-o json|yaml`` from its first line on.
    Apply below ``@app.command``."""
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    shown: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        group = param.annotation
        if isinstance(group, type) and dataclasses.is_dataclass(group):
            fields = _group_fields(group)
            groups[param.name] = (group, [field.name for field in fields])
            shown += fields
        else:
            shown.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def run(**given: Any) -> Any:
        global _service
        _service = None  # a command's own connection (tests run several in one process)
        for param, (group, names) in groups.items():
            built = given[param] = group(**{name: given.pop(name) for name in names})
            if isinstance(built, Output):
                want_structured_errors(built.format if built.structured else None)
        return command(**given)

    run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in shown}
    return run


_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")

#: Columns holding identifiers people copy into the next command: never wrapped or cut.
ID_COLUMNS = frozenset({"continuation", "request", "run", "run_id", "bundle", "digest", "commit"})


#: Narrowest a text column may get: its longest word, up to this many characters.
_MAX_WORD = 30


def _min_width(column: str, values: list[str]) -> int:
    """The width below which a column would break a word (or, for an id, the id)."""
    if column in ID_COLUMNS:
        return max([len(column), *(len(v) for v in values)])
    words = [len(word) for text in [column, *values] for word in text.split()]
    return min(max(words, default=1), _MAX_WORD)


def print_table(
    title: str,
    columns: list[str],
    rows: list[list[Any]],
    *,
    missing: str = "",
    optional: tuple[str, ...] = (),
) -> None:
    """A Rich table on stdout; ``None`` cells print as ``missing``.

    Identifier columns (:data:`ID_COLUMNS`) keep their full width on one line, so an id can be
    selected and pasted whole at 80 columns; other columns wrap at word boundaries, never
    narrower than their longest word. When the terminal is too narrow for that, the
    ``optional`` columns are left out, rightmost first, and the title says which
    (``-o json|yaml`` has everything). Timestamps print to the second.
    """
    from rich import box
    from rich.table import Table

    cells = [
        [missing if v is None else _ISO_TIME.sub(r"\1 \2\3", str(v)) for v in row] for row in rows
    ]
    screen = console()
    shown = list(range(len(columns)))
    minimum = {i: _min_width(columns[i], [row[i] for row in cells]) for i in shown}
    dropped: list[str] = []
    for name in reversed(optional):
        if sum(minimum[i] for i in shown) + 2 * (len(shown) - 1) <= screen.width:
            break
        if name in columns:
            shown.remove(columns.index(name))
            dropped.insert(0, name)
    if dropped:
        title += f" (not shown at this width: {', '.join(dropped)})"
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i in shown:
        if columns[i] in ID_COLUMNS:
            table.add_column(columns[i], no_wrap=True, min_width=minimum[i], overflow="ignore")
        else:  # Rich wraps at spaces; only a word wider than the screen is folded
            table.add_column(columns[i], overflow="fold")
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    screen.print(table)


def cells(record: Mapping[str, Any], *keys: str) -> list[Any]:
    """A table row's cells: these fields of ``record`` (a missing one prints as missing)."""
    return [record.get(key) for key in keys]


def next_page(listing: dict[str, Any]) -> str:
    """A table title's hint to a keyset listing's next page (empty on the last one)."""
    cursor = listing.get("next_cursor")
    return f"; next page: --cursor {cursor}" if cursor else ""


def fail(error: KneoError) -> int:
    if _error_format is not None:
        print_structured(error.to_dict(), _error_format)
    else:
        sys.stderr.write(f"error[{error.code}]: {redact_text(error.message)}\n")
        hint = hint_for(error)
        if hint:
            sys.stderr.write(f"hint: {redact_text(hint)}\n")
    return error.exit_code


def run_cli(app: typer.Typer) -> int:
    try:
        # With standalone_mode=False click returns a typer.Exit's code instead of raising it.
        result = app(standalone_mode=False)
        if isinstance(result, int):
            return result
    except KneoError as error:
        return fail(error)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # click usage errors and anything unexpected
        # Typer vendors its own click (``typer._click``), so match click's exceptions by
        # shape rather than by class: they carry ``exit_code`` and know how to ``show()``.
        if type(exc).__name__ == "Abort":
            sys.stderr.write("aborted\n")
            return 1
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        sys.stderr.write(f"error[internal_error]: {type(exc).__name__}: {redact_text(str(exc))}\n")
        return 1
    return 0


# --------------------------------------------------------------------------- lazy command groups


class LazyCommand:
    """Where a subcommand lives, imported only when that subcommand runs.

    ``attribute`` names a ``typer.Typer`` (added as a group) or a ``register(app)`` function
    (which adds its commands to the app it is given), in ``module``.
    """

    def __init__(self, module: str, attribute: str, help: str, *, register: bool = False) -> None:
        self.module, self.attribute, self.help, self.register = module, attribute, help, register

    def load(self, name: str) -> Any:
        from importlib import import_module

        from typer.main import get_group

        target = getattr(import_module(self.module), self.attribute)
        holder = typer.Typer(rich_markup_mode=None)  # plain help: see lazy_group
        if self.register:
            target(holder)
        else:
            holder.add_typer(target, name=name, help=self.help)
        return get_group(holder).commands[name]


def lazy_group(commands: dict[str, LazyCommand]) -> type:
    """A ``TyperGroup`` class whose extra ``commands`` load on first use.

    Help listings (``kneo --help``) show the static help text instead of importing every
    command module, which keeps startup fast; running a command imports just its module.
    Help is click's plain format (``rich_markup_mode=None``): Rich's help renderer costs
    ~0.1 s of imports per start, a third of the start-up budget. Command output still
    uses Rich.
    """
    import difflib

    from typer.core import TyperCommand, TyperGroup

    class LazyGroup(TyperGroup):
        _listing = False

        def list_commands(self, ctx: Any) -> list[str]:
            names = list(super().list_commands(ctx))
            return names + [n for n in commands if n not in names]

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            found = super().get_command(ctx, cmd_name)
            if found is not None or cmd_name not in commands:
                return found
            entry = commands[cmd_name]
            if self._listing:
                return TyperCommand(name=cmd_name, help=entry.help)
            command = entry.load(cmd_name)
            self.add_command(command, cmd_name)
            return command

        def resolve_command(self, ctx: Any, args: list[str]) -> Any:
            """Typer's "Did you mean" sees only loaded commands: this one sees them all."""
            name, names = (args[0] if args else ""), self.list_commands(ctx)
            if name and not name.startswith("-") and name not in names:
                found = difflib.get_close_matches(name, names)
                if found:
                    guesses = ", ".join(repr(n) for n in found)
                    ctx.fail(f"No such command {name!r}. Did you mean {guesses}?")
            return super().resolve_command(ctx, args)

        def format_help(self, ctx: Any, formatter: Any) -> None:
            self._listing = True
            try:
                super().format_help(ctx, formatter)
            finally:
                self._listing = False

    return LazyGroup
