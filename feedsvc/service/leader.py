"""Exactly one builder per output directory: leader election with an `flock`.

Every process that could build (each gunicorn worker, `feedsvc serve`, `feedsvc watch`) asks
for an exclusive lock on `<output_dir>/.builder.lock`. One gets it and builds; the others wait
for it in a daemon thread. The kernel drops the lock when its holder dies, however it dies,
so a waiting process takes over at once, with no lease to expire and no stale pid file.

A lock is only worth the file it is on. When the output folder is deleted (and made again), or
the lock file removed or replaced, a new process would lock a new file and build beside the
leader. So the leader checks every CHECK_SECONDS that the lock path is still the file it holds
(the same device and inode); if not, it steps down (`on_deposed`: its builder stops) and stands
again on the new file, where it waits if another process leads there. A process that gets a lock
checks the same before it leads: a waiter may get the lock of a file that is gone.

A new lock file cannot tell a new leader that a deposed one is still stopping its builder. So a
leader also holds a token that outlives the folder: an abstract Unix socket named after the output
folder's real path (Linux; the kernel frees it when its holder dies, like the lock). It binds the
token before it builds and closes it only once its builder has stopped (after `on_deposed`); a
new leader waits for it, so two builders never overlap, even for the moments a stop takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("feedsvc.leader")

LOCK_NAME = ".builder.lock"
# How often a leader checks that its lock file is still the one at the lock path.
CHECK_SECONDS = 0.25
# How often a new leader tries for the token a deposed one still holds (see the module's doc).
TOKEN_RETRY_SECONDS = 0.05
_TOKENS = sys.platform.startswith("linux")  # the abstract socket namespace is Linux's


def token_name(out_dir: Path) -> str:
    """The builder token's abstract socket name for `out_dir` (its real path: it survives the folder)."""
    real = os.path.realpath(out_dir).encode("utf-8", "surrogateescape")
    return "\0feedsvc-builder-" + hashlib.sha256(real).hexdigest()[:32]


