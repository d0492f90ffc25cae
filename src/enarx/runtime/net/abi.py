"""WASI preview-1 calls on socket fds, implemented in Python over the keep's real sockets.

Only reached through the dispatcher for fds in the socket table (and for ``poll_oneoff``, which must
mix sockets, stdio and clocks). Every guest pointer is bounds-checked by wasmtime's memory accessors;
an out-of-range pointer gives ``EFAULT``, never a crash of the keep.
"""

from __future__ import annotations

import errno as os_errno
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable

import wasmtime

from enarx.runtime.net.dispatcher import FD_FUNCTIONS, PY, PY_ONLY
from enarx.runtime.net.hostcall import MemoryView, raw_i32_func
from enarx.runtime.net.sockets import KeepSocket, SocketTable

# WASI errno values
SUCCESS, EAGAIN, EBADF, ECONNABORTED, ECONNREFUSED, ECONNRESET = 0, 6, 8, 13, 14, 15
EFAULT, EINVAL, EIO, ENOTCONN, ENOTSUP, EPIPE, ESPIPE, ENOTDIR = 21, 28, 29, 53, 58, 64, 70, 54
FILETYPE_SOCKET_STREAM = 6
FDFLAGS_NONBLOCK = 0x4
RIGHTS_ALL = (1 << 30) - 1
EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE = 0, 1, 2
SUBCLOCKFLAGS_ABSTIME = 0x1
RIFLAGS_PEEK, RIFLAGS_WAITALL = 0x1, 0x2
_U32 = struct.Struct("<I")
_IOVEC = struct.Struct("<II")

_OS_TO_WASI = {
    os_errno.EAGAIN: EAGAIN, os_errno.EPIPE: EPIPE, os_errno.ECONNRESET: ECONNRESET,
    os_errno.ECONNABORTED: ECONNABORTED, os_errno.ENOTCONN: ENOTCONN, os_errno.EBADF: EBADF,
    os_errno.ECONNREFUSED: ECONNREFUSED, os_errno.EINVAL: EINVAL,
}


class _Fault(Exception):
    """A guest pointer outside its memory."""


def _errno_for(exc: Exception) -> int:
    """The WASI errno a socket call returns for ``exc``; anything else is a keep bug (raised again: a trap)."""
    if isinstance(exc, _Fault):
        return EFAULT
    if isinstance(exc, LookupError):
        return EBADF
    if isinstance(exc, OSError):
        return _wasi_errno(exc)
    raise exc


def _wasi_errno(exc: OSError) -> int:
    if isinstance(exc, (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)):
        return EAGAIN
    if isinstance(exc, ssl.SSLError):
        return EIO
    return _OS_TO_WASI.get(exc.errno or 0, EIO)


