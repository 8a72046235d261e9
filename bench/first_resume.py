"""Instructions of a fresh process's first resume call, and what it imports (issue 73 item 4).

For each checkout: a SQLite project with the approval example paused a few times, then one
fresh process (bytecode cached, ``PYTHONHASHSEED=0``) that imports Kneo, calls
``create_platform`` and resumes one paused run, under callgrind counting inside that first
``resume`` call alone (``operator.call``); the process also prints the modules the call
imported (``sys.modules`` before and after: a module imported lazily by the first call shows
here, as in ``python -X importtime``) and the CPU time of a second resume.

    python bench/first_resume.py CHECKOUT [CHECKOUT ...]

Needs ``valgrind``. Not part of the test run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MAKE = """
import json, sys
from pathlib import Path
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env()
m = create_platform(settings=settings, project=ProjectContext.discover(cwd=Path.cwd(), settings=settings))
paused = [m.run_from_spec(input_text="launch", spec_path="examples/hitl_approval.yaml")
          for _ in range(3)]
Path("ids.json").write_text(json.dumps([[p.continuation_id, p.request_id] for p in paused]))
m.store.close()
"""
FRESH = """
import json, operator, sys, time
from pathlib import Path
from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env()
m = create_platform(settings=settings, project=ProjectContext.discover(cwd=Path.cwd(), settings=settings))
ids = json.loads(Path("ids.json").read_text())
before = set(sys.modules)
operator.call(m.resume, ids[0][0], Decision(ids[0][1], "approved"))
imported = sorted(n for n in set(sys.modules) - before if not n.startswith("_kneo_code_"))
start = time.process_time()
m.resume(ids[1][0], Decision(ids[1][1], "approved"))
print(json.dumps({"imported": imported, "second_ms": (time.process_time() - start) * 1000}))
"""


def measure(checkout: Path) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".kneo").mkdir()
        shutil.copytree(
            checkout / "examples",
            root / "examples",
            ignore=shutil.ignore_patterns("__pycache__", "keys"),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            PYTHONPATH=os.pathsep.join([str(root), str(checkout)]),
            PYTHONHASHSEED="0",
            KNEO_SERV_DATABASE_URL=f"sqlite:///{root}/.kneo/kneo.db",
            KNEO_SERV_LOG_LEVEL="WARNING",
        )
        subprocess.run([sys.executable, "-c", MAKE], cwd=root, env=env, check=True)
        only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={root}/cg", *only,
             sys.executable, "-c", FRESH],
            cwd=root, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(done.stderr[-500:])
        return int(found.group(1)), done.stdout.strip()


def main() -> None:
    for checkout in sys.argv[1:]:
        count, printed = measure(Path(checkout).resolve())
        print(f"{checkout}: first resume {count / 1e6:,.1f} M instructions; {printed}", flush=True)


if __name__ == "__main__":
    main()
