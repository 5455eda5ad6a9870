"""The benchmark: every figure of issue 5, against limits measured in the same run.

    python -m benchmarks.run                       # 1k and 10k, builds at 100k, starts at 50k and 100k
    python -m benchmarks.run --sizes 1000 --cheap-sizes "" --start-sizes "" --output /tmp/B.md   # a quick look
    python -m benchmarks.run --figures start --sizes "" --cheap-sizes "" --start-sizes 100000   # one piece

For each corpus size it generates N realistic seed files (benchmarks/corpus.py) and measures:
cold build vs bleach alone on one core; rebuild after one changed file, in-process and as a new
`feedsvc build` process; freshness (a file is closed after writing, or renamed into place, in
seeds/ while `feedsvc serve` runs → until /feed.xml shows it); time to first feed (`feedsvc serve`
started on an empty output folder, and restarted on the folder it left → the first /feed.xml 200,
which must hold the newest entries); peak RSS of the server and of a build; requests/s and p99 latency of
/feed.xml (200 gzip and 304) for `feedsvc serve` and the Procfile deployment, against nginx
serving the same bytes as a static file and a naive Flask handler that builds per request.

With `--feeds N` (e.g. 10) it also measures N declared feeds ([[feeds]]: folders, patterns, a
conversion, an image proxy; `FEED_KINDS`) against the top-level feed alone, over the same corpus
laid out in ten folders: cold build, rebuild after one change (new process and in-process) and
the server's peak memory, each as a ratio to the one-feed figure.

Load comes from `wrk` and the static limit from `nginx` when installed (`apt-get install nginx
wrk`); without them the script says so, uses a small Python load generator, and skips nginx.
Everything listens on 127.0.0.1 on free ports; every load is bounded in count and time. The
results print as a table; `--output FILE` also writes them as a report (machine, date, command,
table) to copy into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.corpus import write_corpus

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Figures:
    """Results by (figure name, size)."""

    values: dict[tuple[str, int], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, size: int, value: str) -> None:
        self.values[(name, size)] = value
        log(f"N={size}: {name}: {value}")


# ---------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(seeds: Path, out: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env.update(
        FEEDSVC_CONFIG=os.devnull,
        FEEDSVC_SEEDS_DIR=str(seeds),
        FEEDSVC_OUTPUT_DIR=str(out),
        FEEDSVC_BASE_URL="http://127.0.0.1/",
        FEEDSVC_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def run_measured(command: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the command's process, stdout) of one command.

    The peak is the process's VmHWM, read while it runs: wait4's ru_maxrss would count this
    benchmark's own size at the fork (vfork shares its memory until the exec), and this process
    grows with the in-process figures."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def watch() -> None:
        while proc.returncode is None:
            peak[0] = max(peak[0], proc_kib(proc.pid, "VmHWM"))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out_lines: list[str] = []
    reader = threading.Thread(target=lambda: out_lines.append(proc.stdout.read() if proc.stdout else ""))
    err_lines: list[str] = []
    err_reader = threading.Thread(target=lambda: err_lines.append(proc.stderr.read() if proc.stderr else ""))
    reader.start()
    err_reader.start()
    timer = threading.Timer(timeout, lambda: proc.kill())
    timer.start()
    try:
        _pid, status, _usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    reader.join()
    err_reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}: {''.join(err_lines)[-2000:]}")
    return wall, peak[0] / 1024, "".join(out_lines)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def worker_pids(self) -> list[int]:
        """The server's web workers (gunicorn's children)."""
        return children(self.proc.pid)

    def builder_pids(self) -> list[int]:
        """The builder processes the web workers started (the elected one's child)."""
        return [pid for worker in self.worker_pids() for pid in children(worker)]


def children(pid: int) -> list[int]:
    """A process's children, whichever of its threads started them (/proc lists them per thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def proc_kib(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], port: int, log_path: Path, ready: str = "/feed.xml",
            wait: float = 600, interval: float = 0.1) -> Iterator[Server]:
    """Start a server in its own process group; stop it (that group only) on exit."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, log_path)
    try:
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if server.get(ready, timeout=wait)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} not ready after {wait}s")
            time.sleep(interval)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# ---------------------------------------------------------------------------- load


