"""``kneo eval run SPEC --suite FILE``: run an eval suite through the engine, offline.

Exit codes: 0 when the pass rate reaches the threshold, 1 when it does not, 2 for usage.

``eval run`` and ``eval sign`` need different halves, imported in the command:
:mod:`kneo.evals.runner` and its suite and report (+0.54 s: the engine, the platform,
SQLAlchemy) and :mod:`kneo.bundle` with the signing keys (+0.14 s, cryptography).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kneo.cli.files import write_atomic
from kneo.cli.output import (
    FileOutput,
    Output,
    SigningKeyEnvOpt,
    SigningKeyFileOpt,
    SigningKeyIdOpt,
    console,
    options,
    print_table,
    progress_bar,
)
from kneo.documents import load_json_file
from kneo.errors import InvalidRequest
from kneo.kernel import Operator, run_process

if TYPE_CHECKING:
    from kneo.evals.report import Comparison
    from kneo.evals.suite import EvalSuite

app = typer.Typer(help="Evaluate specs against suites", no_args_is_help=True)


#: the one program ``kneo eval --baseline`` runs: the operator's own ``git``
_GIT = Operator.of(programs=("git",))


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return run_process(_GIT, ["git", *args], path="git", cwd=cwd, capture_output=True, check=False)


@contextmanager
def _spec_at(spec_path: Path, ref: str, environment: str | None) -> Any:
    """``spec_path`` (and its ``environment`` overlay) as they were at Git ``ref``, written
    beside the original (so references resolve alike); removed afterwards."""
    import shutil

    folder = spec_path.resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if top.returncode != 0:
        raise InvalidRequest(
            f"--baseline {ref}: {spec_path} is not in a Git checkout (give a results JSON file "
            "from --results instead)",
            field="baseline",
        )
    root = Path(top.stdout.decode().strip())
    stem = spec_path.name.split(".")[0]
    names = [spec_path.name] + ([f"{stem}.{environment}.yaml"] if environment else [])
    scratch = Path(tempfile.mkdtemp(prefix=".kneo-baseline-", dir=folder))
    try:
        for name in names:
            relative = (folder / name).relative_to(root).as_posix()
            shown = _git(["show", f"{ref}:{relative}"], root)
            if shown.returncode != 0:
                if name == spec_path.name:
                    raise InvalidRequest(
                        f"--baseline {ref}: {relative} does not exist at that revision "
                        f"({shown.stderr.decode().strip()})",
                        field="baseline",
                    )
                continue  # no overlay at that revision
            (scratch / name).write_bytes(shown.stdout)
        yield scratch / spec_path.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_baseline(ref: str, spec_path: Path) -> None:
    """A results file that exists, or a Git ref that names a commit."""
    if Path(ref).suffix == ".json":
        if not Path(ref).is_file():
            raise InvalidRequest(f"--baseline {ref}: no such results file", field="baseline")
        return
    found = _git(
        ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], spec_path.resolve().parent
    )
    if found.returncode != 0:
        raise InvalidRequest(
            f"--baseline {ref}: not a commit in the spec's Git checkout (nor a .json results file)",
            field="baseline",
        )


def _baseline(
    ref: str, spec_path: Path, environment: str | None, suite: EvalSuite, workers: int
) -> dict[str, Any]:
    """The baseline result: a results JSON file, or the suite run on the spec at a Git ref."""
    from kneo.evals.runner import run_suite

    candidate = Path(ref)
    if candidate.suffix == ".json" and candidate.is_file():
        data = load_json_file(candidate, what="eval results")
        return dict(data) if isinstance(data, dict) else {}
    with _spec_at(spec_path, ref, environment) as old:
        return run_suite(suite, old, environment=environment, workers=workers).to_dict()


@app.command("run")
@options
def run_command(
    spec_path: Path = typer.Argument(..., help="The spec to evaluate"),
    suite_path: Path = typer.Option(..., "--suite", help="Eval suite YAML file"),
    env: str | None = typer.Option(None, "--env", help="Resolve the spec for this environment"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=32, help="Cases run at once (default: CPUs, at most 4)"
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Pass rate needed (default: the suite's)"
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here"),
    markdown: Path | None = typer.Option(None, "--markdown", help="Write a markdown summary"),
    results: Path | None = typer.Option(
        None, "--results", help="Write the result JSON here (what `bundle sign --evals` attaches)"
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Compare with this Git ref of the spec, or a results JSON file",
    ),
    out: Output = Output(),
) -> None:
    """Run the suite's cases through the engine in an isolated store."""
    from kneo.evals.report import compare, junit_xml, markdown_summary
    from kneo.evals.runner import DEFAULT_WORKERS, run_suite
    from kneo.evals.suite import load_suite

    workers = workers or DEFAULT_WORKERS
    suite = load_suite(suite_path)
    if baseline is not None:
        _check_baseline(baseline, spec_path)  # before the suite runs, not after
    if threshold is not None:
        suite = suite.model_copy(update={"pass_threshold": threshold})
    show = not out.structured and sys.stderr.isatty()
    outcome = _with_progress(suite, spec_path, env, workers) if show else None
    result = outcome or run_suite(suite, spec_path, environment=env, workers=workers)
    document = result.to_dict()
    comparison = None
    if baseline is not None:
        comparison = compare(
            document, _baseline(baseline, spec_path, result.environment, suite, workers)
        )
        document["baseline"] = {"ref": baseline, **comparison.to_dict()}
    if junit is not None:
        junit.write_text(junit_xml(document), encoding="utf-8")
    if markdown is not None:
        markdown.write_text(markdown_summary(document, comparison), encoding="utf-8")
    if results is not None:
        results.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if not out.printed_json(document):
        _print(document, comparison)
    if not result.ok:
        raise typer.Exit(1)


