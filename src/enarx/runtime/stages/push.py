"""Stage: an empty keep (``enarx run --await-push``) waits for its owner to push an encrypted package.

The host accepts the owner's connection and relays its bytes both ways in PUSH / PUSH_REPLY frames; it sees
only the push protocol (:mod:`enarx.packaging.push`): the keep's evidence, then ciphertext. The keep answers
with evidence bound to a fresh key of its own, verifies the manifest against the publisher key it was
launched with (its thumbprint is in the keep's host data), opens the package in memory and installs it
(:mod:`enarx.runtime.provision`). A failed attempt (a port scanner, a wrong owner, a tampered package) is
refused on that connection, logged, and the keep waits for the next; it never runs anything but a package
that opened.
"""

from __future__ import annotations

import queue
from typing import Any

from enarx.errors import KeepError
from enarx.protocol import Channel, FrameType
from enarx.protocol.messages import PushEnd
from enarx.runtime.launch import Launch, StageFailure

REPLY_CHUNK = 1 << 20


class RelayedConnection:
    """One owner connection as the host relays it: ``recv``/``send`` for :class:`enarx.packaging.push.Channel`."""

    def __init__(self, inbox: queue.Queue, channel: Channel):
        self._inbox, self._channel = inbox, channel
        self._pending = memoryview(b"")
        self.ended = False  # the host said the owner's connection is gone

    def recv(self, n: int) -> bytes:
        if not self._pending:
            if self.ended:
                return b""
            data = self._inbox.get()
            if not data:
                self.ended = True
                return b""
            self._pending = memoryview(data)
        out, self._pending = bytes(self._pending[:n]), self._pending[n:]
        return out

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        for i in range(0, len(view), REPLY_CHUNK):
            self._channel.send(FrameType.PUSH_REPLY, view[i:i + REPLY_CHUNK])

    def close(self, accepted: bool) -> None:
        """Tell the host to close the owner's connection, then drop whatever it still relays from it."""
        self._channel.send(FrameType.PUSH_END, PushEnd(accepted).encode())
        while not self.ended:
            self.ended = not self._inbox.get()


def receive_push(launch: Launch) -> None:
    """Wait for a push that opens, then install its package; does nothing unless the keep awaits a push."""
    req = launch.request
    if not req.await_push:
        return
    from enarx.packaging import keys
    from enarx.packaging import push as protocol
    from enarx.packaging.errors import PackageError
    from enarx.runtime.attest.kbs import tee_evidence_for
    from enarx.runtime.provision import install
    from enarx.runtime.stages.attest import evidence_source

    assert launch.push_inbox is not None and launch.channel is not None, "the keep set up the push inbox"
    try:
        publisher = (keys.parse_public_key(req.publisher_key_pem.encode(), "the launch's publisher key")
                     if req.publisher_key_pem is not None else None)
        tee, evidence_for = tee_evidence_for(evidence_source(launch))
    except (KeepError, PackageError) as exc:
        raise StageFailure(str(exc)) from None
    while True:
        connection = RelayedConnection(launch.push_inbox, launch.channel)
        try:
            received = protocol.receive(protocol.Channel(connection.recv, connection.send), tee, evidence_for,
                                        publisher)
        except PackageError as exc:
            connection.close(accepted=False)
            _log("push refused (%s): %s", exc.reason, exc)
            continue
        except KeepError as exc:  # the keep cannot produce its evidence: nothing will ever work
            connection.close(accepted=False)
            raise StageFailure(str(exc)) from None
        connection.close(accepted=True)
        break
    launch.push_inbox = None  # late connections are ignored from now on
    _log("received package %s from publisher %s", received.manifest.package_id, received.publisher)
    install(launch, received.files, f"the pushed package {received.manifest.package_id}")


def _log(message: str, *args: Any) -> None:
    import logging

    logging.getLogger("enarx.keep").info(message, *args)


__all__ = ["RelayedConnection", "receive_push"]