@dataclass
class Load:
    rps: float
    p99_ms: float
    requests: int
    tool: str

    def __str__(self) -> str:
        rate = f"{self.rps:,.0f}" if self.rps >= 100 else f"{self.rps:.3g}"
        return f"{rate} req/s, p99 {self.p99_ms:.1f} ms"


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(port: int, path: str, headers: dict[str, str], seconds: float, connections: int = 16) -> Load:
    """Requests/s and p99 latency on loopback: wrk when installed, else a bounded Python client."""
    wrk = shutil.which("wrk")
    if wrk:
        command = [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        done = subprocess.run([*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                              timeout=seconds + 60)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
        p99 = _wrk_ms(re.search(r"\s99%\s+(\S+)", done.stdout).group(1))  # type: ignore[union-attr]
        total = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
        if "Non-2xx or 3xx" in done.stdout:
            raise RuntimeError(f"errors under load: {done.stdout}")
        return Load(rps, p99, total, "wrk")
    return python_load(port, path, headers, seconds, max_requests=200_000, threads=4)


def python_load(port: int, path: str, headers: dict[str, str], seconds: float, max_requests: int,
                threads: int = 4, timeout: float = 30.0) -> Load:
    """Keep-alive clients in threads; bounded by `seconds`, `max_requests` and each request's `timeout`."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    issued = [0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine: list[float] = []
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if issued[0] >= max_requests:
                        break
                    issued[0] += 1
                started = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status not in (200, 304):
                    raise RuntimeError(f"status {response.status}")
                mine.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            log(f"load client stopped: {exc!r}")
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else float("nan")
    return Load(len(latencies) / elapsed, p99, len(latencies), "python")


def serving(port: int, seconds: float, prefix: str) -> dict[str, Load]:
    """200 with gzip, then 304 with the ETag it sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/feed.xml", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    etag = response.getheader("ETag") or ""
    conn.close()
    gz = {"Accept-Encoding": "gzip"}
    results = {
        f"{prefix} 200 gzip": load(port, "/feed.xml", gz, seconds),
        f"{prefix} 304": load(port, "/feed.xml", gz | {"If-None-Match": etag}, seconds),
    }
    # wrk counts a 200 as a success too: had the feed changed meanwhile, the "304" load was 200s.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/feed.xml", headers=gz | {"If-None-Match": etag})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 304:
        raise RuntimeError(f"{prefix}: /feed.xml changed during the load ({response.status} for its ETag)")
    return results


NGINX_CONF = """
daemon off;
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    types {{ application/atom+xml xml; }}
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        etag on;
        gzip_static on;
        location = /feed.xml {{ add_header Cache-Control "public, max-age=300"; add_header Vary Accept-Encoding; }}
    }}
}}
"""


def nginx_static(out: Path, work: Path, seconds: float) -> dict[str, Load] | None:
    """nginx serving the published bytes (feed.xml and the same gzip body) as static files: the limit."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return None
    # Its own world-readable folder: nginx workers run unprivileged, and test temp dirs are 0700.
    root = Path(tempfile.mkdtemp(prefix="feedsvc-bench-nginx-"))
    os.chmod(root, 0o755)
    (root / "www").mkdir(mode=0o755)
    (root / "tmp").mkdir()
    manifest = json.loads((out / "manifest.json").read_text())["documents"]["feed.xml"]
    shutil.copy(out / "objects" / manifest["object"], root / "www" / "feed.xml")
    shutil.copy(out / "objects" / manifest["gzip_object"], root / "www" / "feed.xml.gz")
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    try:
        with running([nginx, "-c", str(root / "nginx.conf"), "-p", str(root)], dict(os.environ), port,
                     root / "stdout.log", wait=20):
            return serving(port, seconds, "nginx static")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------- the measurements


def bleach_alone(bodies: list[str]) -> float:
    """Seconds for bleach alone (its own Cleaner, the policy's allowlists) over the bodies, one core."""
    import bleach

    from feedsvc.core.sanitize import policy

    cleaner = bleach.sanitizer.Cleaner(
        tags=policy.TAGS, attributes={t: sorted(a) for t, a in policy.ATTRIBUTES.items()},
        protocols=policy.PROTOCOLS, strip=True, strip_comments=True,
    )
    started = time.perf_counter()
    for body in bodies:
        cleaner.clean(body)
    return time.perf_counter() - started


def nh3_alone(bodies: list[str]) -> float | None:
    try:
        import nh3
    except ImportError:
        return None
    from feedsvc.core.sanitize import policy

    tags, schemes = set(policy.TAGS), set(policy.PROTOCOLS)
    attributes = {t: set(a) for t, a in policy.ATTRIBUTES.items()}
    clean_content = set(policy.REMOVE_WITH_CONTENT - policy.TAGS)
    started = time.perf_counter()
    for body in bodies:
        nh3.clean(body, tags=tags, attributes=attributes, url_schemes=schemes, clean_content_tags=clean_content)
    return time.perf_counter() - started


def article_bodies(seeds: Path) -> list[str]:
    from feedsvc.core.parse import parse_seed

    return [parse_seed(p.read_bytes(), p.name).body_html for p in sorted(seeds.glob("*.txt"))]


def alone(seeds: Path, sanitizer: str) -> float | None:
    """Seconds for the sanitizer alone over the corpus's article bodies (None: not installed), in a
    process of its own: this one never holds the corpus, as its children's peak RSS (read by wait4)
    would include this process's size at their fork."""
    code = (f"from pathlib import Path; from benchmarks.run import article_bodies, {sanitizer}_alone; "
            f"print({sanitizer}_alone(article_bodies(Path({str(seeds)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=7200,
                          check=True)
    value = done.stdout.strip()
    return None if value == "None" else float(value)


def library_floor(seeds: Path) -> dict[str, float]:
    """`benchmarks/floor.py`: the library calls a cold build cannot do without, timed one by one on
    one core, in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.floor", str(seeds)], cwd=REPO, capture_output=True,
                          text=True, timeout=7200, check=True)
    return json.loads(done.stdout)


def touch_one(seeds: Path, n: int) -> Path:
    """Change one of the newest articles (so the feed changes too): a new paragraph, as an editor would."""
    path = sorted(seeds.glob("0*.txt"))[-1 - n % 10]
    path.write_text(path.read_text(encoding="utf-8") + f"<p>edit {n} {time.time_ns()}</p>\n", encoding="utf-8")
    return path


def feedsvc_build(seeds: Path, out: Path, **env: str) -> tuple[float, float, str]:
    return run_measured([str(BIN / "feedsvc"), "build"], env_for(seeds, out, **env))


def measure_builds(size: int, seeds: Path, work: Path, fig: Figures, cheap: bool, repeats: int = 1) -> Path:
    """Cold builds, rebuilds after one change (new process and in-process), build memory."""
    out = work / f"out-{size}"
    shutil.rmtree(out, ignore_errors=True)
    if not cheap:
        # The limit and the build alternate, `repeats` times, and the median ratio is kept: on a
        # shared machine a neighbour's burst can otherwise land on one side of the comparison.
        pairs = []
        for attempt in range(repeats):
            shutil.rmtree(out, ignore_errors=True)
            limit = alone(seeds, "bleach")
            assert limit is not None
            wall, rss, _ = feedsvc_build(seeds, out)
            pairs.append((wall / limit, limit, wall, rss))
            log(f"N={size}: cold build {attempt + 1}/{repeats}: {wall:.2f} s, bleach alone {limit:.2f} s")
        ratio, limit, wall, rss = sorted(pairs)[len(pairs) // 2]
        fig.put("bleach alone, one core (limit)", size, f"{limit:.2f} s")
        others = ", ".join(f"{r:.2f}×" for r, *_ in pairs)
        fig.put("cold build, feedsvc build (bleach)", size,
                f"{wall:.2f} s = {ratio:.2f}× bleach alone" + (f" (median of {others})" if repeats > 1 else ""))
        fig.put("peak RSS, cold build", size, f"{rss:.0f} MiB")
        if size <= 2000:
            one = work / f"out-{size}-1"
            shutil.rmtree(one, ignore_errors=True)
            wall1, _, _ = feedsvc_build(seeds, one, FEEDSVC_BUILD_WORKERS="1")
            fig.put("cold build, one process (no pool)", size, f"{wall1:.2f} s = {wall1 / limit:.2f}× bleach alone")
            shutil.rmtree(one, ignore_errors=True)
    limit_nh3 = alone(seeds, "nh3")
    if limit_nh3 is not None:
        nh3_out = out if cheap else work / f"out-{size}-nh3"
        shutil.rmtree(nh3_out, ignore_errors=True)
        wall, rss, _ = feedsvc_build(seeds, nh3_out, FEEDSVC_SANITIZER="nh3")
        fig.put("nh3 alone, one core", size, f"{limit_nh3:.2f} s")
        fig.put("cold build, feedsvc build (nh3)", size, f"{wall:.2f} s = {wall / limit_nh3:.1f}× nh3 alone")
        if not cheap:
            parts = library_floor(seeds)
            listed = ", ".join(f"{name} {seconds:.2f}" for name, seconds in parts.items())
            total = sum(parts.values())
            fig.put("library calls of a cold build (nh3), one core", size,
                    f"{total:.2f} s = {total / limit_nh3:.1f}× nh3 alone ({listed})")
        if cheap:
            fig.put("peak RSS, cold build", size, f"{rss:.0f} MiB (nh3)")
        if nh3_out != out:
            shutil.rmtree(nh3_out, ignore_errors=True)
    extra = {"FEEDSVC_SANITIZER": "nh3"} if cheap else {}
    walls, rsses = [], []
    for n in range(3):
        touch_one(seeds, n)
        wall, rss, stdout = feedsvc_build(seeds, out, **extra)
        assert "published" in stdout, stdout
        walls.append(wall)
        rsses.append(rss)
    fig.put("rebuild after 1 change, new process", size, f"{statistics.median(walls):.2f} s (max {max(walls):.2f})")
    fig.put("peak RSS, rebuild process", size, f"{max(rsses):.0f} MiB")
    in_process(size, seeds, out, fig, extra)
    return out


def in_process(size: int, seeds: Path, out: Path, fig: Figures, extra: dict[str, str]) -> None:
    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    config = load_config(Path(os.devnull), env={k: v for k, v in env_for(seeds, out, **extra).items()
                                                 if k.startswith("FEEDSVC_") and k != "FEEDSVC_CONFIG"})
    builder = Builder(config)
    started = time.perf_counter()
    builder.build()
    fig.put("first build of a new Builder (warm cache)", size, f"{(time.perf_counter() - started) * 1000:.0f} ms")
    noop = []
    for _ in range(3):
        started = time.perf_counter()
        builder.build()
        noop.append(time.perf_counter() - started)
    times = []
    for n in range(7):
        path = touch_one(seeds, n + 10)
        started = time.perf_counter()
        result = builder.build()
        times.append(time.perf_counter() - started)
        assert result.changed == 1 and result.ok, (path, result)
    hinted = []
    for n in range(7):
        path = touch_one(seeds, n + 20)
        started = time.perf_counter()
        result = builder.build(changed=[path.name])
        hinted.append(time.perf_counter() - started)
        assert result.changed == 1 and result.ok, (path, result)
    builder.close()
    fig.put("rebuild, nothing changed, in-process (full rescan)", size, f"{statistics.median(noop) * 1000:.0f} ms")
    fig.put("rebuild after 1 change, in-process (full rescan)", size,
            f"{statistics.median(times) * 1000:.0f} ms (max {max(times) * 1000:.0f})")
    fig.put("rebuild after 1 change, in-process (file event)", size,
            f"{statistics.median(hinted) * 1000:.0f} ms (max {max(hinted) * 1000:.0f})")


def freshness(srv: Server, seeds: Path, files: int, renamed: bool) -> list[float]:
    """Seconds from a new file being complete (closed after writing, or renamed into place, as tools
    do) until /feed.xml shows it, sorted; a file never shown counts as infinite."""
    lags = []
    for i in range(files):
        token, text = fresh_article(i + (files if renamed else 0))
        etag = srv.get("/feed.xml")[1].get("ETag", "")
        name = f"zz-fresh-{'r' if renamed else 'c'}{i:03d}.txt"
        if renamed:
            (seeds / f".{name}.tmp").write_text(text, encoding="utf-8")  # an ignored name, then the real one
            os.replace(seeds / f".{name}.tmp", seeds / name)
        else:
            (seeds / name).write_text(text, encoding="utf-8")  # open, write, close
        landed = time.perf_counter()
        deadline = landed + 15
        while time.perf_counter() < deadline:
            status, _, body = srv.get("/feed.xml", {"If-None-Match": etag})
            if status == 200 and token.encode() in body:
                lags.append(time.perf_counter() - landed)
                break
            time.sleep(0.005)
        else:
            lags.append(float("inf"))
        time.sleep(0.3)
    return sorted(lags)


def fresh_article(i: int) -> tuple[str, str]:
    """A new article stamped now: newer than every corpus article, so it tops the feed."""
    token = f"fresh-{i}-{time.time_ns()}"
    text = (f"<!--{time.time_ns() // 1_000_000}-->\n[Fresh {token}](https://example.org/{token})\n------\n\n"
            f"<p>{token}</p>\n")
    return token, text


def wait_for_own_build(srv: Server, out: Path, size: int) -> None:
    """Until the server's own startup build of record is done (not the status an earlier build
    left: a fresh file would then wait for the end of that build, and load would share the CPU)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            status = json.loads((out / "status.json").read_text())
            if status.get("files", 0) >= size and status.get("pid") in srv.builder_pids():
                return
        time.sleep(0.2)


def measure_server(size: int, seeds: Path, out: Path, work: Path, fig: Figures, files: int, seconds: float,
                   naive_requests: int) -> None:
    """`feedsvc serve`: freshness, memory, serving; then the Procfile deployment, nginx and the naive handler."""
    port = free_port()
    env = env_for(seeds, out)
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, work / f"serve-{size}.log") as srv:
        wait_for_own_build(srv, out, size)
        for how in ("closed after writing", "renamed into place"):
            lags = freshness(srv, seeds, files, renamed=how == "renamed into place")
            fig.put(f"freshness: {how} → in /feed.xml", size,
                    f"p50 {statistics.median(lags) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms ({len(lags)} files)")
        results = serving(port, seconds, "feedsvc serve")
        hwm = max((proc_kib(pid, "VmHWM") for pid in srv.worker_pids()), default=0.0)
        builder = max((proc_kib(pid, "VmHWM") for pid in srv.builder_pids()), default=0.0)
        master = proc_kib(srv.proc.pid, "VmHWM")
        fig.put("peak RSS, feedsvc serve (web worker / builder / master)", size,
                f"{hwm / 1024:.0f} / {builder / 1024:.0f} / {master / 1024:.0f} MiB")
    for path in seeds.glob("zz-fresh-*.txt"):
        path.unlink()

    port = free_port()
    procfile = env_for(seeds, out, PORT=str(port), WEB_CONCURRENCY="2")
    command = [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py",
               "feedsvc.host:create_app(builder_in_child=True)", "--bind", f"127.0.0.1:{port}"]
    with running(command, procfile, port, work / f"procfile-{size}.log") as srv:
        wait_for_own_build(srv, out, size)  # serving is measured, not serving beside a startup build
        results.update(serving(port, seconds, "Procfile (gunicorn, 2 workers)"))

    try:
        static = nginx_static(out, work, seconds)
    except RuntimeError as exc:
        static = None
        fig.notes.append(f"nginx did not start ({exc}): no static-file limit")
    if static is None:
        if not any("nginx" in note for note in fig.notes):
            fig.notes.append("nginx is not installed: no static-file limit (apt-get install nginx)")
    else:
        results.update(static)

    port = free_port()
    naive_env = env_for(seeds, out)
    command = [str(BIN / "gunicorn"), "-w", "1", "-k", "gthread", "--threads", "8", "--bind", f"127.0.0.1:{port}",
               "--timeout", "600", "benchmarks.naive:create_app()"]
    with running(command, naive_env, port, work / f"naive-{size}.log", ready="/feed.xml", wait=600):
        naive = python_load(port, "/feed.xml", {"Accept-Encoding": "gzip"}, seconds=max(seconds, 30),
                            max_requests=naive_requests, threads=1, timeout=300)
    results["naive Flask, builds per request 200"] = naive

    for name, value in results.items():
        fig.put(f"serving /feed.xml: {name}", size, str(value))
    serve_rps = results["feedsvc serve 200 gzip"].rps
    if static is not None:
        fig.put("feedsvc serve ÷ nginx static (200 gzip)", size,
                f"{serve_rps / static['nginx static 200 gzip'].rps:.2f}×")
        fig.put("feedsvc serve ÷ nginx static (304)", size,
                f"{results['feedsvc serve 304'].rps / static['nginx static 304'].rps:.2f}×")
    if naive.rps > 0:
        fig.put("feedsvc serve ÷ naive handler", size, f"{serve_rps / naive.rps:,.0f}×")


def feed_ids(body: bytes) -> list[bytes]:
    return re.findall(rb"<entry>\s*<id>([^<]*)</id>", body)


def health(srv: Server) -> dict:
    return json.loads(srv.get("/healthz")[2])


def measure_start(size: int, seeds: Path, work: Path, fig: Figures) -> None:
    """`feedsvc serve` from process start to its first /feed.xml 200: on an empty output folder (a
    cold start, which publishes the newest entries first), then again on the folder it left (a
    restart). The first feed must hold the newest entries of the full build that follows; the peak
    RSS of the builder process and of the web workers is read once that build is done."""
    out = work / f"out-start-{size}"
    shutil.rmtree(out, ignore_errors=True)
    for short, kind in (("cold start", "cold start (empty output folder)"),
                        ("restart", "restart (published output folder)")):
        port = free_port()
        log_path = work / f"start-{short.split()[0]}-{size}.log"
        started = time.perf_counter()
        with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env_for(seeds, out), port, log_path,
                     wait=900, interval=0.02) as srv:
            first = time.perf_counter() - started
            first_ids = feed_ids(srv.get("/feed.xml")[2])
            deadline = time.monotonic() + 3600  # a cold start's backfill at 100k takes minutes
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                    state = health(srv)
                    build = state.get("last_build") or {}
                    if "warming" not in state and build.get("files", 0) >= size and build.get("pid") == state.get(
                        "builder_pid"
                    ):
                        break
                time.sleep(0.5)
            else:
                raise RuntimeError(f"no build of record after a {kind}")
            right = first_ids == feed_ids(srv.get("/feed.xml")[2])
            fig.put(f"time to first feed: {kind}", size,
                    f"{first:.2f} s" + ("" if right else " (NOT the newest entries: see the log)"))
            builder = state["builder_pid"]
            others = [pid for pid in srv.worker_pids() if pid != builder]
            rss = [proc_kib(builder, "VmHWM") / 1024] + [proc_kib(pid, "VmHWM") / 1024 for pid in others]
            fig.put(f"peak RSS, feedsvc serve after a {short} (builder / web workers)", size,
                    " / ".join(f"{value:.0f}" for value in rss) + " MiB")
    shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------- many feeds