class SocketCalls:
    """The Python side of the dispatcher for one store: ``define(linker)`` registers every function."""

    def __init__(self, table: SocketTable, memory: wasmtime.Memory, store: wasmtime.Store,
                 stdin_fd: int | None):
        self.table = table
        self.memory = memory
        self.store = store
        self.stdin_fd = stdin_fd  # our end of the workload's stdin pipe, for poll_oneoff
        self._memory = MemoryView(store, memory)

    # -- memory ------------------------------------------------------------------------------------
    def _slice(self, ptr: int, length: int) -> memoryview:
        mem = self._memory.get()
        if ptr < 0 or length < 0 or ptr + length > len(mem):
            raise _Fault
        return mem[ptr:ptr + length]

    def _read(self, ptr: int, length: int) -> bytes:
        return bytes(self._slice(ptr, length))

    def _write(self, ptr: int, data: bytes) -> None:
        self._slice(ptr, len(data))[:] = data

    def _write_u32(self, ptr: int, value: int) -> None:
        mem = self._memory.get()
        if ptr + 4 > len(mem):
            raise _Fault
        _U32.pack_into(mem, ptr, value)

    def _iovecs(self, ptr: int, count: int) -> list[tuple[int, int]]:
        """The non-empty (pointer, length) pairs of a guest iovec array."""
        raw = self._slice(ptr, 8 * count)
        if count == 1:  # the usual case
            vector = _IOVEC.unpack_from(raw)
            return [vector] if vector[1] else []
        return [v for v in _IOVEC.iter_unpack(raw) if v[1]]

    def _entry(self, fd: int) -> KeepSocket:
        entry = self.table.entries.get(fd)
        if entry is None:
            raise LookupError
        return entry

    # -- registration ------------------------------------------------------------------------------
    def define(self, linker: wasmtime.Linker) -> None:
        for name, params in {**FD_FUNCTIONS, **PY_ONLY}.items():
            impl: Callable[..., int] = getattr(self, name, None) or self._unsupported(name)
            linker.define(self.store, PY, name, raw_i32_func(self.store, params, impl, _errno_for))

    @staticmethod
    def _unsupported(name: str) -> Callable[..., int]:
        result = {"fd_prestat_get": EBADF, "fd_prestat_dir_name": EBADF, "fd_seek": ESPIPE, "fd_tell": ESPIPE,
                  "fd_sync": EINVAL, "fd_datasync": EINVAL, "fd_renumber": ENOTSUP}[name]

        def call(fd: int, *_args: int) -> int:
            return result
        return call

    # -- fd_* ----------------------------------------------------------------------------------------
    def fd_read(self, fd: int, iovs: int, count: int, nread_ptr: int) -> int:
        return self._recv(fd, iovs, count, 0, nread_ptr, None)

    def fd_write(self, fd: int, iovs: int, count: int, nwritten_ptr: int) -> int:
        return self._send(fd, iovs, count, nwritten_ptr)

    def fd_close(self, fd: int) -> int:
        entry = self.table.entries.pop(fd, None)
        if entry is None:
            return EBADF
        entry.close()
        return SUCCESS

    def fd_fdstat_get(self, fd: int, buf: int) -> int:
        entry = self._entry(fd)
        flags = FDFLAGS_NONBLOCK if entry.nonblocking else 0
        self._write(buf, struct.pack("<BxHxxxxQQ", FILETYPE_SOCKET_STREAM, flags, RIGHTS_ALL, RIGHTS_ALL))
        return SUCCESS

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        entry = self._entry(fd)
        if flags & ~FDFLAGS_NONBLOCK:
            return ENOTSUP  # only NONBLOCK can be set on a socket
        entry.set_nonblocking(bool(flags & FDFLAGS_NONBLOCK))
        return SUCCESS

    def fd_filestat_get(self, fd: int, buf: int) -> int:
        self._entry(fd)
        stat = bytearray(64)
        stat[16] = FILETYPE_SOCKET_STREAM
        self._write(buf, bytes(stat))
        return SUCCESS

    # -- sock_* ----------------------------------------------------------------------------------------
    def sock_accept(self, fd: int, flags: int, fd_ptr: int) -> int:
        entry = self._entry(fd)
        if not entry.listener:
            return EINVAL
        if flags & ~FDFLAGS_NONBLOCK:
            return EINVAL
        if entry.tls_acceptor is not None:  # only connections whose handshake has finished
            conn: socket.socket = entry.tls_acceptor.take(block=not entry.nonblocking)
        else:
            conn, _addr = entry.sock.accept()  # BlockingIOError → EAGAIN on a non-blocking listener
        accepted = KeepSocket(conn, entry.name)
        accepted.no_delay()
        accepted.set_nonblocking(bool(flags & FDFLAGS_NONBLOCK))
        new_fd = self.table.add_dynamic(accepted)
        self._write_u32(fd_ptr, new_fd)
        return SUCCESS

    def sock_recv(self, fd: int, ri_data: int, ri_len: int, ri_flags: int, ro_len: int, ro_flags: int) -> int:
        return self._recv(fd, ri_data, ri_len, ri_flags, ro_len, ro_flags)

    def sock_send(self, fd: int, si_data: int, si_len: int, si_flags: int, so_len: int) -> int:
        if si_flags:
            return ENOTSUP
        return self._send(fd, si_data, si_len, so_len)

    def sock_shutdown(self, fd: int, how: int) -> int:
        entry = self._entry(fd)
        if how not in (1, 2, 3):
            return EINVAL
        if entry.listener:
            return ENOTCONN
        if isinstance(entry.sock, ssl.SSLSocket):
            if how & 2:  # TLS: send close_notify, then close our write side at the TCP level
                try:
                    raw = socket.socket(fileno=entry.sock.fileno())
                    raw.shutdown(socket.SHUT_WR)
                    raw.detach()
                except OSError as exc:
                    return _wasi_errno(exc)
            return SUCCESS
        entry.sock.shutdown({1: socket.SHUT_RD, 2: socket.SHUT_WR, 3: socket.SHUT_RDWR}[how])
        return SUCCESS

    def _recv(self, fd: int, iovs: int, count: int, flags: int, nread_ptr: int, ro_flags: int | None) -> int:
        entry = self._entry(fd)
        if entry.listener:
            return ENOTCONN
        if flags & ~(RIFLAGS_PEEK | RIFLAGS_WAITALL):
            return EINVAL
        if flags and isinstance(entry.sock, ssl.SSLSocket):
            return ENOTSUP  # as in Enarx: TLS streams take no recv flags
        vectors = self._iovecs(iovs, count)
        got = 0
        if vectors:
            ptr, length = vectors[0]
            target = self._slice(ptr, length)
            try:
                if isinstance(entry.sock, ssl.SSLSocket):
                    got = entry.sock.recv_into(target, length)
                else:
                    sflags = (socket.MSG_PEEK if flags & RIFLAGS_PEEK else 0) | (
                        socket.MSG_WAITALL if flags & RIFLAGS_WAITALL else 0)
                    got = entry.sock.recv_into(target, length, sflags)
            except ssl.SSLZeroReturnError:
                got = 0
        self._write_u32(nread_ptr, got)
        if ro_flags is not None:
            self._write(ro_flags, b"\0\0")
        return SUCCESS

    def _send(self, fd: int, iovs: int, count: int, nwritten_ptr: int) -> int:
        entry = self._entry(fd)
        if entry.listener:
            return ENOTCONN
        vectors = self._iovecs(iovs, count)
        if len(vectors) == 1:
            data: bytes | memoryview = self._slice(*vectors[0])
        else:
            data = b"".join(self._read(p, n) for p, n in vectors)
        sent = entry.sock.send(data) if len(data) else 0
        self._write_u32(nwritten_ptr, sent)
        return SUCCESS

    # -- poll_oneoff ---------------------------------------------------------------------------------
    def poll_oneoff(self, in_ptr: int, out_ptr: int, nsubs: int, nevents_ptr: int) -> int:
        if nsubs <= 0:
            return EINVAL
        raw = self._read(in_ptr, 48 * nsubs)
        now = time.monotonic_ns()
        poller = select.poll()
        waiting: dict[int, list[tuple[int, int, int]]] = {}  # os fd → [(userdata, type, guest fd)]
        ready: list[tuple[int, int, int, int]] = []  # (userdata, error, type, nbytes)
        clocks: list[tuple[int, int]] = []  # (userdata, deadline ns on time.monotonic_ns)
        for i in range(nsubs):
            userdata, tag = struct.unpack_from("<QB", raw, 48 * i)
            if tag == EVENTTYPE_CLOCK:
                clock_id, timeout, _precision, cflags = struct.unpack_from("<I4xQQH", raw, 48 * i + 16)
                if cflags & SUBCLOCKFLAGS_ABSTIME:
                    base = time.time_ns() if clock_id == 0 else time.monotonic_ns()
                    timeout = max(0, timeout - base)
                clocks.append((userdata, now + timeout))
            elif tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
                (guest_fd,) = struct.unpack_from("<I", raw, 48 * i + 16)
                entry = self.table.entries.get(guest_fd)
                if entry is None:
                    if guest_fd == 0 and tag == EVENTTYPE_FD_READ and self.stdin_fd is not None:
                        os_fd = self.stdin_fd
                    else:
                        ready.append((userdata, SUCCESS, tag, 1))  # files and stdout: always ready
                        continue
                else:
                    if tag == EVENTTYPE_FD_READ and isinstance(entry.sock, ssl.SSLSocket) and entry.sock.pending():
                        ready.append((userdata, SUCCESS, tag, entry.sock.pending()))
                        continue
                    os_fd = entry.poll_fd()
                mask = select.POLLIN if tag == EVENTTYPE_FD_READ else select.POLLOUT
                waiting.setdefault(os_fd, []).append((userdata, tag, guest_fd))
                poller.register(os_fd, mask | _registered(poller, os_fd, waiting))
            else:
                ready.append((userdata, EINVAL, tag, 0))
        if ready:
            timeout_ms: int | None = 0
        elif clocks:
            timeout_ms = max(0, -(-(min(d for _, d in clocks) - time.monotonic_ns()) // 1_000_000))
        else:
            timeout_ms = None
        if waiting:
            events = poller.poll(timeout_ms)
        else:  # only clocks (and nothing ready): sleep until the earliest
            if timeout_ms:
                time.sleep(timeout_ms / 1000)
            events = []
        for os_fd, revents in events:
            for userdata, tag, _guest_fd in waiting.get(os_fd, []):
                want = select.POLLIN if tag == EVENTTYPE_FD_READ else select.POLLOUT
                if revents & (want | select.POLLHUP | select.POLLERR):
                    ready.append((userdata, SUCCESS, tag, 1))
        if not ready:
            after = time.monotonic_ns()
            ready = [(u, SUCCESS, EVENTTYPE_CLOCK, 0) for u, d in clocks if d <= after + 1_000_000]
            if not ready and clocks:
                ready = [(min(clocks, key=lambda c: c[1])[0], SUCCESS, EVENTTYPE_CLOCK, 0)]
        out = b"".join(struct.pack("<QHBxxxxxQHxxxxxx", u, err, t, n, 0) for u, err, t, n in ready[:nsubs])
        self._write(out_ptr, out)
        self._write(nevents_ptr, struct.pack("<I", min(len(ready), nsubs)))
        return SUCCESS


def _registered(poller: select.poll, os_fd: int, waiting: dict) -> int:
    """Union of the events already wanted for ``os_fd`` (one fd may be polled for read and write)."""
    mask = 0
    for _u, tag, _g in waiting.get(os_fd, [])[:-1]:
        mask |= select.POLLIN if tag == EVENTTYPE_FD_READ else select.POLLOUT
    return mask
