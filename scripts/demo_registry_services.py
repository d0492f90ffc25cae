"""For `make demo`: a private TLS CA with a certificate for a loopback registry, and a small OIDC issuer (the
tests' loopback issuer: discovery, JWKS, real ES256/RS256 tokens) that has logged alice in.

Writes DIR/ca.pem, DIR/drawbridge.crt, DIR/drawbridge.key, DIR/issuer (URL and audience, one per line) and
DIR/token (alice's bearer token), then serves the issuer until terminated.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "drawbridge"))

from _pki import PrivateCa
from oidc_issuer import LoopbackIssuer


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ca = PrivateCa("Demo Registry CA")
    ca.write(directory / "ca.pem")
    ca.leaf(directory, "drawbridge")
    issuer = LoopbackIssuer()
    (directory / "token").write_text(issuer.mint("alice@example.com"))
    (directory / "issuer").write_text(f"{issuer.url}\n{issuer.audience}\n")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    issuer.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
