"""Start-up cost controls: lazy package re-exports and the start-up collector thresholds.

Each check runs in a fresh interpreter, because what matters is what a new process loads
(and this test process has long since imported everything).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kneo.startup import STARTUP_THRESHOLD


def fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter; it prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_one_engine_module_does_not_load_the_whole_engine() -> None:
    out = fresh(
        "import json, sys\n"
        "import kneo.engine.executor\n"
        "before = 'kneo.engine.builder' in sys.modules\n"
        "from kneo.engine import WorkflowBuilder, transition\n"
        "import kneo.engine as e\n"
        "print(json.dumps({'before': before, 'builder': WorkflowBuilder.__module__,\n"
        "  'transition': transition.__module__, 'all': sorted(e.__all__),\n"
        "  'dir': sorted(set(e.__all__) - set(dir(e)))}))"
    )
    assert out["before"] is False
    assert out["builder"] == "kneo.engine.builder"
    assert out["transition"] == "kneo.lifecycle"
    assert "WorkflowEngine" in out["all"] and out["dir"] == []  # type: ignore[operator]


@pytest.mark.parametrize("package", ["kneo.engine", "kneo.platform", "kneo.store", "kneo.service"])
def test_every_lazy_export_resolves_and_unknown_names_raise(package: str) -> None:
    out = fresh(
        "import importlib, json\n"
        f"pkg = importlib.import_module({package!r})\n"
        "missing = [n for n in pkg.__all__ if getattr(pkg, n, None) is None]\n"
        "try:\n"
        "    pkg.no_such_name\n"
        "    raised = False\n"
        "except AttributeError:\n"
        "    raised = True\n"
        "print(json.dumps({'missing': missing, 'raised': raised}))"
    )
    assert out == {"missing": [], "raised": True}


def test_importing_the_platform_package_loads_no_store_until_used() -> None:
    out = fresh(
        "import json, sys\n"
        "import kneo.platform\n"
        "idle = 'sqlalchemy' in sys.modules\n"
        "from kneo.platform import create_platform\n"
        "print(json.dumps({'idle': idle, 'used': 'sqlalchemy' in sys.modules}))"
    )
    assert out == {"idle": False, "used": True}


def test_a_worker_process_imports_no_http_service() -> None:
    """``kneo worker`` runs queue records: FastAPI, the routers and the console are the
    service's (a third of a worker's start on a slow machine, ``bench/cli_startup.py``)."""
    out = fresh(
        "import json, sys\n"
        "import kneo.cli.worker_cmd\n"
        "idle = sorted(m for m in ('fastapi', 'starlette', 'kneo.service.app', 'kneo.console')\n"
        "  if m in sys.modules)\n"
        "from kneo.service import create_app\n"
        "print(json.dumps({'idle': idle, 'used': create_app.__module__}))"
    )
    assert out == {"idle": [], "used": "kneo.service.app"}


def test_startup_raises_the_threshold_then_restores_and_freezes() -> None:
    out = fresh(
        "import gc, json\n"
        "from kneo import startup\n"
        "default = list(gc.get_threshold())\n"
        "startup.done()  # without begin: nothing to restore, nothing frozen\n"
        "untouched = gc.get_freeze_count()\n"
        "startup.begin(); startup.begin()\n"
        "during = list(gc.get_threshold())\n"
        "startup.done(); startup.done()\n"
        "print(json.dumps({'default': default, 'untouched': untouched, 'during': during,\n"
        "  'after': list(gc.get_threshold()), 'frozen': gc.get_freeze_count()}))"
    )
    default = out["default"]
    assert out["untouched"] == 0
    assert out["during"] == [STARTUP_THRESHOLD, *default[1:]]  # type: ignore[index]
    assert out["after"] == default and out["frozen"] > 0  # type: ignore[operator]


def test_library_start_up_collects_rarely_and_restores_without_freezing() -> None:
    """Library start-up raises the threshold inside ``collecting_rarely`` (nested too) and a
    lazy import plus ``create_platform`` leave the process as they found it, nothing frozen."""
    out = fresh(
        "import gc, json\n"
        "default = list(gc.get_threshold())\n"
        "seen = []\n"
        "from kneo import startup\n"
        "with startup.collecting_rarely():\n"
        "    seen.append(list(gc.get_threshold()))\n"
        "    with startup.collecting_rarely():\n"
        "        seen.append(list(gc.get_threshold()))\n"
        "    seen.append(list(gc.get_threshold()))\n"
        "from kneo import create_platform\n"
        "print(json.dumps({'default': default, 'seen': seen,\n"
        "  'after': list(gc.get_threshold()), 'frozen': gc.get_freeze_count()}))"
    )
    raised = [STARTUP_THRESHOLD, *out["default"][1:]]  # type: ignore[index]
    assert out["seen"] == [raised, raised, raised]
    assert out["after"] == out["default"] and out["frozen"] == 0


def test_importing_the_platform_runs_no_collection_while_collecting_rarely() -> None:
    """The raised threshold is above what importing the platform allocates: no collection
    walks its young objects on the way (one at a 100k threshold walked all 100k of them)."""
    out = fresh(
        "import gc, json\n"
        "from kneo import startup\n"
        "raised = []\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and gc.get_threshold()[0] == startup.STARTUP_THRESHOLD:\n"
        "        raised.append(info['generation'])\n"
        "gc.callbacks.append(seen)\n"
        "from kneo.platform import create_platform\n"
        "gc.callbacks.remove(seen)\n"
        "print(json.dumps({'collections': raised, 'old': len(gc.get_objects(2))}))"
    )
    assert out["collections"] == [] and out["old"] > 30_000  # type: ignore[operator]


def test_library_start_up_leaves_its_objects_in_the_oldest_generation() -> None:
    """What start-up built is promoted without a collection walking it, so the first young
    collection after it (in a fresh process's first call) stays small; a process that froze
    objects of its own keeps them frozen."""
    out = fresh(
        "import gc, json\n"
        "from kneo.platform import create_platform\n"
        "young = len(gc.get_objects(0)) + len(gc.get_objects(1))\n"
        "print(json.dumps({'young': young, 'old': len(gc.get_objects(2)),\n"
        "  'frozen': gc.get_freeze_count()}))"
    )
    assert out["young"] < 1_000 < 30_000 < out["old"]  # type: ignore[operator]
    assert out["frozen"] == 0
    kept = fresh(
        "import gc, json\n"
        "gc.freeze()\n"
        "before = gc.get_freeze_count()\n"
        "from kneo.platform import create_platform\n"
        "print(json.dumps({'kept': gc.get_freeze_count() > before // 2 > 0}))"
    )
    assert kept == {"kept": True}


def test_a_platform_process_loads_no_module_only_a_rare_path_needs() -> None:
    """``difflib`` (did-you-mean hints) and ``getpass`` (the local CLI's default actor) are
    imported where they are used: every process creating a platform paid for them at
    import."""
    out = fresh(
        "import json, sys\n"
        "from kneo.platform import create_platform\n"
        "import kneo.platform.bundles, kneo.platform.decisions, kneo.spec.suggest\n"
        "import kneo.platform.events, kneo.platform.tasks\n"
        "rare = ('difflib', 'getpass')\n"
        "print(json.dumps({'loaded': [m for m in rare if m in sys.modules]}))"
    )
    assert out == {"loaded": []}


def test_a_sqlite_platform_never_loads_the_postgresql_dialect(tmp_path: Path) -> None:
    """Declaring an index's PostgreSQL option in the tables imports SQLAlchemy's whole
    PostgreSQL dialect (about 6 % of ``import kneo``'s instructions): partial indexes declare
    their ``WHERE`` once, as SQLite's, and a PostgreSQL store attaches it when it opens. (A
    new database's first open runs Alembic, which loads every dialect: the second is the
    one measured.)"""
    code = (
        "import json, sys\n"
        "from kneo.platform import create_platform\n"
        "from kneo.settings import Settings\n"
        f"url = 'sqlite:///{tmp_path / 'k.db'}'\n"
        "create_platform(Settings.from_env({'KNEO_SERV_DATABASE_URL': url})).close()\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if 'postgresql' in m)}))"
    )
    fresh(code)
    assert fresh(code) == {"loaded": []}


IRI_CHECKS = (
    "import jsonschema\n"
    "v = jsonschema.Draft202012Validator({'format': 'iri'},\n"
    "    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)\n"
    "file = sys.modules['rfc3987_syntax'].__file__\n"  # what tools walking modules read
    "before = 'lark' in sys.modules and file.endswith('__init__.py')\n"
    "answers = [v.is_valid(x) for x in ('not an iri', 'https://example.com/\\u00e9', 7)]\n"
    "print(json.dumps({'before': before, 'answers': answers, 'after': 'lark' in sys.modules}))"
)


def test_the_iri_grammar_is_compiled_at_its_first_use_with_the_same_answers() -> None:
    """jsonschema's optional IRI checker compiles a grammar as it is imported (1-2 CPU-s);
    deferred, a process that never checks an IRI never pays, and one that does gets the
    answers it gets without the deferral. Reading the stand-in's ``__file__`` (hypothesis and
    ``inspect`` walk ``sys.modules`` for it) does not import the module."""
    pytest.importorskip("rfc3987_syntax")  # the dev extra installs it (jsonschema[format-nongpl])
    plain = fresh("import json, sys\n" + IRI_CHECKS)
    deferred = fresh(
        "import json, sys\n"
        "from kneo.deferred_imports import defer_costly_imports\n"
        "defer_costly_imports()\n" + IRI_CHECKS
    )
    assert plain == {"before": True, "answers": [False, True, True], "after": True}
    assert deferred == {"before": False, "answers": [False, True, True], "after": True}


def test_the_console_entry_point_defers_and_a_library_import_does_not() -> None:
    pytest.importorskip("rfc3987_syntax")
    code = (
        "import atexit, contextlib, io, json, sys\n"
        "atexit.register(lambda: print(json.dumps({'stand_in': type(sys.modules.get(\n"
        "    'rfc3987_syntax')).__name__})))\n"
        "from kneo.cli.main import main\n"
        "sys.argv = ['kneo', 'version']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    CALL\n"
    )
    console = fresh(code.replace("CALL", "main()"))
    library = fresh(code.replace("CALL", "import kneo.platform, jsonschema"))
    assert console == {"stand_in": "_DeferredModule"}
    assert library == {"stand_in": "module"}