# The declared feeds of `--feeds N`, in this order (cycled past ten): sections of a site, as real
# installations declare them (categories, folders, a topic across them). The corpus lies in
# folders d0 … d9, a tenth each; "延伸閱讀", "廣告" and "點擊" are in a few percent of the articles
# (benchmarks/corpus.py `_extra`), so the patterns keep a few percent of what they search, or
# nearly all of it. (A feed over nearly every seed costs about what the top-level feed does.)
FEED_KINDS = [
    {"folder": "d0"},
    {"folder": "d1", "convert": "t2s", "language": "zh-Hans"},
    {"folder": "d2", "image_proxy": "https://images.weserv.nl/?url={url}"},
    {"folder": "d3", "include": "延伸閱讀|廣告|點擊"},
    {"folder": "d4", "exclude": "點擊"},
    {"include": "延伸閱讀"},
    {"include": "廣告 AD"},
    {"folder": "d7", "exclude": "點擊|廣告"},
    {"folder": "d5", "convert": "t2s", "image_proxy": "https://images.weserv.nl/?url={url_noscheme}"},
    {"folder": "d6"},
]


def feeds_toml(count: int) -> str:
    tables = []
    for i in range(count):
        kind = FEED_KINDS[i % len(FEED_KINDS)]
        lines = [f'name = "feed-{i}"', f'title = "Feed {i}"', *(f"{k} = {json.dumps(v)}" for k, v in kind.items())]
        tables.append("[[feeds]]\n" + "\n".join(lines) + "\n")
    return "\n".join(tables)


