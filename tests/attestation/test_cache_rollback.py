"""Regression (review): a network attacker rolled the operator's collateral cache back to an older CRL.

``enarx attest cache fetch --force`` / ``refresh`` write whatever the vendor URL answered over the cached
copy (``CollateralCache.fetch``: ``path.write_bytes(resp.body)``), without comparing it with the copy it
replaces. An attacker on the path to KDS/PCS (or a stale mirror) replays last month's CRL — genuinely signed
and still inside its validity window, but predating a revocation — and the cache, then the Steward that
loads it (``--collateral``, SIGHUP), forgets the revocation. Issue 8: collateral older than the freshest
held is refused. The write is also not atomic, so a Steward reloading mid-fetch reads a torn file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.cache import CacheError, CollateralCache, Response
from enarx.attestation.pki import Crl
from enarx.attestation.simulate.pki import ECDSA_SHA384, issue_crl
from enarx.attestation.simulate.snp import _amd_name

URL = "https://kdsintf.amd.com/vcek/v1/Milan/crl"


def test_a_replayed_older_crl_does_not_replace_the_cached_newer_one(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.now(UTC).replace(microsecond=0)
    name = _amd_name("ARK-Milan")
    old = issue_crl(issuer=name, signing_key=key, algorithm=ECDSA_SHA384, this_update=now - timedelta(days=20),
                    next_update=now + timedelta(days=100), crl_number=1)
    new = issue_crl(issuer=name, signing_key=key, algorithm=ECDSA_SHA384, this_update=now - timedelta(days=1),
                    next_update=now + timedelta(days=120), crl_number=2, revoked=[(0x1234, now - timedelta(days=2))])
    answers = [new, old]  # first the real CRL, then the attacker's replay
    cache = CollateralCache(tmp_path, transport=lambda url, timeout: Response(200, answers.pop(0), {}))
    path = cache.fetch(URL, "amd/Milan/vcek.crl.der", kind="crl")
    with pytest.raises(CacheError, match="refusing to replace the cached copy with an older one"):
        cache.fetch(URL, "amd/Milan/vcek.crl.der", kind="crl", force=True)
    held = Crl.from_der(path.read_bytes())
    assert held.number == 2 and held.revoked_on(0x1234) is not None, \
        "the cache replaced a newer CRL by an older replayed one: the revocation is forgotten"


def test_a_newer_crl_replaces_the_cached_one(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.now(UTC).replace(microsecond=0)
    name = _amd_name("ARK-Milan")
    crls = [issue_crl(issuer=name, signing_key=key, algorithm=ECDSA_SHA384, this_update=now - timedelta(days=d),
                      next_update=now + timedelta(days=100), crl_number=n) for d, n in ((20, 1), (1, 2))]
    cache = CollateralCache(tmp_path, transport=lambda url, timeout: Response(200, crls.pop(0), {}))
    path = cache.fetch(URL, "amd/Milan/vcek.crl.der", kind="crl")
    cache.fetch(URL, "amd/Milan/vcek.crl.der", kind="crl", force=True)
    assert Crl.from_der(path.read_bytes()).number == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written through a temporary, renamed
