"""Review experiments (uncommitted): hostile manifests must fail with PackageError, never another exception."""

import base64
import json

import pytest

from enarx.packaging import manifest, trust
from enarx.packaging.errors import PackageError

DOC = {"format": "enarx-encrypted-package", "version": 1, "package_id": "0" * 32, "key_id": "0" * 64,
       "aead": "AES-256-GCM", "chunk_log2": 18, "name": "", "resource": "a/b/c", "policy": "",
       "index": {"id": "1" * 32, "size": 40, "sha256": "0" * 64}, "blobs": []}


@pytest.mark.parametrize("field", ["policy", "name"])
def test_a_lone_surrogate_in_an_unverified_manifest_is_a_package_error(field):
    payload = json.dumps({**DOC, field: "\ud800"}).encode()
    token = "eyJhbGciOiJFUzI1NiJ9." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".AA"
    with pytest.raises(PackageError):
        _ = manifest.parse_unverified(token).digest


def test_a_deeply_nested_keep_policy_is_a_package_error():
    with pytest.raises(PackageError):
        trust.parse_policy("a = " + "[" * 20000 + "]" * 20000)