def touch_in(seeds: Path, n: int) -> Path:
    """As `touch_one`, in the folder corpus: one of the newest articles of d0 (however few it holds)."""
    files = sorted((seeds / "d0").glob("0*.txt"))
    path = files[-1 - n % min(10, len(files))]
    path.write_text(path.read_text(encoding="utf-8") + f"<p>edit {n} {time.time_ns()}</p>\n", encoding="utf-8")
    return path


def measure_feeds(size: int, count: int, work: Path, fig: Figures, repeats: int) -> None:
    """`count` declared feeds against the top-level feed alone, over the same corpus in ten folders."""
    seeds = work / f"seeds-feeds-{size}"
    shutil.rmtree(seeds, ignore_errors=True)
    for folder in range(10):
        write_corpus(seeds / f"d{folder}", size // 10, seed=folder)
    configs = {"one": work / "one-feed.toml", "many": work / f"{count}-feeds.toml"}
    configs["one"].write_text("")
    configs["many"].write_text(feeds_toml(count))
    outs = {label: work / f"out-feeds-{label}-{size}" for label in configs}
    envs = {label: {**env_for(seeds, outs[label]), "FEEDSVC_CONFIG": str(configs[label])} for label in configs}
    colds: dict[str, list[float]] = {label: [] for label in configs}
    cpus: dict[str, list[float]] = {label: [] for label in configs}
    for attempt in range(repeats):  # alternating, the median kept
        for label in configs:
            shutil.rmtree(outs[label], ignore_errors=True)
            wall, cpu = timed_build(envs[label])
            colds[label].append(wall)
            cpus[label].append(cpu)
            log(f"N={size}: {label} feed(s) cold build {attempt + 1}/{repeats}: {wall:.2f} s, {cpu:.2f} s of CPU")
    cold = {label: statistics.median(walls) for label, walls in colds.items()}
    cpu = {label: statistics.median(times) for label, times in cpus.items()}
    rebuild: dict[str, float] = {}
    for label in configs:
        walls = []
        for n in range(3):
            touch_in(seeds, n + 100 * len(rebuild))
            walls.append(run_measured([str(BIN / "feedsvc"), "build"], envs[label])[0])
        rebuild[label] = statistics.median(walls)
    event = {label: in_process_event(seeds, envs[label]) for label in configs}
    names = ["", *(f"feed-{i}/" for i in range(count))]
    memory = {
        "one": serve_peak(seeds, outs["one"], work, envs["one"], size, ["/feed.xml"]),
        "many": serve_peak(seeds, outs["many"], work, envs["many"], size, [f"/{n}feed.xml" for n in names]),
    }
    what = f"{count} feeds"
    fig.put(f"{what}: cold build", size, f"{cold['many']:.2f} s = {cold['many'] / cold['one']:.2f}× one feed "
            f"({cold['one']:.2f} s); CPU {cpu['many']:.1f} s = {cpu['many'] / cpu['one']:.2f}× one feed's")
    fig.put(f"{what}: rebuild after 1 change, new process", size,
            f"{rebuild['many']:.2f} s = {rebuild['many'] / rebuild['one']:.2f}× one feed ({rebuild['one']:.2f} s)")
    fig.put(f"{what}: rebuild after 1 change, in-process (file event)", size,
            f"{event['many'] * 1000:.0f} ms = {event['many'] / event['one']:.2f}× one feed "
            f"({event['one'] * 1000:.0f} ms)")
    fig.put(f"{what}: peak RSS, feedsvc serve worker", size,
            f"{memory['many']:.0f} MiB = {memory['many'] / memory['one']:.2f}× one feed ({memory['one']:.0f} MiB)")
    shutil.rmtree(seeds, ignore_errors=True)
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)


