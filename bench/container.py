"""Container image: size over its base, build time, and container start -> ``/readyz`` 200.

    python bench/container.py                       # podman, or docker when it runs
    python bench/container.py --cold                # also a build without cache
    python bench/container.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/db

Sizes are the engine's uncompressed sizes and the gzip-compressed ``save`` stream (what a
registry stores and a pull transfers). Start-up runs the image on the host network (so it
reaches a PostgreSQL on 127.0.0.1; the database must be migrated already, as the Compose
stack's migrate service and the Kubernetes Job do) or, without ``--database-url``, on SQLite
inside the container (which then migrates from empty on every start). The API binds
127.0.0.1:``--port`` (18900-18999 on this project's machines).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "docker.io/library/python:3.12-slim"


def engine() -> str:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return "docker"
    return "podman"


def build(tool: str, tag: str, *, cache: bool) -> float:
    cmd = [tool, "build", "-t", tag, "."]
    if tool == "podman":
        cmd[2:2] = ["--format", "docker"]
    if not cache:
        cmd.insert(2, "--no-cache")
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.monotonic() - started


def size(tool: str, image: str) -> tuple[int, int]:
    """(uncompressed bytes, gzip-compressed ``save`` bytes)."""
    raw = int(
        subprocess.run(
            [tool, "image", "inspect", "--format", "{{.Size}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    saved = subprocess.run([tool, "save", image], capture_output=True, check=True).stdout
    return raw, len(gzip.compress(saved, compresslevel=6))


def start_to_ready(tool: str, image: str, port: int, database_url: str | None) -> float:
    env = ["-e", "KNEO_SERV_API_KEYS=bench:0123456789abcdef0123456789:operator"]
    if database_url:
        env += ["-e", f"KNEO_SERV_DATABASE_URL={database_url}"]
    started = time.monotonic()
    container = subprocess.run(
        [
            tool,
            "run",
            "-d",
            "--rm",
            "--network",
            "host",
            *env,
            image,
            "service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-controller",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        while time.monotonic() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        raise SystemExit("no /readyz 200 within 120 s")
    finally:
        subprocess.run([tool, "rm", "-f", "-t", "0", container], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="localhost/kneo:bench")
    parser.add_argument("--cold", action="store_true", help="also build without cache")
    parser.add_argument("--database-url")
    parser.add_argument("--port", type=int, default=18990)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    tool = engine()
    result: dict[str, object] = {"engine": tool}
    if args.cold:
        result["cold_build_s"] = round(build(tool, args.tag, cache=False), 1)
    result["warm_build_s"] = round(build(tool, args.tag, cache=True), 1)
    (image_raw, image_gz), (base_raw, base_gz) = size(tool, args.tag), size(tool, BASE)
    mb = 1_000_000
    result.update(
        image_mb=round(image_raw / mb, 1),
        base_mb=round(base_raw / mb, 1),
        added_mb=round((image_raw - base_raw) / mb, 1),
        image_gzip_mb=round(image_gz / mb, 1),
        added_gzip_mb=round((image_gz - base_gz) / mb, 1),
    )
    starts = [
        start_to_ready(tool, args.tag, args.port, args.database_url) for _ in range(args.starts)
    ]
    result["start_to_ready_s"] = {
        "median": round(statistics.median(starts), 2),
        "min": round(min(starts), 2),
        "max": round(max(starts), 2),
        "database": "postgresql" if args.database_url else "sqlite (migrates on every start)",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
