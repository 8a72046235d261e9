"""OpenTelemetry spans, captured with the SDK's in-memory exporter in real processes.

One process starts a run that pauses for a tool-call approval; another resumes it over HTTP.
Checked: span names, the parent/child chain (HTTP → run → step → model call / tool call,
the human pause under the step that asked), GenAI attributes, the resumed run's link to the
pause in the first process's trace, and that secrets planted in the input, the tool's result
and a step's error appear in no attribute even with argument and result recording on. Also:
tracing off loads neither OpenTelemetry nor prometheus-client in a one-shot run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: The run's and the agent step's spans (GenAI semantic conventions' names)
RUN, AGENT = "invoke_workflow leaky", "invoke_agent vaulter"
SECRETS = ("in-PLANTED-1111", "result-PLANTED-3333", "err-PLANTED-4444")

TOOLS = """
def vault_read(args):
    return "the vault says password=result-PLANTED-3333 for " + str(args.get("query"))


def leak(text):
    raise RuntimeError("vault refused: secret=err-PLANTED-4444 while handling " + text)
"""

SPEC = {
    "version": "v1",
    "agent": {
        "name": "vaulter",
        "system_prompt": "Read the vault.",
        "tools": ["vault_read"],
        "approval_required": ["vault_read"],
        "model": {
            "provider": "dummy",
            "name": "scripted-1",
            "script": [
                {"tool_calls": [{"name": "vault_read", "arguments": {"query": "{input}"}}]},
                {"text": "found {last_tool_result}"},
            ],
        },
    },
    "workflow": {
        "type": "sequential",
        "name": "leaky",
        "steps": [
            {"id": "read", "kind": "agent", "ref": "vaulter"},
            {"id": "fail", "kind": "function", "ref": "leakytools:leak"},
        ],
    },
    "components": {
        "tools": {
            "vault_read": {
                "description": "Read the vault.",
                "implementation": "leakytools:vault_read",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            }
        }
    },
}

#: Runs one phase with an in-memory exporter installed before Kneo turns tracing on; prints
#: the phase's result and every finished span as JSON.
PHASE = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

settings = Settings.from_env()
if sys.argv[1] == "start":
    from kneo import tracing

    tracing.configure(settings)
    manager = create_platform(settings, ProjectContext.discover(settings=settings))
    result = manager.run_from_spec(input_text=sys.argv[2], spec_path="leaky.yaml")
    out = {"continuation_id": result.continuation_id, "request_id": result.request_id}
else:
    from starlette.testclient import TestClient
    from kneo.service import create_app

    with TestClient(create_app(settings=settings, start_worker=False)) as client:
        response = client.post(
            f"/v1/human-tasks/{sys.argv[2]}/resume",
            json={"request_id": sys.argv[3], "decision": "approved"},
        )
    out = {"status": response.json()["status"]}
out["spans"] = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
print(json.dumps(out))
"""


