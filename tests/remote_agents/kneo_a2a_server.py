"""Kneo's own A2A server (``create_app(a2a=True)`` with its worker) as a second process: one
active bundle, ``colour@dev``, that asks a person for a colour (a ``provided`` answer) and
then echoes it. Prints ``PORT <n>`` once it listens. Its callers use the key ``--key``."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import uvicorn

from kneo.platform import create_platform
from kneo.service.app import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "colour",
        "steps": [
            {"id": "ask", "kind": "human", "ref": "colour"},
            {"id": "write", "kind": "agent", "ref": "writer"},
        ],
    },
    "components": {
        "humans": {"colour": {"prompt": "Which colour, Kneo asks?", "decisions": ["provided"]}},
        "agents": {"writer": {"name": "writer", "model": {"provider": "dummy", "script": []}}},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    root = Path(args.root)
    (root / ".kneo").mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{root / 'kneo.db'}",
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": f"caller:{args.key}:service",
            "KNEO_SERV_WORKER_POLL_SECONDS": "0.05",
        }
    )
    manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
    with manager.store.transaction() as tx:
        tx.add_revision("colour", "dev", digest="sha256:" + "2" * 64, status="active", spec=SPEC)
    app = create_app(False, settings=settings, manager=manager, start_worker=True, a2a=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])


if __name__ == "__main__":
    main()