def timed_build(env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its workers) of one `feedsvc build`: on a
    shared machine the CPU time says what the work costs when the wall time is disturbed."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "feedsvc"), "build"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)  # its own and its reaped workers' usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"feedsvc build exited {proc.returncode}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def in_process_event(seeds: Path, env: dict[str, str]) -> float:
    """Median seconds of a rebuild after one change named by a file event, in a warm Builder."""
    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    config = load_config(env["FEEDSVC_CONFIG"], env={k: v for k, v in env.items()
                                                     if k.startswith("FEEDSVC_") and k != "FEEDSVC_CONFIG"})
    builder = Builder(config)
    builder.build()
    times = []
    for n in range(5):
        path = touch_in(seeds, n + 200)
        started = time.perf_counter()
        result = builder.build(changed=[str(path.relative_to(seeds))])
        times.append(time.perf_counter() - started)
        assert result.changed == 1 and result.ok, (path, result)
    builder.close()
    return statistics.median(times)


def serve_peak(seeds: Path, out: Path, work: Path, env: dict[str, str], size: int, paths: list[str]) -> float:
    """Peak RSS (MiB) of the largest `feedsvc serve` worker once every feed's documents were asked for."""
    port = free_port()
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port,
                 work / f"serve-feeds-{size}.log") as srv:
        wait_for_own_build(srv, out, size)
        for _ in range(10):  # both workers load the published documents
            for path in paths:
                srv.get(path, {"Accept-Encoding": "gzip"})
        return max((proc_kib(pid, "VmHWM") for pid in srv.worker_pids()), default=0.0) / 1024


