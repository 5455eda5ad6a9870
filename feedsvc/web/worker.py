"""gunicorn's threaded worker, with request heads read by its event loop under a deadline.

gunicorn's gthread worker hands a connection to a thread as soon as it is accepted (or as soon as a
kept-alive one is readable), and that thread then reads the request head with blocking reads and
no deadline. A client that sends one header byte every few seconds, or connects and sends nothing,
holds that thread: 16 such connections stopped `feedsvc serve` (2 workers × 8 threads), and 300
idle ones kept new clients waiting for over a minute.

`HeadFirstWorker` reads the head in the worker's main loop instead, with non-blocking reads into a
buffer, and gives the connection to a thread only once the head is complete (its blank line, or a
bare LF, which gunicorn's parser refuses at once). The thread's parser reads those bytes first, so
it never waits on the socket for a head. A connection then costs a file descriptor and its buffer,
never a thread, until it has sent a whole head:

- `HEAD_TIMEOUT`: the head must be complete this long after the connection is accepted (or after a
  kept-alive connection becomes readable again); otherwise it is closed, as nginx's
  `client_header_timeout` does (60 s there; a real client sends its head in one packet).
- `MAX_HEAD`: a head larger than this is answered 431 and closed (nginx's and Cloudflare's own
  limit, 32 KiB); gunicorn's `limit_request_line`, `limit_request_fields` and
  `limit_request_field_size` still apply within it.

A request body is read by the thread, as before (no route takes one: the responder refuses a
body over 16 KiB, and gunicorn drains an unread one for at most 5 s). TLS and HTTP/2 are not
used by feedsvc; if they are configured, the worker behaves as gunicorn's own gthread.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]  # gunicorn ships no types

HEAD_TIMEOUT = 10.0
MAX_HEAD = 32 * 1024
RECV_SIZE = 16 * 1024
WORKER_CONNECTIONS = 4096  # per worker: idle or slow connections cost a descriptor each, not a thread

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 32\r\n\r\nrequest header fields too large\n"
)


def head_complete(head: bytes | bytearray, start: int = 0) -> bool:
    """Whether `head` holds a whole request head, or a bare LF (which gunicorn's parser refuses
    without reading more). Only what came after `start` (where the last look stopped) is searched."""
    if head.find(b"\r\n\r\n", max(start - 3, 0)) >= 0:
        return True
    return head.count(b"\n", start) != head.count(b"\r\n", max(start - 1, 0))


class HeadConn(TConn):
    """A connection, with the head bytes its event loop has read so far (None: not reading one)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.head: bytearray | None = None
        self.ready: bytes = b""


class HeadFirstWorker(ThreadWorker):
    """gthread, with each request head read by the event loop (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_conns: deque[HeadConn] = deque()
        self._plain = not self.cfg.is_ssl and not _h2c(self.cfg)

    def init_process(self) -> None:
        """As gthread, with the soft limit on open files raised (up to the hard one) to what
        `worker_connections` needs: 1024 is a common default."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.worker_connections + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(
                    resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard)
                )
        super().init_process()

    def accept(self, listener: Any) -> None:
        """A new connection: its head is read here. At `worker_connections`, or out of file
        descriptors, the oldest connection still sending its head makes room: slow and idle
        clients can never keep a new one out."""
        if not self._plain:
            return super().accept(listener)
        try:
            client, address = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE) and self.reading_conns:
                self._drop(self.reading_conns[0])
                return None  # the listener is still readable: accepted on the next turn
            raise
        self.nr_conns += 1
        conn = HeadConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        self._read_head(conn)
        if self.nr_conns >= self.worker_connections and len(self.reading_conns) > 1:
            self._drop(self.reading_conns[0])
        return None

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection sent something: its next head is read here too."""
        if not self._plain:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn)
        self.on_head_readable(conn, client)
        return None

    def _read_head(self, conn: HeadConn) -> None:
        conn.head = bytearray()
        conn.timeout = time.monotonic() + HEAD_TIMEOUT
        self.reading_conns.append(conn)  # same timeout for all: the deque stays sorted
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def on_head_readable(self, conn: HeadConn, _client: Any) -> None:
        head = conn.head
        if head is None:
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        start = len(head)
        head += data
        if len(head) > MAX_HEAD:
            with contextlib.suppress(OSError):
                conn.sock.send(_TOO_LARGE)
            self._drop(conn)
        elif head_complete(head, start):
            self._stop_reading(conn)
            conn.ready = bytes(head)
            conn.data_ready = True  # gthread's handle() then waits for nothing
            self.enqueue_req(conn)

    def _stop_reading(self, conn: HeadConn) -> None:
        conn.head = None
        self.reading_conns.remove(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: HeadConn) -> None:
        self._stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gthread's expired pending connections, and the heads not complete by their deadline
        (all of them once the worker is stopping: no thread is busy with them)."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading_conns and (not self.alive or self.reading_conns[0].timeout <= now):
            self._drop(self.reading_conns[0])

    def handle(self, conn: Any) -> Any:
        """In a thread: the parser reads the head the event loop read first, then the socket."""
        ready = getattr(conn, "ready", b"")
        if ready:
            conn.ready = b""
            try:
                conn.sock.setblocking(True)
                conn.init()
            except OSError:
                return False
            conn.parser.unreader.unread(ready)
        return super().handle(conn)


def _h2c(cfg: Any) -> bool:
    """Whether HTTP/2 is configured (it reads a preface of its own, before any head)."""
    protocols = getattr(cfg, "http_protocols", None) or ["h1"]
    if isinstance(protocols, str):
        protocols = [p.strip() for p in protocols.split(",")]
    return any(p != "h1" for p in protocols) or str(getattr(cfg, "http2_cleartext", "off")) != "off"


__all__ = ["HEAD_TIMEOUT", "MAX_HEAD", "HeadFirstWorker", "head_complete"]
