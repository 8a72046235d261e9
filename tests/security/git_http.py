"""A private Git host for the tests: the real ``git http-backend`` (git's own smart-HTTP CGI)
behind a small HTTP server that demands basic auth, as GitHub or GitLab do for a private
repository. Every request's ``Authorization`` header and target is recorded, so a test can
prove what reached the host (and that nothing reached another one)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def have_git_http_backend() -> bool:
    """Whether ``git http-backend`` can run here (git installed with its exec-path CGI)."""
    git = shutil.which("git")
    if git is None:
        return False
    out = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=False)
    return (Path(out.stdout.strip()) / "git-http-backend").exists()


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def authorizations(self) -> list[str]:
        return [r["authorization"] for r in self.requests if r["authorization"]]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class PrivateGitHost(Recorder):
    """``git http-backend`` over ``root`` (a directory of bare repositories) for callers
    whose basic auth is ``username:token``; anyone else gets ``401`` and nothing else."""

    def __init__(self, root: Path, username: str, token: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
        super().__init__(_BackendHandler)

    def url(self, repo: str) -> str:
        return f"{self.base}/{repo}"


class _BackendHandler(BaseHTTPRequestHandler):
    server: PrivateGitHost

    def log_message(self, *_args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.requests.append(
            {"method": self.command, "path": self.path, "authorization": auth}
        )
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if auth != self.server.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "reader",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Redirector(Recorder):
    """Answers every request with a 302 to ``target`` (another host, in a real attack)."""

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(_RedirectHandler)


class _RedirectHandler(BaseHTTPRequestHandler):
    server: Redirector

    def log_message(self, *_args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.requests.append(
            {
                "method": "GET",
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
            }
        )
        self.send_response(302)
        self.send_header("Location", self.server.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