# ---------------------------------------------------------------------------- report

TARGETS = [
    ("cold build, feedsvc build (bleach)", "≤ 0.75× bleach alone at 5k and 10k"),
    ("cold build, feedsvc build (nh3)", "≤ 2× nh3 alone at 10k"),
    ("rebuild after 1 change, new process", "≤ 2 s at 10k"),
    ("rebuild after 1 change, in-process (full rescan)", "≤ 100 ms"),
    ("rebuild after 1 change, in-process (file event)", "≤ 100 ms"),
    ("freshness: closed after writing → in /feed.xml", "p50 ≤ 150 ms, max ≤ 300 ms at 10k"),
    ("freshness: renamed into place → in /feed.xml", "p50 ≤ 150 ms, max ≤ 300 ms at 10k"),
    ("time to first feed: cold start (empty output folder)", "≤ 3 s at 50k, ≤ 5 s at 100k"),
    ("time to first feed: restart (published output folder)", "≤ 1 s at 100k"),
    ("peak RSS, feedsvc serve after a cold start (builder / web workers)", "web worker ≤ 200 MB at 100k"),
    ("peak RSS, feedsvc serve (web worker / builder / master)", "web worker ≤ 200 MB at 10k"),
    ("feedsvc serve ÷ nginx static (200 gzip)", "≥ 0.10×"),
    ("feedsvc serve ÷ naive handler", "≥ 500×"),
    ("10 feeds: cold build", "≤ 1.3× one feed"),
    ("10 feeds: rebuild after 1 change, new process", "≤ 2× one feed"),
    ("10 feeds: rebuild after 1 change, in-process (file event)", "≤ 2× one feed"),
    ("10 feeds: peak RSS, feedsvc serve worker", "≤ 1.5× one feed"),
]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.0f} GiB"
    tools = ", ".join(f"{t} {'yes' if shutil.which(t) or Path('/usr/sbin/' + t).exists() else 'missing'}"
                      for t in ("nginx", "wrk"))
    return (f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem} RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; {tools}")


