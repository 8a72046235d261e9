"""Every run and human-task status a module writes comes from the lifecycle
(:mod:`kneo.lifecycle`): a ``status=`` argument, a ``"status":`` key or a ``[...]["status"] =``
assignment whose value names a run or task status (``"paused"``, ``TaskStatus.RESOLVED``)
without asking :func:`~kneo.lifecycle.transition` is a status change the lifecycle never
judged. Initial states (a run created ``queued``, a task ``pending``) are no change.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kneo.lifecycle import RunStatus, TaskStatus
from tests import source_tree

#: the words of both machines, as a literal would spell them
WORDS = frozenset(s.value for s in (*RunStatus, *TaskStatus))
#: what a status may be set to without a transition: a new run's or task's first state
INITIAL = frozenset({"QUEUED", "PENDING"})
#: calls whose ``status=`` filters a read (a listing, a count, a listing's query value such as
#: ``TaskQuery``), not a write
READS = ("list_", "count_")
QUERY = "Query"
#: the lifecycle's own functions: what they return was judged
JUDGED = frozenset({"transition", "hand_off", "take_over", "request_status"})
#: where runs and tasks are written
SCANNED = ("platform", "controller", "store")
#: other machines whose words overlap these, declared (module, word)
OTHER_MACHINES: set[tuple[str, str]] = {
    ("kneo/controller/rollouts.py", "paused"),  # a rollout's
    ("kneo/store/coordination/controller_requests.py", "queued"),  # a controller request's
    ("kneo/store/coordination/controller_requests.py", "running"),
    ("kneo/store/coordination/queue_and_locks.py", "queued"),  # a queue record's
    ("kneo/store/coordination/queue_and_locks.py", "failed"),
    ("kneo/store/transaction.py", "queued"),
    ("kneo/store/outbox/a2a_push.py", "pending"),  # a delivery's
    ("kneo/store/outbox/notifications.py", "pending"),
}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _unjudged(value: ast.expr) -> list[str]:
    """The status words in ``value`` outside a call of the lifecycle."""
    found: list[str] = []
    stack: list[ast.AST] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call) and _name(node.func) in JUDGED:
            continue
        if isinstance(node, ast.Constant) and node.value in WORDS:
            found.append(str(node.value))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("RunStatus", "TaskStatus")
            and node.attr not in INITIAL
        ):
            found.append(f"{node.value.id}.{node.attr}")
        stack.extend(ast.iter_child_nodes(node))
    return found


def _reads(name: str) -> bool:
    return name.startswith(READS) or name.endswith(QUERY)


def status_writes(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, word)`` of each status written in ``tree`` without the lifecycle."""
    values: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not _reads(_name(node.func)):
            values += [k.value for k in node.keywords if k.arg == "status"]
        elif isinstance(node, ast.Dict):
            values += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "status"
            ]
        elif isinstance(node, ast.Assign):
            values += [
                node.value
                for t in node.targets
                if isinstance(t, ast.Subscript)
                and isinstance(t.slice, ast.Constant)
                and t.slice.value == "status"
            ]
    handed = [
        (v.lineno, "RunStatus.HANDED")  # never stored, judged or not: hand_off moves a run there
        for v in values
        for n in ast.walk(v)
        if isinstance(n, ast.Attribute) and n.attr == "HANDED"
    ]
    return sorted([(v.lineno, word) for v in values for word in _unjudged(v)] + handed)


def _scanned() -> list[Path]:
    roots = [source_tree.PACKAGE / name for name in SCANNED]
    history = source_tree.PACKAGE / "store" / "migrations"  # what earlier versions wrote
    return [
        p
        for p in source_tree.package_files()
        if any(r in p.parents for r in roots) and history not in p.parents
    ]


def test_run_and_task_statuses_are_written_through_the_lifecycle() -> None:
    found = []
    for path in _scanned():
        rel = str(path.relative_to(source_tree.ROOT))
        for line, word in status_writes(source_tree.parsed(path)):
            if (rel, word) not in OTHER_MACHINES:
                found.append(f"{rel}:{line}: status {word!r}")
    assert found == [], "write statuses through kneo.lifecycle.transition:\n" + "\n".join(found)


def test_the_scan_finds_a_planted_write() -> None:
    planted = ast.parse(
        'tx.update_run(rid, status="paused")\n'
        'changes = {"status": RunStatus.FAILED}\n'
        'entry["status"] = "resolved"\n'
        "tx.put_continuation(cid, status=transition(c.status, TaskStatus.RESOLVED))\n"
        "tx.put_continuation(cid, status=TaskStatus.PENDING)\n"
        "tx.update_run(rid, status=transition(run.status, RunStatus.HANDED))\n"
        'store.tasks.list_continuations(status="pending")\n'
        'store.tasks.list_continuations(TaskQuery(status="pending"))\n'
    )
    assert status_writes(planted) == [
        (1, "paused"),
        (2, "RunStatus.FAILED"),
        (3, "resolved"),
        (6, "RunStatus.HANDED"),
    ]