class Election:
    def __init__(
        self,
        out_dir: Path,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None] | None = None,
        check_every: float = CHECK_SECONDS,
    ) -> None:
        self.path = out_dir / LOCK_NAME
        self.on_elected = on_elected
        self.on_deposed = on_deposed  # called (in the election's thread) before it stands again
        self.check_every = check_every
        self.is_leader = False
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        # A waiting thread may get the lock just as the process stops (its leader stopping too):
        # then it must neither lead nor touch the descriptor stop() closed.
        self._lock = threading.Lock()
        self._stopped = False
        self._stopping = threading.Event()
        self._token: socket.socket | None = None

    def start(self) -> None:
        """Try at once; if another process leads, wait for it in the background."""
        fd: int | None = self._open()
        self._fd = fd
        assert fd is not None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            leading = False
        else:
            if not self._take_token(wait=False):
                leading = False  # a deposed leader is still stopping: the thread waits for its token
            else:
                leading = self._take(fd)
                if not leading:  # locked a file that is gone: stand on the new one
                    fd = self._reopen(fd)
        self._thread = threading.Thread(target=self._run, args=(fd, leading), name="feedsvc-election", daemon=True)
        self._thread.start()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _run(self, fd: int | None, leading: bool) -> None:
        """Lead while the lock file stays; wait for the lock (of the file there) while another leads."""
        while not self._stopping.is_set():
            if leading:
                self._guard(fd)
                if self._stopping.is_set():
                    return
                fd = self._reopen(fd)
            if fd is None:  # the folder cannot be made now: try again soon
                if self._stopping.wait(self.check_every):
                    return
                fd = self._reopen(None)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks, without the GIL, until the leader goes
            except OSError:
                return  # our descriptor was closed: stop() during shutdown
            leading = self._take(fd)
            if not leading:
                fd = self._reopen(fd)

    def _take(self, fd: int) -> bool:
        """Lead on `fd`, locked, if it is still the file at the lock path (and we are not stopping),
        once the builder token is ours."""
        if not self._take_token(still=lambda: self._holds(fd)):  # stale file: no lead, no wait
            return False
        with self._lock:
            if self._stopped or self._fd != fd or not self._holds(fd):
                self._let_token_go()
                return False
            self.is_leader = True
            self._name(os.getpid())
        log.info("pid %d is the builder for %s", os.getpid(), self.path.parent)
        self.on_elected()
        return True

    def _holds(self, fd: int) -> bool:
        """The lock path is the file `fd` is open on."""
        try:
            here, ours = os.stat(self.path), os.fstat(fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)

    def _guard(self, fd: int | None) -> None:
        """While leading: return when stopping, or after stepping down because the lock file went."""
        while not self._stopping.wait(self.check_every):
            with self._lock:
                if self._stopped or fd is None or self._holds(fd):
                    continue
                self.is_leader = False
            log.warning("pid %d: lock file %s gone or replaced: stepping down, standing again", os.getpid(), self.path)
            if self.on_deposed is not None:
                self.on_deposed()
            self._let_token_go()  # the builder has stopped: a new leader may build
            return

    def _take_token(self, wait: bool = True, still: Callable[[], bool] = lambda: True) -> bool:
        """Bind the builder token, waiting (`wait`) while a deposed leader holds it, as long as
        `still()`; False when stopping, when `still()` no longer holds, or when taken and not `wait`."""
        while _TOKENS and self._token is None:
            if not still():
                return False
            token = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                token.bind(token_name(self.path.parent))
            except OSError:
                token.close()
                if not wait or self._stopping.wait(TOKEN_RETRY_SECONDS):
                    return False
            else:
                self._token = token
        if self._stopping.is_set():
            self._let_token_go()
            return False
        return True

    def _let_token_go(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            token.close()

    def _reopen(self, fd: int | None) -> int | None:
        """Let `fd` (and its lock) go and open the file now at the lock path; None if it cannot be made."""
        with self._lock:
            if fd is not None and fd == self._fd:  # else stop() closed it: its number may be another file's now
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fd = None
            if self._stopped:
                return None
            try:
                self._fd = self._open()
            except OSError as exc:
                log.debug("cannot open the lock file %s: %s", self.path, exc)
            return self._fd

    def announce(self, pid: int) -> None:
        """Name `pid` as the builder in the lock file (a leader that builds in a child process)."""
        with self._lock:
            if self.is_leader:
                self._name(pid)

    def _name(self, pid: int) -> None:
        """The lock file's text, for `current_leader` (under `_lock`, while the descriptor is open)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{pid}\n".encode(), 0)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._stopping.set()
            fd, self._fd = self._fd, None
            self.is_leader = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._let_token_go()


def current_leader(out_dir: Path) -> int | None:
    """The builder's pid as the lock file names it, if that process is live (not gone, a zombie,
    or stopped) and holds the lock, or is the child of the process that does (Linux: /proc/locks;
    elsewhere the name is taken as it is)."""
    try:
        with open(out_dir / LOCK_NAME, "rb") as fh:
            st = os.fstat(fh.fileno())
            pid = int(fh.read(32).strip() or 0) or None
    except (OSError, ValueError):
        return None
    if pid is None or not _live(pid):
        return None
    holders = _flock_holders(st.st_dev, st.st_ino)
    if holders is not None and pid not in holders and _parent(pid) not in holders:
        return None
    return pid


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first), or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _live(pid: int) -> bool:
    fields = _proc_stat(pid)
    if fields is None:  # no /proc: ask the kernel whether it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    return bool(fields) and fields[0] not in ("Z", "X", "x", "T", "t")


def _parent(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def _flock_holders(dev: int, ino: int) -> set[int] | None:
    """The pids holding an flock on (dev, ino), from /proc/locks; None where it cannot be read."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    holders: set[int] = set()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF"; a waiter's line has "->" after the number.
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            with contextlib.suppress(ValueError):
                holders.add(int(fields[4]))
    return holders
