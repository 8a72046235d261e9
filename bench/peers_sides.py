"""The sides of ``bench/peers.py``: each a child script (a loop answering the driver) and a
fresh-process resume script, as text, run by the benchmark environment's Python.

Every child takes ``URL ROOT``, builds its scenarios, warms up, prints nothing until asked;
each answer is one JSON line. Not part of the test run.
"""

from __future__ import annotations

#: What every child shares: the answer loop and the bytes of a database.
COMMON = r'''
import json, os, sqlite3, sys, time
URL, ROOT = sys.argv[1], sys.argv[2]

def db_bytes(live=False):
    """The database's bytes; ``live``: after ``VACUUM FULL`` (PostgreSQL), so dead row
    versions that a vacuum would make reusable are not counted."""
    if URL.startswith("sqlite"):
        path = URL.split("///", 1)[1]
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        return os.path.getsize(path)
    import psycopg
    with psycopg.connect(URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
        if live:
            c.execute("VACUUM FULL")
        return int(c.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'").fetchone()[0])

def timed(fn, n):
    out = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        out.append(time.perf_counter() - s)
    return out

def serve(run10, pause, resume, paused_ids):
    """run10(), pause() -> handle, resume(handle): the three timed operations."""
    for _ in range(3):
        run10(); resume(pause())
    for line in sys.stdin:
        what, _, n = line.strip().partition(" ")
        if what == "ready":
            out = "ready"
        elif what == "run10":
            out = timed(run10, int(n))
        elif what == "pause":
            out = timed(pause, int(n))
        elif what == "resume":
            handles = [pause() for _ in range(int(n))]
            out = []
            for h in handles:
                s = time.perf_counter(); resume(h); out.append(time.perf_counter() - s)
        elif what == "paused":
            out = paused_ids(pause())
        elif what in ("bytes", "live"):
            before = db_bytes(what == "live")
            for _ in range(int(n)):
                pause()
            out = (db_bytes(what == "live") - before) / int(n)
        print(json.dumps(out), flush=True)
    os._exit(0)  # DBOS's threads do not end by themselves
'''

KNEO_CHILD = (
    COMMON
    + r"""
import json as _j
from pathlib import Path
root = Path(ROOT)
(root / "benchsteps.py").write_text("def step(text):\n    return text + '.'\n")
steps = [{"id": f"s{i}", "kind": "function", "ref": "benchsteps:step"} for i in range(10)]
(root / "steps10.yaml").write_text(_j.dumps(
    {"version": "v1", "workflow": {"type": "sequential", "name": "s10", "steps": steps}}))
from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": URL})
m = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
approval = root / "examples" / "hitl_approval.yaml"

def run10():
    assert m.run_from_spec(input_text="x", spec_path=root / "steps10.yaml").status == "succeeded"

def pause():
    p = m.run_from_spec(input_text="launch", spec_path=approval)
    assert p.status == "paused", p
    return p

def resume(p):
    assert m.resume(p.continuation_id, Decision(p.request_id, "approved")).status == "succeeded"

serve(run10, pause, resume, lambda p: [p.continuation_id, p.request_id])
"""
)

KNEO_FRESH = r"""
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": sys.argv[1]})
m = create_platform(settings, ProjectContext.discover(cwd=Path(sys.argv[2]), settings=settings))
assert m.resume(sys.argv[3], Decision(sys.argv[4], "approved")).status == "succeeded"
print(time.perf_counter() - t0)
"""

#: What no Kneo resume can start without, timed as ``KNEO_FRESH`` is: the imports of its
#: database layer (SQLAlchemy and the URL's dialect, psycopg on PostgreSQL) and of pydantic,
#: and one model built. A fresh Kneo process can be no faster than this.
DEPS_FRESH = r"""
import sys, time
t0 = time.perf_counter()
import pydantic, sqlalchemy
if sys.argv[1].startswith("sqlite"):
    import sqlalchemy.dialects.sqlite.pysqlite
else:
    import psycopg, sqlalchemy.dialects.postgresql.psycopg

class Model(pydantic.BaseModel):
    name: str

Model(name="x")
print(time.perf_counter() - t0)
"""

