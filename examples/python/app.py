"""A Python program running in a keep: CPython 3.11 compiled to wasm32-wasi, with its standard library
preopened read-only. It reads its configuration the Enarx way (FD_NAMES), hashes its stdin, and greets."""

import hashlib
import json
import os
import platform
import sys

data = sys.stdin.buffer.read()
print(json.dumps({
    "greeting": "Hello from Python in a keep!",
    "python": platform.python_version(),
    "platform": sys.platform,
    "argv": sys.argv[1:],
    "fd_names": os.environ.get("FD_NAMES", "").split(":"),
    "stdin_sha256": hashlib.sha256(data).hexdigest(),
}, sort_keys=True))