def _phase(project: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO", "OTEL"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(project), str(REPO)]),
        KNEO_SERV_DATABASE_URL=f"sqlite:///{project / 'runs.sqlite'}",
        KNEO_SERV_OTEL_ENABLED="true",
        KNEO_SERV_OTEL_RECORD_ARGUMENTS="true",
        KNEO_SERV_OTEL_RECORD_RESULTS="true",
        KNEO_SERV_REQUEST_LOGS="false",
    )
    proc = subprocess.run(
        [sys.executable, "-c", PHASE, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def _by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans}


def _parent(span: dict[str, Any]) -> str | None:
    return span.get("parent_id")


def test_spans_parents_the_resume_link_and_no_planted_secret(tmp_path: Path) -> None:
    (tmp_path / "leakytools.py").write_text(TOOLS)
    (tmp_path / "leaky.yaml").write_text(json.dumps(SPEC))

    started = _phase(tmp_path, "start", "use password=in-PLANTED-1111 please")
    first = _by_name(started["spans"])
    assert set(first) == {RUN, "step read", AGENT, "chat scripted-1", "human pause"}
    run, step, agent, chat, pause = (
        first[n] for n in (RUN, "step read", AGENT, "chat scripted-1", "human pause")
    )
    assert _parent(run) is None
    assert _parent(step) == run["context"]["span_id"]
    assert _parent(agent) == step["context"]["span_id"]
    assert _parent(chat) == agent["context"]["span_id"]
    assert _parent(pause) == step["context"]["span_id"]  # the step that asked
    assert len({s["context"]["trace_id"] for s in started["spans"]}) == 1
    assert chat["attributes"]["gen_ai.provider.name"] == "dummy"
    assert "gen_ai.system" not in chat["attributes"]  # the deprecated name
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert chat["attributes"]["gen_ai.request.model"] == "scripted-1"
    assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert "gen_ai.usage.output_tokens" in chat["attributes"]
    assert run["attributes"]["kneo.run.status"] == "paused"
    assert pause["attributes"]["kneo.human.kinds"] == ["tool_approval"]

    resumed = _phase(tmp_path, "resume", started["continuation_id"], str(started["request_id"]))
    assert resumed["status"] == "failed"  # the second step raises
    second = _by_name(resumed["spans"])
    http = second["POST /v1/human-tasks/{continuation_id}/resume"]
    run2, step2, tool = second[RUN], second["step read"], second["execute_tool vault_read"]
    agent2, failed = second[AGENT], second["step fail"]
    assert http["kind"] == "SpanKind.SERVER"
    assert http["attributes"]["http.route"] == "/v1/human-tasks/{continuation_id}/resume"
    assert _parent(step2) == run2["context"]["span_id"]
    assert _parent(agent2) == step2["context"]["span_id"]
    assert _parent(tool) == agent2["context"]["span_id"]
    assert _parent(second["chat scripted-1"]) == agent2["context"]["span_id"]
    assert _parent(failed) == run2["context"]["span_id"]
    assert failed["status"]["status_code"] == "ERROR"
    assert run2["status"]["status_code"] == "ERROR"
    assert tool["attributes"]["gen_ai.tool.name"] == "vault_read"
    assert tool["attributes"]["kneo.tool.status"] == "ok"
    # recording is on: the arguments and the result are there, redacted
    assert "[REDACTED]" in tool["attributes"]["kneo.tool.arguments"]
    assert "the vault says" in tool["attributes"]["kneo.tool.result"]
    # one trace across the wait: the resumed run continues the first process's trace under
    # its pause and links to it, and to the request that resumed it
    assert _parent(run2) == pause["context"]["span_id"]
    assert run2["context"]["trace_id"] == pause["context"]["trace_id"] == run["context"]["trace_id"]
    to_pause, to_request = run2["links"]
    assert to_pause["context"]["span_id"] == pause["context"]["span_id"]
    assert to_pause["attributes"] == {"kneo.link": "resumed_from"}
    assert to_request["context"]["span_id"] == http["context"]["span_id"]
    assert to_request["attributes"] == {"kneo.link": "resumed_by"}

    everything = json.dumps([started["spans"], resumed["spans"]])
    for secret in SECRETS:
        assert secret not in everything


def test_tracing_and_metrics_off_load_neither_library(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from kneo.platform import create_platform\n"
        "from kneo.settings import Settings\n"
        "from kneo.spec.project import ProjectContext\n"
        "s = Settings.from_env()\n"
        "m = create_platform(s, ProjectContext.discover(settings=s))\n"
        "r = m.run_from_spec(input_text='x', spec_path=sys.argv[1])\n"
        "print(json.dumps([r.status, sorted({n.split('.')[0] for n in sys.modules})]))\n"
    )
    (tmp_path / "upper.py").write_text("def up(text):\n    return text.upper()\n")
    spec = {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "plain",
            "steps": [{"id": "up", "kind": "function", "ref": "upper:up"}],
        },
    }
    (tmp_path / "plain.yaml").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        KNEO_SERV_DATABASE_URL=f"sqlite:///{tmp_path / 'runs.sqlite'}",
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "plain.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, modules = json.loads(proc.stdout.splitlines()[-1])
    assert status == "succeeded"
    assert "opentelemetry" not in modules and "prometheus_client" not in modules


#: ``kneo`` itself, with an in-memory exporter installed first; the finished spans are
#: written to ``KNEO_TEST_SPANS`` when the command exits.
CLI = """
import atexit, json, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


@atexit.register
def dump():
    with open(os.environ["KNEO_TEST_SPANS"], "w") as out:
        json.dump([json.loads(s.to_json()) for s in exporter.get_finished_spans()], out)


from kneo.cli.main import main

main()
"""


def _kneo(project: Path, *args: str) -> tuple[Any, list[dict[str, Any]]]:
    """``kneo ARGS --json`` with tracing on: its output and the spans it finished."""
    spans = project / "spans.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO", "OTEL"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(project), str(REPO)]),
        KNEO_SERV_OTEL_ENABLED="true",
        KNEO_TEST_SPANS=str(spans),
    )
    proc = subprocess.run(
        [sys.executable, "-c", CLI, *args, "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: the run failed
    return json.loads(proc.stdout), json.loads(spans.read_text())


def test_kneo_run_and_a_local_resume_are_traced(tmp_path: Path) -> None:
    """The CLI runs steps in its own process: ``kneo run`` and ``kneo human resume`` (local,
    no service) trace them like the service and workers, the resume linked to the pause."""
    (tmp_path / "leakytools.py").write_text(TOOLS)
    (tmp_path / "leaky.yaml").write_text(json.dumps(SPEC))
    paused, spans = _kneo(tmp_path, "run", "leaky.yaml", "-i", "hello")
    assert paused["status"] == "paused"
    first = _by_name(spans)
    assert set(first) == {RUN, "step read", AGENT, "chat scripted-1", "human pause"}
    assert _parent(first["chat scripted-1"]) == first[AGENT]["context"]["span_id"]
    assert first["chat scripted-1"]["attributes"]["gen_ai.usage.input_tokens"] > 0

    done, spans = _kneo(
        tmp_path,
        "human",
        "resume",
        paused["continuation_id"],
        "--request-id",
        paused["request_id"],
        "--approve",
    )
    assert done["status"] == "failed"  # the second step raises
    second = _by_name(spans)
    assert {RUN, "step read", "execute_tool vault_read", "step fail"} <= set(second)
    # no HTTP request around it here: the pause's trace goes on, linked to the pause only
    assert _parent(second[RUN]) == first["human pause"]["context"]["span_id"]
    [link] = second[RUN]["links"]
    assert link["context"]["span_id"] == first["human pause"]["context"]["span_id"]
