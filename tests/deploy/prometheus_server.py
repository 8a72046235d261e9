"""A real Prometheus server for tests: Debian's ``prometheus`` binary (the package .ci/run
installs for promtool), started on a free loopback port with a scrape interval and rule
evaluation of one second, scraping only the targets a test names. Without the binary the
test skips and says why (fails with CI set)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.npm_packages import unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """The HTTP API of a running server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        return list(self.get("/api/v1/query", query=expression)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (``pending`` while their ``for`` runs, then ``firing``)."""
        return list(self.get("/api/v1/alerts")["alerts"])

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            assert time.monotonic() < deadline, f"Prometheus: no {what} in {timeout}s"
            time.sleep(0.25)

    def scraped(self, targets: int, timeout: float = 60) -> None:
        """Wait until every target was scraped successfully (``up == 1``)."""
        self.wait_for(
            f"{targets} healthy targets",
            lambda: sum(float(s["value"][1]) for s in self.query("up")) == targets,
            timeout,
        )


@contextmanager
def running(
    tmp_path: Path,
    targets: Sequence[str],
    *,
    rule_files: Sequence[Path] = (),
    metrics_path: str = "/metrics",
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus is not on PATH (Debian: apt-get install prometheus)")
    assert binary is not None
    home = tmp_path / "prometheus"
    home.mkdir()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "kneo",
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (home / "prometheus.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
