"""The one way to trust a private CA: --ca-bundle / ENARX_CA_BUNDLE, added to the system roots."""

from __future__ import annotations

import pytest

from enarx import cabundle
from enarx.errors import EnarxError


def test_option_wins_over_environment(tmp_path, monkeypatch):
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_text("x")
    b.write_text("y")
    monkeypatch.setenv(cabundle.ENV, str(b))
    assert cabundle.resolve(a) == str(a)
    assert cabundle.resolve(None) == str(b)
    monkeypatch.delenv(cabundle.ENV)
    assert cabundle.resolve(None) is None


def test_missing_bundle_is_named(tmp_path, monkeypatch):
    with pytest.raises(EnarxError, match="--ca-bundle: CA bundle .*missing.pem"):
        cabundle.resolve(tmp_path / "missing.pem")
    monkeypatch.setenv(cabundle.ENV, str(tmp_path / "gone.pem"))
    with pytest.raises(EnarxError, match="ENARX_CA_BUNDLE: CA bundle"):
        cabundle.resolve(None)


def test_garbage_bundle_refused(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(EnarxError, match="cannot load CA bundle"):
        cabundle.client_context(str(bad))


@pytest.mark.parametrize("url", ["https://steward.example/", "http://127.0.0.1:8080/", "http://[::1]:1/",
                                 "http://localhost/"])
def test_accepted_urls(url):
    cabundle.check_service_url(url, "steward")


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.1/", "ftp://127.0.0.1/", "https:///x"])
def test_refused_urls(url):
    with pytest.raises(EnarxError, match="refusing to use the steward url"):
        cabundle.check_service_url(url, "steward")
