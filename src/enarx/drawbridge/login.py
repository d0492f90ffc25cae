"""``enarx user login``: OAuth 2.0 against an OIDC issuer's discovery document — the device authorization
grant (RFC 8628: the user approves a code in a browser) or client credentials (a machine's secret)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from enarx import __version__
from enarx.cabundle import check_service_url, client_context, refused
from enarx.drawbridge.client import printable
from enarx.errors import EnarxError

SCOPES = "manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class LoginError(EnarxError):
    """The issuer refused or could not be reached."""


def discover(issuer: str, ca_bundle: str | None) -> dict[str, Any]:
    check_service_url(issuer, "OIDC issuer")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = fetch_json(url, ca_bundle)
    for key in ("token_endpoint",):
        if not isinstance(doc.get(key), str):
            raise LoginError(f"the OIDC discovery document at {url} has no {key}")
        check_service_url(doc[key], "OIDC token endpoint")
    return doc


def fetch_json(url: str, ca_bundle: str | None) -> dict[str, Any]:
    """GET a JSON object (a discovery document, a JWKS); anything else is a :class:`LoginError`."""
    response = _post_or_get("GET", url, ca_bundle)
    if response.status_code != 200:
        raise LoginError(f"{url} answered HTTP {response.status_code}")
    return _json(response, url)


def client_credentials(doc: dict[str, Any], client_id: str, secret: str, audience: str,
                       ca_bundle: str | None) -> str:
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": SCOPES, "audience": audience}
    response = _post_or_get("POST", doc["token_endpoint"], ca_bundle, data=data)
    return _token(response, doc["token_endpoint"])


def device_flow(doc: dict[str, Any], client_id: str, audience: str, ca_bundle: str | None,
                tell: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
                sleep: Callable[[float], None] = time.sleep) -> str:
    endpoint = doc.get("device_authorization_endpoint")
    if not isinstance(endpoint, str):
        raise LoginError("the OIDC issuer offers no device authorization endpoint: use --oidc-flow client")
    check_service_url(endpoint, "OIDC device authorization endpoint")
    response = _post_or_get("POST", endpoint, ca_bundle,
                            data={"client_id": client_id, "scope": "openid profile " + SCOPES, "audience": audience})
    grant = _json(response, endpoint)
    if response.status_code != 200 or not isinstance(grant.get("device_code"), str):
        raise LoginError(f"the issuer refused the device authorization request: {_error(grant, response)}")
    uri = grant.get("verification_uri_complete") or grant.get("verification_uri")
    tell(printable(f"To log in, open {uri} and confirm the code {grant.get('user_code')}"))
    interval = float(grant.get("interval") or 5)
    deadline = time.monotonic() + float(grant.get("expires_in") or 600)
    while time.monotonic() < deadline:
        sleep(interval)
        response = _post_or_get("POST", doc["token_endpoint"], ca_bundle, data={
            "grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id})
        body = _json(response, doc["token_endpoint"])
        error = body.get("error")
        if response.status_code == 200:
            return _token(response, doc["token_endpoint"])
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        raise LoginError(f"login failed: {_error(body, response)}")
    raise LoginError("login timed out: the code was not confirmed in time")


def userinfo_subject(doc: dict[str, Any], token: str, ca_bundle: str | None) -> str | None:
    """The ``sub`` the issuer's userinfo endpoint reports for ``token`` (None when it has none)."""
    endpoint = doc.get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        return None
    check_service_url(endpoint, "OIDC userinfo endpoint")
    response = _post_or_get("GET", endpoint, ca_bundle, headers={"Authorization": f"Bearer {token}"})
    body = _json(response, endpoint)
    if response.status_code != 200 or not isinstance(body.get("sub"), str):
        raise LoginError(f"the issuer's userinfo endpoint refused the token: {_error(body, response)}")
    return body["sub"]


def unverified_subject(token: str) -> str:
    """The ``sub`` claim of a JWT, read without verifying it (the registry verifies; this only names it)."""
    import base64
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        subject = claims["sub"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise EnarxError("the token is not a JWT with a sub claim: log in again with `enarx user login`") from None
    if not isinstance(subject, str):
        raise EnarxError("the token's sub claim is not a string")
    return subject


def _post_or_get(method: str, url: str, ca_bundle: str | None, **kw: Any) -> httpx.Response:
    try:
        return httpx.request(method, url, verify=client_context(ca_bundle), timeout=30,
                             headers={"User-Agent": f"enarx-cli/{__version__}", **kw.pop("headers", {})}, **kw)
    except httpx.HTTPError as exc:
        why = ("connection refused; check that the issuer is running there and the --oidc-issuer URL"
               if refused(exc) else str(exc) or type(exc).__name__)
        raise LoginError(f"cannot reach the OIDC issuer at {url}: {why}") from None


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        raise LoginError(f"{url} answered HTTP {response.status_code} without JSON") from None
    if not isinstance(doc, dict):
        raise LoginError(f"{url} did not answer a JSON object")
    return doc


def _token(response: httpx.Response, url: str) -> str:
    body = _json(response, url)
    token = body.get("access_token")
    if response.status_code != 200 or not isinstance(token, str):
        raise LoginError(f"the issuer refused to issue a token: {_error(body, response)}")
    return token


def _error(body: dict[str, Any], response: httpx.Response) -> str:
    text = body.get("error_description") or body.get("error") or response.reason_phrase
    return printable(f"{text} (HTTP {response.status_code})")  # the issuer's text, shown on a terminal
