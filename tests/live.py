"""Real servers for tests: started on a free loopback port, stopped and reaped afterwards."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def procfile_command(name: str) -> list[str]:
    """The Procfile's `name:` command, split as a shell would (the deployment the tests run)."""
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"no {name}: line in the Procfile")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request; returns (status, headers with lower-case names, raw body). Never raises on 4xx/5xx."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def parent_of(pid: int) -> int:
    """A process's parent, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], Any], timeout: float = 15, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Server:
    def __init__(self, args: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = REPO) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = log.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
        full_env.update(env)
        full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
        self.proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return http(self.url(path), **kwargs)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/healthz", status: int = 200, timeout: float = 20) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            return self.get(path, timeout=2)[0] == status
        wait_for(ready, timeout, what=f"{path} -> {status}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], port: int, log: Path, ready: bool = True,
            cwd: Path = REPO) -> Iterator[Server]:
    server = Server(args, env, port, log, cwd)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()


def feed_env(tmp: Path, seeds: Path, out: Path, **extra: str) -> dict[str, str]:
    """Environment for a feedsvc process on test folders, fast timings, no repo config file."""
    config = tmp / "feedsvc-test.toml"
    if not config.exists():
        config.write_text("")
    env = {
        "FEEDSVC_CONFIG": str(config),
        "FEEDSVC_SEEDS_DIR": str(seeds),
        "FEEDSVC_OUTPUT_DIR": str(out),
        "FEEDSVC_BASE_URL": "https://feeds.example.org/",
        "FEEDSVC_DEBOUNCE": "0.1",
        "FEEDSVC_DEBOUNCE_MAX": "1.0",
        "FEEDSVC_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env