#: LangGraph's graph over the saver its docs set up for the URL.
LG_GRAPH = r"""
import hashlib
from typing import TypedDict
from langgraph.graph import StateGraph, START, END
from langgraph.types import interrupt, Command

def saver(url):
    if url.startswith("sqlite"):
        import sqlite3
        from langgraph.checkpoint.sqlite import SqliteSaver
        return SqliteSaver(sqlite3.connect(url.split("///", 1)[1], check_same_thread=False))
    import psycopg
    from psycopg.rows import dict_row
    from langgraph.checkpoint.postgres import PostgresSaver
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True, prepare_threshold=0, row_factory=dict_row)
    return PostgresSaver(conn)

class S(TypedDict):
    text: str

def draft(s):
    return {"text": "DRAFT: " + s["text"]}

def approve(s):
    answer = interrupt({"prompt": "Approve the draft?", "assignee": "reviewer"})
    return {"text": s["text"] if answer == "approved" else answer}

def publish(s):
    return {"text": "Published. " + hashlib.sha256(s["text"].encode()).hexdigest()[:10]}

def approval_graph(cp):
    g = StateGraph(S)
    g.add_node("draft", draft); g.add_node("approve", approve); g.add_node("publish", publish)
    g.add_edge(START, "draft"); g.add_edge("draft", "approve")
    g.add_edge("approve", "publish"); g.add_edge("publish", END)
    return g.compile(checkpointer=cp)
"""

LG_CHILD = (
    COMMON
    + LG_GRAPH
    + r"""
import uuid
#: ``sync``: each step's checkpoint committed before the next step starts, as Kneo does
KW = {"durability": os.environ["PEERS_LG_DURABILITY"]} if os.environ.get("PEERS_LG_DURABILITY") else {}
cp = saver(URL)
cp.setup()
g = StateGraph(S)
names = [f"s{i}" for i in range(10)]
for name in names:
    g.add_node(name, lambda s: {"text": s["text"] + "."})
g.add_edge(START, names[0])
for a, b in zip(names, names[1:]):
    g.add_edge(a, b)
g.add_edge(names[-1], END)
steps = g.compile(checkpointer=cp)
graph = approval_graph(cp)

def run10():
    steps.invoke({"text": "x"}, {"configurable": {"thread_id": uuid.uuid4().hex}}, **KW)

def pause():
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke({"text": "launch"}, config, **KW)
    return config

def resume(config):
    out = graph.invoke(Command(resume="approved"), config, **KW)
    assert out["text"].startswith("Published."), out

serve(run10, pause, resume, lambda c: [c["configurable"]["thread_id"]])
"""
)

LG_FRESH = (
    r"""
import sys, time
t0 = time.perf_counter()
"""
    + LG_GRAPH
    + r"""
graph = approval_graph(saver(sys.argv[1]))
out = graph.invoke(Command(resume="approved"), {"configurable": {"thread_id": sys.argv[3]}})
assert out["text"].startswith("Published."), out
print(time.perf_counter() - t0)
"""
)

DBOS_CHILD = (
    COMMON
    + r"""
import hashlib, threading, uuid
from dbos import DBOS
DBOS(config={"name": "peers", "system_database_url": URL.replace("+psycopg", ""),
             "run_admin_server": False})
waiting = {}

@DBOS.step()
def step(text):
    return text + "."

@DBOS.workflow()
def ten(text):
    for _ in range(10):
        text = step(text)
    return text

@DBOS.step()
def draft(text):
    return "DRAFT: " + text

@DBOS.step()
def publish(text):
    return "Published. " + hashlib.sha256(text.encode()).hexdigest()[:10]

@DBOS.workflow()
def approval(text):
    text = draft(text)
    waiting[DBOS.workflow_id].set()
    answer = DBOS.recv("approval", timeout_seconds=86400)
    return publish(text if answer == "approved" else answer)

DBOS.launch()

def run10():
    assert ten("x") == "x" + "." * 10

def pause():
    wid = uuid.uuid4().hex
    waiting[wid] = threading.Event()
    from dbos import SetWorkflowID
    with SetWorkflowID(wid):
        handle = DBOS.start_workflow(approval, "launch")
    waiting[wid].wait()
    return handle

def resume(handle):
    DBOS.send(handle.workflow_id, "approved", "approval")
    assert handle.get_result().startswith("Published.")

serve(run10, pause, resume, lambda h: [h.workflow_id])
"""
)

SIDES: dict[str, dict[str, str]] = {
    "kneo": {"child": KNEO_CHILD, "fresh": KNEO_FRESH},
    "langgraph": {"child": LG_CHILD, "fresh": LG_FRESH},
    "dbos": {"child": DBOS_CHILD, "fresh": ""},
}
