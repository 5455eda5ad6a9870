"""Slow and idle clients against a real server on loopback, and how long a reader's GET waits.

    python benchmarks/slow_clients.py [--slow 1000] [--idle 1000] [--seconds 30]
                                      [--target serve|procfile|procfile-gthread]

Starts the target on a free 127.0.0.1 port with the sample seed (`serve`: `feedsvc serve` with its
defaults, 2 workers x 8 threads; `procfile`: the Procfile's gunicorn; `procfile-gthread`: the same
with gunicorn's stock gthread worker, the stack before feedsvc.web.worker). Opens `--slow`
connections that send one header byte every 3 s and `--idle` ones that send nothing (any the
server closes are opened again), then probes `GET /feed.xml` on a new connection every second for
`--seconds`, and prints each probe's time (or `timeout` past 20 s) and the worst.
`--worker-connections` (Procfile targets) sets a small per-worker limit, to see the oldest
unfinished head make room for a new connection.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "seeds" / "000_76cb3dcc68cf4183.txt"
BIN = Path(sys.executable).parent
HEAD = b"GET /feed.xml HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, timeout: float) -> float | None:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/feed.xml")
        response = conn.getresponse()
        response.read()
        return time.monotonic() - start if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def alive(sock: socket.socket | None) -> bool:
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def connect(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return None
    sock.setblocking(False)
    return sock


def attack(port: int, slow: int, idle: int, stop: threading.Event) -> None:
    slow_socks: list[tuple[socket.socket | None, int]] = [(None, 0)] * slow
    idle_socks: list[socket.socket | None] = [None] * idle
    while not stop.is_set():
        for i, (sock, sent) in enumerate(slow_socks):
            if not alive(sock):
                if sock is not None:
                    sock.close()
                sock, sent = connect(port), 0
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.send(HEAD[sent % len(HEAD) :][:1])
                    sent += 1
            slow_socks[i] = (sock, sent)
        for i, isock in enumerate(idle_socks):
            if not alive(isock):
                if isock is not None:
                    isock.close()
                idle_socks[i] = connect(port)
        stop.wait(3.0)
    for sock, _ in slow_socks:
        if sock is not None:
            sock.close()
    for isock in idle_socks:
        if isock is not None:
            isock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--target", choices=("serve", "procfile", "procfile-gthread"), default="serve")
    parser.add_argument("--worker-connections", type=int, help="the Procfile targets: gunicorn's worker_connections")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds"
        seeds.mkdir()
        shutil.copy(SAMPLE, seeds / SAMPLE.name)
        port = free_port()
        (Path(tmp) / "feedsvc.toml").write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
        env.update(
            FEEDSVC_CONFIG=str(Path(tmp) / "feedsvc.toml"),
            FEEDSVC_SEEDS_DIR=str(seeds),
            FEEDSVC_OUTPUT_DIR=str(Path(tmp) / "out"),
            FEEDSVC_BASE_URL="https://feeds.example.org/",
            PORT=str(port),
            FEEDSVC_LOG_LEVEL="WARNING",
        )
        if args.target == "serve":
            command = [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)]
        else:
            command = [
                str(BIN / "gunicorn"),
                "--config",
                "config/gunicorn.conf.py",
                "feedsvc.host:create_app(builder_in_child=True)",
                "--bind",
                f"127.0.0.1:{port}",
            ]
            if args.target == "procfile-gthread":
                command += ["--worker-class", "gthread"]
            if args.worker_connections:
                command += ["--worker-connections", str(args.worker_connections)]
        with open(Path(tmp) / "server.log", "wb") as log:
            proc = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 30
            while get(port, 2) is None:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not publish within 30 s")
                time.sleep(0.2)
            stop = threading.Event()
            attacker = threading.Thread(target=attack, args=(port, args.slow, args.idle, stop), daemon=True)
            attacker.start()
            time.sleep(3.0)  # every connection opened once and the slow ones have sent a byte
            times: list[float | None] = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                took = get(port, 20)
                times.append(took)
                print("timeout" if took is None else f"{took * 1000:.0f} ms", flush=True)
                time.sleep(1.0)
            stop.set()
            attacker.join(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    answered = [t for t in times if t is not None]
    worst = "timeout" if len(answered) < len(times) else f"{max(answered) * 1000:.0f} ms"
    print(f"{args.target}: {len(times)} probes, {len(times) - len(answered)} timed out, worst {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
