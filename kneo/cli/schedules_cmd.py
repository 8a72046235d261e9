"""``kneo schedules``: the schedules the project's active bundles declare (list, get) and
what people do with them (pause, resume, trigger).

Through the service when one is in effect (its ``/v1/schedules`` routes, as the caller its
key names), else over the project's own store (as ``--actor``, default the OS user). The
output is the routes' JSON shape either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import typer

from kneo.cli.client import LocalClient
from kneo.cli.controller_cmd import ActorOpt, actor_name
from kneo.cli.output import ClientOptions, console, options, print_table
from kneo.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True, help="Schedules declared by active bundles")

EnvArg = typer.Option(..., "--env", help="The environment the bundle is active in")


def _call(
    opts: ClientOptions, method: str, path: str, local: str, *args: object, actor: str | None = None
) -> Any:
    """The service's route ``path``, or :mod:`kneo.platform.schedule_ops` ``local`` on
    the project's own platform."""
    client = opts.client()
    try:
        if not isinstance(client, LocalClient):  # the HTTP client: the service audits the caller
            if actor is not None:
                raise InvalidRequest(
                    "--actor is for the local store: the service records the caller its key names",
                    field="actor",
                )
            return client.request(method, path)
        from kneo.platform import schedule_ops  # the store and controller: local only

        call = getattr(schedule_ops, local)
        if local in ("set_paused", "trigger"):
            return call(client.manager, *args, actor=actor_name(actor))
        return call(client.manager, *args)
    finally:
        client.close()


def _path(bundle: str, env: str, name: str) -> str:
    return "/v1/schedules/" + "/".join(quote(p, safe="") for p in (bundle, env, name))


@app.command("list")
@options
def list_cmd(
    env: str | None = typer.Option(None, "--env"), opts: ClientOptions = ClientOptions()
) -> None:
    """Every schedule of the active revisions, with its last and next tick."""
    query = f"?environment={quote(env, safe='')}" if env else ""
    data = _call(opts, "GET", "/v1/schedules" + query, "list_schedules", env)
    items = data["schedules"] if isinstance(data, dict) else data
    if opts.printed_json({"schedules": items, "count": len(items)}):
        return
    print_table(
        f"schedules ({len(items)})",
        ["bundle", "env", "name", "when", "paused", "last tick", "next tick"],
        [
            [
                s["bundle"],
                s["environment"],
                s["name"],
                _when(s["definition"]),
                "yes" if s["paused"] else "no",
                s["last_tick"] or "-",
                s["next_tick"],
            ]
            for s in items
        ],
        missing="-",
    )


def _when(definition: dict[str, Any]) -> str:
    if definition.get("cron"):
        return f"{definition['cron']} ({definition.get('timezone', 'UTC')})"
    return f"every {definition['every_seconds']}s"


@app.command("get")
@options
def get_cmd(
    bundle: str, name: str, env: str = EnvArg, opts: ClientOptions = ClientOptions()
) -> None:
    """One schedule and its latest ticks."""
    data = _call(opts, "GET", _path(bundle, env, name), "get_schedule", (bundle, env, name))
    if opts.printed_json(data):
        return
    console().print(
        f"{data['bundle']}/{data['environment']}/{data['name']}: {_when(data['definition'])}, "
        f"next {data['next_tick']}{' (paused)' if data['paused'] else ''}"
    )
    print_table(
        "ticks",
        ["tick", "status", "run", "detail"],
        [[t["tick"], t["status"], t["run_id"], t["detail"]] for t in data["ticks"]],
        missing="-",
    )


def _change(opts: ClientOptions, verb: str, key: tuple[str, str, str], actor: str | None) -> Any:
    local, args = (
        ("trigger", (key,)) if verb == "trigger" else ("set_paused", (key, verb == "pause"))
    )
    return _call(opts, "POST", _path(*key) + "/" + verb, local, *args, actor=actor)


def _change_command(verb: str, help_text: str, said: Callable[[str, dict[str, Any]], str]) -> None:
    """Register ``kneo schedules VERB BUNDLE NAME --env ENV``: the change ``verb`` (pause,
    resume or trigger) of one schedule, then ``said(key, answer)`` printed (or the answer as
    JSON). A trigger that started no run exits 1."""

    @app.command(verb, help=help_text)
    @options
    def change_cmd(
        bundle: str,
        name: str,
        env: str = EnvArg,
        actor: str | None = ActorOpt,
        opts: ClientOptions = ClientOptions(),
    ) -> None:
        data = _change(opts, verb, (bundle, env, name), actor)
        if not opts.printed_json(data):
            console().print(said(f"{bundle}/{env}/{name}", data))
        if verb == "trigger" and data["status"] != "started":
            raise typer.Exit(1)


_change_command(
    "pause", "Hold the schedule's ticks until it is resumed.", lambda key, _: f"paused {key}"
)
_change_command(
    "resume",
    "Let the schedule tick again, from now (held ticks are not caught up).",
    lambda key, data: f"resumed {key}; next tick {data['next_tick']}",
)
_change_command(
    "trigger",
    "Queue one run of the schedule now.",
    lambda _, data: f"{data['status']}: run {data['run_id'] or '-'}",
)
