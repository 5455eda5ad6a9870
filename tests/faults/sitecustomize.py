"""Fault injection for a feedsvc subprocess under test; never part of the package.

A test puts this folder on the subprocess's PYTHONPATH and sets TEST_FAULTS_DIR; Python
imports this module at start-up (and gunicorn's forked workers inherit it). Each fault is on
while a marker file exists in TEST_FAULTS_DIR, so the test turns faults on and off by creating
and deleting files, without signals or restarts. Tests run as root in CI, where chmod cannot
make anything unreadable or read-only, hence this:

- `disk-full`: fsync of a file under TEST_FAULTS_OUT fails with ENOSPC (where ext4's delayed
  allocation reports a full disk), so every atomic write in the output directory fails;
- `read-only`: creating a temp file under TEST_FAULTS_OUT fails with EROFS;
- `seeds-unreadable`: listing TEST_FAULTS_SEEDS fails with EACCES;
- `slow-seeds`: processing a seed file whose name holds `slow` sleeps for an hour (in the
  builder's helper process, spawned with the same environment), after touching `slow-started`
  in TEST_FAULTS_DIR: a file slow for a reason no sanitizer fix removes.
"""

from __future__ import annotations

import errno
import os
import tempfile

_DIR = os.environ.get("TEST_FAULTS_DIR", "")
_OUT = os.path.realpath(os.environ.get("TEST_FAULTS_OUT", "/nonexistent-out"))
_SEEDS = os.path.realpath(os.environ.get("TEST_FAULTS_SEEDS", "/nonexistent-seeds"))


def _on(name: str) -> bool:
    return bool(_DIR) and os.path.exists(os.path.join(_DIR, name))


def _under(path: object, root: str) -> bool:
    try:
        real = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return real == root or real.startswith(root + os.sep)


if _DIR:
    _fsync, _mkstemp, _scandir = os.fsync, tempfile.mkstemp, os.scandir

    def fsync(fd: int) -> None:
        if _on("disk-full"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if _under(target, _OUT) and not os.path.isdir(target):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _fsync(fd)

    def mkstemp(*args, **kwargs):
        directory = kwargs.get("dir") or (args[2] if len(args) > 2 else None)
        if directory is not None and _on("read-only") and _under(directory, _OUT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(directory))
        return _mkstemp(*args, **kwargs)

    def scandir(path="."):
        if _on("seeds-unreadable") and not isinstance(path, int) and _under(path, _SEEDS):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return _scandir(path)

    os.fsync = fsync
    tempfile.mkstemp = mkstemp
    os.scandir = scandir

    if os.environ.get("TEST_FAULTS_SLOW"):
        import time

        import feedsvc.pipeline.workers as _workers

        _process_file = _workers.process_file

        def process_file(data, seed, *rest):
            if _on("slow-seeds") and "slow" in seed.rel:
                open(os.path.join(_DIR, "slow-started"), "w").close()
                time.sleep(3600)
            return _process_file(data, seed, *rest)

        _workers.process_file = process_file
