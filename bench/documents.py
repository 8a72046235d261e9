"""The cost of reading a document through ``kneo.documents`` (limits, one reading per key).

    python bench/documents.py [--rounds 200] [--json]
    python bench/documents.py --instructions [--baseline /path/to/other/checkout]

Every YAML document the repository ships (example specs, eval suites, environment files)
and every JSON one (the example bundles, an inline spec as a request body carries it), each
parsed ``--rounds`` times; plus two synthetic documents that stress the per-mapping work:
2,000 small mappings in YAML and in JSON. Reported: microseconds per document (the best of 5
repeats), per group.

``--instructions`` counts instead (callgrind, as ``bench/instructions.py``: a figure the
machine's load does not move): per group, a process parsing every document of the group 12
times minus one parsing them twice (3 minus 1 for the synthetic ones), per document; with
``--baseline``, the same for another checkout's ``kneo`` on the same documents, and the
change. A few minutes; not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: the checkout whose ``kneo`` is measured (``--instructions --baseline`` sets it)
sys.path.insert(0, os.environ.get("BENCH_CHECKOUT") or str(REPO))

from kneo.documents import parse_json, parse_yaml  # noqa: E402


def _best_us(fn: Callable[[], Any], rounds: int, repeats: int = 5) -> float:
    fn()  # warm up (the first call imports PyYAML and compiles patterns)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


def _yaml_texts() -> dict[str, str]:
    paths = [
        *sorted((REPO / "examples").glob("*.yaml")),
        *sorted((REPO / "examples" / "evals").glob("*.yaml")),
        *sorted((REPO / "environments").glob("*.yaml")),
    ]
    return {str(p.relative_to(REPO)): p.read_text("utf-8") for p in paths}


def _json_texts(yaml_texts: dict[str, str]) -> dict[str, str]:
    bundles = sorted((REPO / "bundles").glob("*/*.json"))
    texts = {str(p.relative_to(REPO)): p.read_text("utf-8") for p in bundles}
    spec = parse_yaml(yaml_texts["examples/research_agent.yaml"], source="spec")
    texts["request body (inline spec)"] = json.dumps({"spec": spec, "input": "hello"})
    return texts


def _synthetic() -> tuple[str, str]:
    items = [{"id": i, "name": f"item-{i}", "tags": ["a", "b"], "on": True} for i in range(2000)]
    yaml_text = "items:\n" + "".join(
        f"  - {{id: {i}, name: item-{i}, tags: [a, b], on: true}}\n" for i in range(2000)
    )
    return yaml_text, json.dumps({"items": items})


def _groups() -> dict[str, tuple[list[str], Callable[..., Any]]]:
    yaml_texts = _yaml_texts()
    big_yaml, big_json = _synthetic()
    return {
        "yaml (repository documents)": (list(yaml_texts.values()), parse_yaml),
        "json (bundles, request body)": (list(_json_texts(yaml_texts).values()), parse_json),
        "yaml (2,000 mappings)": ([big_yaml], parse_yaml),
        "json (2,000 objects)": ([big_json], parse_json),
    }


def _parse_group(name: str, rounds: int) -> None:
    """The measured child of ``--instructions``: one group, ``rounds`` times, nothing else."""
    texts, parse = _groups()[name]
    for _ in range(rounds):
        for text in texts:
            parse(text, source="bench")


def instructions(baseline: Path | None) -> dict[str, dict[str, float]]:
    """Instructions per document per group, here and (with ``baseline``) there."""
    sys.path.append(str(REPO))
    from bench.instructions import _counted, child_env

    checkouts = {"this": REPO, **({"baseline": baseline} if baseline else {})}
    out: dict[str, dict[str, float]] = {}
    for name, (texts, _parse) in _groups().items():
        row: dict[str, float] = {"documents": len(texts)}
        for label, checkout in checkouts.items():
            env = child_env(checkout, REPO, BENCH_CHECKOUT=str(checkout))
            low, high = (1, 3) if len(texts) == 1 else (2, 12)
            counts = []
            for rounds in (low, high):
                args = [sys.executable, str(Path(__file__)), "--only", name]
                counts.append(_counted([*args, "--rounds", str(rounds)], REPO, env))
            row[label] = (counts[1] - counts[0]) / (high - low) / len(texts)
        if baseline:
            row["change_percent"] = (row["this"] / row["baseline"] - 1) * 100
        out[name] = row
    return out


def measure(rounds: int) -> dict[str, dict[str, float]]:
    yaml_texts = _yaml_texts()
    json_texts = _json_texts(yaml_texts)
    big_yaml, big_json = _synthetic()

    def group(texts: dict[str, str], parse: Callable[..., Any]) -> dict[str, float]:
        per = [_best_us(lambda t=t: parse(t, source="bench"), rounds) for t in texts.values()]
        return {
            "documents": len(per),
            "bytes_mean": sum(len(t) for t in texts.values()) / len(texts),
            "us_mean": sum(per) / len(per),
            "us_total": sum(per),
        }

    few = max(1, rounds // 20)
    return {
        "yaml (repository documents)": group(yaml_texts, parse_yaml),
        "json (bundles, request body)": group(json_texts, parse_json),
        "yaml (2,000 mappings)": {
            "documents": 1,
            "bytes_mean": len(big_yaml),
            "us_mean": _best_us(lambda: parse_yaml(big_yaml, source="bench"), few),
        },
        "json (2,000 objects)": {
            "documents": 1,
            "bytes_mean": len(big_json),
            "us_mean": _best_us(lambda: parse_json(big_json, source="bench"), few),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        _parse_group(args.only, args.rounds)
        return
    if args.instructions:
        counted = instructions(args.baseline)
        if args.json:
            print(json.dumps(counted, indent=2))
            return
        print(f"{'group':<32} {'docs':>5} {'this':>12} {'baseline':>12} {'change':>8}")
        for name, row in counted.items():
            base = f"{row['baseline']:>12.0f}" if "baseline" in row else f"{'-':>12}"
            change = f"{row['change_percent']:>+7.1f}%" if "change_percent" in row else ""
            print(f"{name:<32} {row['documents']:>5.0f} {row['this']:>12.0f} {base} {change}")
        return
    results = measure(args.rounds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'group':<32} {'docs':>5} {'mean bytes':>11} {'us/doc':>10}")
    for name, row in results.items():
        print(
            f"{name:<32} {row['documents']:>5.0f} {row['bytes_mean']:>11.0f} "
            f"{row['us_mean']:>10.1f}"
        )


if __name__ == "__main__":
    main()