@app.command("sign")
@options
def sign_command(
    bundle_path: Path = typer.Option(..., "--bundle", help="The signed bundle the results are for"),
    evals: list[Path] = typer.Option(
        ..., "--evals", help="Eval result (kneo eval run --results FILE) to record (repeatable)"
    ),
    recorded_by: str = typer.Option(..., "--recorded-by", help="Who ran the suite (a CI job)"),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="File to write (default: evals/<environment>.json beside the bundle)",
    ),
    key_env: SigningKeyEnvOpt = None,
    key_file: SigningKeyFileOpt = None,
    key_id: SigningKeyIdOpt = None,
    out: FileOutput = FileOutput(),
) -> None:
    """Sign eval results for a bundle's digest, to commit beside it: the controller counts
    them for require_evals as it counts results signed into the bundle."""
    from kneo.bundle import parse_bundle
    from kneo.bundle.eval_results import dump_eval_results, sign_eval_results
    from kneo.cli.signing import (
        attestation_file,
        now,
        read_bundle_bytes,
        signing_key,
    )

    key = signing_key(key_env, key_file, key_id)
    bundle, _ = parse_bundle(read_bundle_bytes(bundle_path))
    attested = [attestation_file(path) for path in evals]
    results = sign_eval_results(bundle, attested, key, recorded_by=recorded_by, recorded_at=now())
    target = output or bundle_path.parent / "evals" / f"{bundle.environment}.json"
    write_atomic(target, dump_eval_results(results))
    summary = {
        "output": str(target),
        "name": bundle.name,
        "environment": bundle.environment,
        "digest": bundle.digest,
        "evals": [
            {"suite": a.suite, "pass_rate": a.pass_rate, "passed": a.passed, "total": a.total}
            for a in attested
        ],
    }
    if not out.printed_json(summary):
        suites = ", ".join(f"{a.suite} {a.pass_rate:.0%}" for a in attested)
        typer.echo(f"signed {target}: {bundle.name} for {bundle.environment}, {suites}")


def _with_progress(suite: EvalSuite, spec_path: Path, env: str | None, workers: int) -> Any:
    """The run with a progress bar on stderr (terminals only)."""
    from kneo.evals.runner import run_suite

    with progress_bar("[bold]{task.description}") as bar:
        task = bar.add_task(f"eval {suite.suite}", total=len(suite.cases))
        return run_suite(
            suite,
            spec_path,
            environment=env,
            workers=workers,
            on_case=lambda _case: bar.advance(task),
        )


def _print(document: dict[str, Any], comparison: Comparison | None) -> None:
    newly = set(comparison.newly_failing) if comparison is not None else set()
    rows = []
    for case in document["cases"]:
        outcome = "pass" if case["outcome"] == "passed" else "FAIL"
        if case["id"] in newly:
            outcome += " (new)"
        usage = case.get("usage") or {}
        tokens = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
        why = "; ".join(case.get("failures") or [])
        rows.append([case["id"], outcome, case["status"], tokens, why])
    print_table(
        f"suite {document['suite']} against {document['spec_path']}",
        ["case", "outcome", "status", "tokens", "why"],
        rows,
    )
    err = console(stderr=True)
    verdict = "passed" if document["ok"] else "failed"
    err.print(
        f"{verdict}: {document['passed']}/{document['total']} cases "
        f"({document['pass_rate']:.0%}, threshold {document['pass_threshold']:.0%}), "
        f"digest {document['digest']}",
        markup=False,
    )
    if comparison is not None:
        for label, names in (
            ("newly failing", comparison.newly_failing),
            ("newly passing", comparison.newly_passing),
        ):
            if names:
                err.print(f"{label}: {', '.join(names)}", markup=False)
