"""``kneo run --interactive`` and ``kneo human resume --interactive`` in a real pseudo-terminal
(the stdlib ``pty``): the CLI asks for typed input field by field, then the agent's question,
and the run finishes; stop answering and the run stays paused, durably, for anyone to resume.
Through a service, the answers go through its ordinary resume route, with the key's role.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.e2e.doc_walk import free_port, project_copy, reader_env, serving
from tests.e2e.test_reset_and_init import kneo

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command attached to a pseudo-terminal: read until a text shows, type a line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 60) -> str:
        """Everything shown until ``text`` appears (ANSI styling removed)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r} in:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the other end closed: the command exited
                chunk = b""
            if not chunk:
                assert text in self.seen, f"exited before {text!r}:\n{self.seen}"
                break
            self.seen += ANSI.sub("", chunk.decode("utf-8", "replace")).replace("\r", "")
        shown, _, self.seen = self.seen.partition(text)
        return shown + text

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        rest = ""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None or select.select([self.master], [], [], 0)[0]:
            assert time.monotonic() < deadline, rest
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                rest += ANSI.sub("", chunk.decode("utf-8", "replace")).replace("\r", "")
        os.close(self.master)
        return self.proc.wait(timeout=timeout), self.seen + rest


def test_run_interactive_answers_typed_input_then_a_question(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    term = Terminal(
        ["kneo", "run", "examples/hitl_terminal.yaml", "-i", "launch", "--interactive"],
        project,
        reader_env(tmp_path),
    )
    shown = term.expect("threshold (Minimum score) [number]: ")
    # progress on the terminal, then the request: the gate asks before the step runs
    assert re.search(r"run run_\S+\n  paused at process\n", shown), shown
    assert "paused: input request req_" in shown and "Parameters for processing" in shown
    term.type("high")  # not a number: asked again
    term.expect("threshold must be a number")
    term.expect("threshold (Minimum score) [number]: ")
    term.type("0.8")
    term.expect("mode [string, optional] [strict/lenient]: ")
    term.type("strict")
    shown = term.expect("answer: ")
    assert "paused: question request" in shown
    assert "What suffix should I add before publishing?" in shown
    term.type("(v2)")
    code, rest = term.finish()
    assert code == 0, rest
    assert "Published: Processed 'launch' with" in rest and "(v2)" in rest
    assert '"threshold": 0.8' in rest and '"mode": "strict"' in rest
    assert "succeeded run_id=run_" in rest
    run_id = re.search(r"succeeded run_id=(\S+)", rest).group(1)  # type: ignore[union-attr]
    audit = json.loads(kneo(project, "audit", "list", "--run-id", run_id, "--json").stdout)
    decisions = [e for e in audit["events"] if e["event_type"] == "human.decision"]
    assert len(decisions) == 2  # each answer went through the durable resume, audited


def test_stopping_leaves_the_run_paused_and_resume_interactive_finishes_it(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path / "project")
    env = reader_env(tmp_path)
    term = Terminal(
        ["kneo", "run", "examples/hitl_terminal.yaml", "-i", "launch", "--interactive"],
        project,
        env,
    )
    term.expect("threshold (Minimum score) [number]: ")
    os.write(term.master, b"\x04")  # end of input: the person walks away
    code, rest = term.finish()
    assert code == 0, rest
    assert "stopped: the run stays paused; resume later with: kneo human resume cont_" in rest
    continuation = re.search(r"kneo human resume (cont_\w+) --interactive", rest).group(1)  # type: ignore[union-attr]
    task = json.loads(kneo(project, "human", "get", continuation, "--json").stdout)
    assert [r["status"] for r in task["requests"]] == ["pending"]

    term = Terminal(["kneo", "human", "resume", continuation, "--interactive"], project, env)
    term.expect("threshold (Minimum score) [number]: ")
    term.type("2")
    term.expect("mode [string, optional] [strict/lenient]: ")
    term.type("")  # optional: left out
    term.expect("answer: ")
    term.type("done")
    code, rest = term.finish()
    assert code == 0, rest
    assert "Published: Processed 'launch' with {\"threshold\": 2} done" in rest


def test_through_the_service_an_operator_key_leaves_the_pause_for_a_reviewer(
    tmp_path: Path,
) -> None:
    """The quickstart's two keys: the operator's ``kneo run --interactive`` starts the run and
    asks, but its answer is refused (operators don't decide); the CLI says the run is still
    paused and how to resume it. The reviewer's ``kneo human resume --interactive`` answers."""
    project = project_copy(tmp_path / "project")
    env = reader_env(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = (
        "export KNEO_SERV_AUTH_ENABLED=true\n"
        "export KNEO_SERV_API_KEYS='operator:operator-token:operator;"
        "reviewer:reviewer-token:reviewer'\n"
        f"kneo service serve --host 127.0.0.1 --port {port}"
    )
    spec = "examples/human_approval_workflow.yaml"
    with serving(serve, project, env, port):
        term = Terminal(
            ["kneo", "run", spec, "-i", "launch", "--interactive", "--service-url", url],
            project,
            {**env, "KNEO_SERV_API_KEY": "operator-token"},
        )
        shown = term.expect("decision [approve/reject/edit] (approve): ")
        assert "paused: approval request req_" in shown and "Approve the draft?" in shown
        term.type("approve")
        code, rest = term.finish()
        assert code == 1, rest
        found = re.search(
            r"not answered: the run stays paused; resume later with: "
            r"kneo human resume (cont_\w+) --interactive with a key that may decide\n"
            r"error\[forbidden\]: Missing required scope: human:write",
            rest,
        )
        assert found, rest
        continuation = found.group(1)

        term = Terminal(
            ["kneo", "human", "resume", continuation, "--interactive", "--service-url", url],
            project,
            {**env, "KNEO_SERV_API_KEY": "reviewer-token"},
        )
        term.expect("decision [approve/reject/edit] (approve): ")
        term.type("approve")
        code, rest = term.finish()
        assert code == 0, rest
        assert "succeeded run_id=run_" in rest
        assert "operator-token" not in rest and "reviewer-token" not in rest
    audit = json.loads(kneo(project, "audit", "list", "--json").stdout)
    decided = [e for e in audit["events"] if e["event_type"] == "human.decision"]
    assert [(e["actor"], e["payload"]["decision"]) for e in decided] == [("reviewer", "approved")]
