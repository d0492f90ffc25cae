"""The keep runtime inside a VM keep's guest: PID 1 (``init``), the virtio-serial channel, and the stages
that only a guest needs (unpacking what the host sent with the package, the guest network, native code).

The guest runs the very same stages as a process keep (``enarx.runtime.stages``) on the very same protocol;
what differs is how the channel is opened and how the keep ends (the machine powers off).
"""
