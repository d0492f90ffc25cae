"""The host↔keep protocol: one versioned, framed byte stream over any reliable channel.

Today the channel is a Unix socketpair (nil backend); a VM keep's virtio-serial port carries the very
same bytes. See ``docs/protocol.md`` for the specification.
"""

from enarx.protocol.frames import (
    MAX_HOST_TO_KEEP,
    MAX_KEEP_TO_HOST,
    PROTOCOL_VERSION,
    Channel,
    Frame,
    FrameType,
    ProtocolError,
)
from enarx.protocol.messages import ExitReport, LaunchRequest

__all__ = [
    "MAX_HOST_TO_KEEP",
    "MAX_KEEP_TO_HOST",
    "PROTOCOL_VERSION",
    "Channel",
    "ExitReport",
    "Frame",
    "FrameType",
    "LaunchRequest",
    "ProtocolError",
]
