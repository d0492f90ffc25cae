"""TLS handshakes of a listener, completed in the background: the workload only accepts finished ones.

A handshake inside ``sock_accept`` lets one idle or slow client stall the whole keep (a blocking server
waits in accept; even a non-blocking one waits in the handshake). Here a thread per TLS listener accepts
TCP connections, drives every handshake without blocking, and queues the connections whose handshake
finished. ``ready_fd`` is readable exactly while that queue is non-empty (one byte per queued
connection), so ``sock_accept`` and ``poll_oneoff`` see the listener as ready only when a finished
connection waits. A handshake that does not finish within ``timeout`` seconds is dropped, as are the
oldest ones when more than ``max_pending`` are under way: an idle or slow client costs only itself.
"""

from __future__ import annotations

import collections
import os
import select
import selectors
import socket
import ssl
import threading
import time

HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to finish its handshake
MAX_PENDING = 256  # handshakes under way at once; beyond this the oldest is dropped
MAX_READY = 128  # finished connections waiting for the workload; beyond this we stop accepting


class TlsAcceptor:
    """Accepts on ``listener`` and hands out connections whose TLS handshake has finished."""

    def __init__(self, listener: socket.socket, context: ssl.SSLContext, *, timeout: float = HANDSHAKE_TIMEOUT,
                 max_pending: int = MAX_PENDING, max_ready: int = MAX_READY):
        self._listener = listener
        self._context = context
        self._timeout = timeout
        self._max_pending = max_pending
        self._max_ready = max_ready
        self._ready: collections.deque[ssl.SSLSocket] = collections.deque()
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self._stop_r, self._stop_w = os.pipe()
        self._pending: dict[ssl.SSLSocket, float] = {}  # connection → deadline (time.monotonic)
        listener.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="tls-handshakes", daemon=True)
        self._thread.start()

    # -- the workload's side ---------------------------------------------------------------------
    @property
    def ready_fd(self) -> int:
        """Readable while a connection with a finished handshake waits (poll it for the listener)."""
        return self._ready_r

    def take(self, *, block: bool) -> ssl.SSLSocket:
        """The next finished connection; raises :class:`BlockingIOError` if none waits and not ``block``."""
        while True:
            try:
                os.read(self._ready_r, 1)
                return self._ready.popleft()  # the byte is written after the append: never empty here
            except BlockingIOError:
                if not block:
                    raise
                select.select([self._ready_r], [], [])

    def close(self) -> None:
        """Stop the thread; it closes the listener and every connection not handed out."""
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass

    # -- the background thread -------------------------------------------------------------------
    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._stop_r, selectors.EVENT_READ, "stop")
        listening = False
        try:
            while True:
                want_listen = len(self._ready) < self._max_ready
                if want_listen != listening:
                    if want_listen:
                        selector.register(self._listener, selectors.EVENT_READ, "listen")
                    else:
                        selector.unregister(self._listener)
                    listening = want_listen
                timeout = self._next_timeout(listening)
                for key, _events in selector.select(timeout):
                    if key.data == "stop":
                        return
                    if key.data == "listen":
                        self._accept_all(selector)
                    else:
                        self._step(selector, key.fileobj)  # type: ignore[arg-type]
                self._expire(selector)
        finally:
            self._shut_down(selector)

    def _next_timeout(self, listening: bool) -> float | None:
        limits = [] if listening else [0.05]  # paused: look again soon whether the workload took one
        if self._pending:
            limits.append(max(0.0, min(self._pending.values()) - time.monotonic()))
        return min(limits) if limits else None

    def _accept_all(self, selector: selectors.BaseSelector) -> None:
        while len(self._ready) + len(self._pending) < self._max_ready + self._max_pending:
            try:
                conn, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE, ...: try again on the next readiness
                return
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                tls = self._context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
            if len(self._pending) >= self._max_pending:
                self._drop(selector, min(self._pending, key=self._pending.__getitem__))
            self._pending[tls] = time.monotonic() + self._timeout
            selector.register(tls, selectors.EVENT_READ)
            self._step(selector, tls)

    def _step(self, selector: selectors.BaseSelector, tls: ssl.SSLSocket) -> None:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(tls, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            selector.modify(tls, selectors.EVENT_WRITE)
            return
        except (OSError, ssl.SSLError):  # a failed handshake ends that connection only
            self._drop(selector, tls)
            return
        selector.unregister(tls)
        del self._pending[tls]
        self._ready.append(tls)
        os.write(self._ready_w, b"\0")

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for tls in [t for t, deadline in self._pending.items() if deadline <= now]:
            self._drop(selector, tls)

    def _drop(self, selector: selectors.BaseSelector, tls: ssl.SSLSocket) -> None:
        selector.unregister(tls)
        del self._pending[tls]
        tls.close()

    def _shut_down(self, selector: selectors.BaseSelector) -> None:
        for tls in list(self._pending):
            tls.close()
        self._pending.clear()
        while self._ready:
            self._ready.popleft().close()
        selector.close()
        self._listener.close()
        for fd in (self._ready_r, self._ready_w, self._stop_r, self._stop_w):
            os.close(fd)
