"""The CLI reference and the shared options: docs/cli_reference.md is generated from the Typer
app and must not drift from it; ``--json``, ``--service-url`` and ``--profile`` are declared once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kneo.cli import output
from kneo.cli.output import ClientOptions
from kneo.errors import NotFound

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    """Regenerate with: python docs/script/generate_reference_docs.py"""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "script" / "generate_reference_docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shared_options_are_declared_once() -> None:
    """``--json``, ``--profile``, ``--trusted-hmac-key-env`` and the client's ``--service-url``
    mean the same everywhere: one declaration each (``kneo.cli.output``), so their help and
    behaviour cannot drift."""
    sources = {p: p.read_text() for p in (ROOT / "kneo" / "cli").glob("*.py")}
    for flag in ('"--json"', '"--profile"', '"--trusted-hmac-key-env"'):
        assert [p.name for p, s in sources.items() if flag in s] == ["output.py"], flag
    declaring = sorted(p.name for p, s in sources.items() if '"--service-url"' in s)
    assert declaring == ["output.py", "profiles.py"]  # profiles: the URL a profile stores


def test_commands_take_the_shared_options_as_one_group() -> None:
    """``--json`` reaches a command only as :class:`~kneo.cli.output.Output` (and with
    ``--service-url``/``--profile`` as ``ClientOptions``): the commands never re-list them."""
    sources = {p.name: p.read_text() for p in (ROOT / "kneo" / "cli").glob("*.py")}
    for alias in ("JsonOpt", "OutputFormatOpt", "ProfileOpt", "want_structured_errors"):
        assert [n for n, s in sources.items() if alias in s] == ["output.py"], alias


def test_an_option_group_stands_in_place_for_its_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's options show where the command takes it; the command gets the group built
    from them, and its errors print as the JSON envelope under ``--json``."""
    monkeypatch.setattr(output, "_error_format", None)
    app = typer.Typer()
    seen: list[ClientOptions] = []

    @app.command()
    @output.options
    def show(
        name: str,
        opts: ClientOptions = ClientOptions(),
        last: bool = typer.Option(False, "--last"),
    ) -> None:
        """Shows NAME."""
        seen.append(opts)
        if name == "missing":
            raise NotFound("no such name")
        if not opts.printed_json({"name": name, "last": last}):
            typer.echo(f"name {name}")

    runner = CliRunner()
    help_text = runner.invoke(app, ["--help"]).output
    flags = [f for f in ("--json", "--service-url", "--profile", "--last") if f in help_text]
    assert flags == ["--json", "--service-url", "--profile", "--last"]
    assert [help_text.index(f) for f in flags] == sorted(help_text.index(f) for f in flags)
    assert "Shows NAME." in help_text

    done = runner.invoke(app, ["a", "--json", "--profile", "prod", "--last"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"name": "a", "last": True}
    assert seen[-1] == ClientOptions(as_json=True, service_url=None, profile="prod")
    assert seen[-1].remote and not ClientOptions().remote
    assert runner.invoke(app, ["b"]).output == "name b\n"

    with pytest.raises(NotFound):
        runner.invoke(app, ["missing", "--json"], catch_exceptions=False)
    assert output._error_format == "json"  # run_cli prints this error as the envelope