def table(fig: Figures, sizes: list[int]) -> str:
    names: list[str] = []
    for name, _ in fig.values:
        if name not in names:
            names.append(name)
    targets = dict(TARGETS)
    head = "| figure | " + " | ".join(f"N = {s:,}" for s in sizes) + " | target |"
    lines = [head, "|" + " --- |" * (len(sizes) + 2)]
    for name in names:
        cells = [fig.values.get((name, s), "–") for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {targets.get(name, '')} |")
    return "\n".join(lines)


def write_report(path: Path, fig: Figures, sizes: list[int], command: str, started: datetime) -> None:
    notes = "".join(f"- {note}\n" for note in fig.notes)
    path.write_text(
        "# Benchmarks\n\n"
        "Produced by `benchmarks/run.py` (see docs/performance.md). Limits are measured in the same run on the "
        "same machine, so compare the ratios: this is a shared, noisy machine.\n\n"
        f"- **Machine:** {machine()}\n"
        f"- **Date:** {started.isoformat(timespec='seconds')}\n"
        f"- **Command:** `{command}`\n\n"
        f"{table(fig, sizes)}\n\n" + (f"Notes:\n\n{notes}\n" if notes else ""),
        encoding="utf-8",
    )


FIGURES = ("builds", "server", "start")


def compile_package() -> None:
    """Byte-compile feedsvc, as installing it does (pip writes a wheel's .pyc files). An editable
    install has none, and where PYTHONDONTWRITEBYTECODE is set (this machine) every new process
    would compile the package's sources again: ~40 ms that no installed deployment pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "feedsvc")], check=True, timeout=300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="feedsvc benchmark (see BENCHMARKS.md)")
    parser.add_argument("--sizes", default="1000,10000", help="corpus sizes for every figure")
    parser.add_argument("--cheap-sizes", default="100000", help="sizes for the cheap figures only (builds)")
    parser.add_argument("--start-sizes", default="50000,100000",
                        help="sizes for the time to first feed (cold start, restart) and the server's memory")
    parser.add_argument("--figures", default=",".join(FIGURES),
                        help=f"which figures: any of {', '.join(FIGURES)} (builds: cold builds and rebuilds; "
                        "server: freshness, memory, serving; start: time to first feed)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load test")
    parser.add_argument("--repeats", type=int, default=3, help="cold builds against bleach alone (median ratio)")
    parser.add_argument("--fresh-files", type=int, default=20, help="files dropped for each freshness figure")
    parser.add_argument("--naive-requests", type=int, default=3, help="requests sent to the naive handler")
    parser.add_argument("--workdir", type=Path, help="where corpora and outputs go (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the run's report here (BENCHMARKS.md is curated by hand: one table per group)")
    parser.add_argument("--feeds", type=int, default=0,
                        help="also measure this many declared feeds against one, at each of --sizes")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    cheap = [int(s) for s in args.cheap_sizes.split(",") if s.strip()]
    start = [int(s) for s in args.start_sizes.split(",") if s.strip()]
    figures = {f.strip() for f in args.figures.split(",") if f.strip()}
    if figures - set(FIGURES):
        parser.error(f"--figures: unknown {', '.join(sorted(figures - set(FIGURES)))}")
    started = datetime.now(UTC)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    fig = Figures()
    if not shutil.which("wrk") and "server" in figures:
        fig.notes.append("wrk is not installed: load came from the script's Python client (apt-get install wrk)")
    all_sizes = sorted(set(sizes) | set(cheap) | set(start))
    compile_package()
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="feedsvc-bench-")))
        work.mkdir(parents=True, exist_ok=True)
        for size in all_sizes:
            run_size(size, work, fig, args, builds="builds" in figures and size in sizes + cheap,
                     server="server" in figures and size in sizes, start="start" in figures and size in start,
                     cheap=size not in sizes)
            if size in sizes and args.feeds:
                measure_feeds(size, args.feeds, work, fig, args.repeats)
    print(table(fig, all_sizes))
    for note in fig.notes:
        print(f"note: {note}")
    if args.output is not None:
        write_report(args.output, fig, all_sizes, command, started)
        log(f"wrote {args.output}")
    return 0


def run_size(size: int, work: Path, fig: Figures, args: argparse.Namespace, builds: bool, server: bool,
             start: bool, cheap: bool) -> None:
    """The chosen figures for one corpus size (`cheap`: builds with nh3 only), on a corpus written for
    them and removed after."""
    if not (builds or server or start):
        return
    seeds = work / f"seeds-{size}"
    shutil.rmtree(seeds, ignore_errors=True)
    log(f"N={size}: writing the corpus")
    paths = write_corpus(seeds, size)
    mean = sum(p.stat().st_size for p in paths) / len(paths)
    fig.put("corpus: mean file size", size, f"{mean / 1000:.1f} kB")
    del paths
    out = work / f"out-{size}"
    if builds:
        out = measure_builds(size, seeds, work, fig, cheap=cheap, repeats=args.repeats)
    if server:
        if not (out / "manifest.json").exists():
            feedsvc_build(seeds, out)
        measure_server(size, seeds, out, work, fig, args.fresh_files, args.seconds, args.naive_requests)
    if start:
        measure_start(size, seeds, work, fig)
    shutil.rmtree(seeds, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
