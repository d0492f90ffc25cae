"""A small but real OIDC issuer on loopback for the tests: discovery, JWKS with an RS256 and an ES256 key,
the device authorization grant (approved by the test, standing in for the user's browser), client
credentials, and userinfo. Tokens are real JWTs signed with joserfc."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from enarx.steward.server import BackgroundServer


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (without Starlette's optional multipart dependency)."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl((await request.body()).decode()))


ALL_SCOPES = "manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags"


class LoopbackIssuer:
    def __init__(self) -> None:
        self.keys = KeySet([RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}),
                            ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})])
        self.clients: dict[str, tuple[str, str]] = {}  # client id → (secret, subject)
        self.devices: dict[str, dict[str, Any]] = {}  # device code → grant state
        self.lock = threading.Lock()
        self.audience = "https://drawbridge.test/"
        self.server = BackgroundServer(self._app()).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()

    # -- tokens -------------------------------------------------------------------------------------
    def mint(self, sub: str, *, scope: str = ALL_SCOPES, alg: str = "ES256", aud: str | None = None,
             iss: str | None = None, exp: int | None = None, kid: str | None = None,
             keys: KeySet | None = None) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iss": iss or self.url, "aud": aud or self.audience, "iat": now,
                  "exp": exp if exp is not None else now + 600, "scope": scope}
        header = {"alg": alg, "kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")}
        return jwt.encode(header, claims, keys or self.keys)

    def add_client(self, client_id: str, secret: str, subject: str) -> None:
        self.clients[client_id] = (secret, subject)

    def approve(self, user_code: str, subject: str) -> None:
        with self.lock:
            for grant in self.devices.values():
                if grant["user_code"] == user_code:
                    grant["subject"] = subject

    # -- the HTTP side ------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                                 "token_endpoint": f"{self.url}/token",
                                 "device_authorization_endpoint": f"{self.url}/device",
                                 "userinfo_endpoint": f"{self.url}/userinfo",
                                 "id_token_signing_alg_values_supported": ["RS256", "ES256"]})

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(self.keys.as_dict(private=False))

        async def device(request: Request) -> JSONResponse:
            form = await _form(request)
            code = secrets.token_urlsafe(16)
            user_code = secrets.token_hex(4).upper()
            with self.lock:
                self.devices[code] = {"user_code": user_code, "client_id": form.get("client_id"),
                                      "audience": form.get("audience"), "subject": None}
            return JSONResponse({"device_code": code, "user_code": user_code,
                                 "verification_uri": f"{self.url}/activate",
                                 "verification_uri_complete": f"{self.url}/activate?code={user_code}",
                                 "expires_in": 60, "interval": 0.1})

        async def token(request: Request) -> JSONResponse:
            form = await _form(request)
            grant_type = form.get("grant_type")
            if grant_type == "client_credentials":
                client = self.clients.get(str(form.get("client_id")))
                if client is None or not secrets.compare_digest(client[0], str(form.get("client_secret", ""))):
                    return JSONResponse({"error": "invalid_client"}, status_code=401)
                return JSONResponse({"access_token": self.mint(client[1], aud=str(form.get("audience"))),
                                     "token_type": "Bearer", "expires_in": 600})
            if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
                with self.lock:
                    grant = self.devices.get(str(form.get("device_code")))
                if grant is None:
                    return JSONResponse({"error": "expired_token"}, status_code=400)
                if grant["subject"] is None:
                    return JSONResponse({"error": "authorization_pending"}, status_code=400)
                return JSONResponse({"access_token": self.mint(grant["subject"], alg="RS256",
                                                               aud=grant["audience"]),
                                     "token_type": "Bearer", "expires_in": 600})
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

        async def userinfo(request: Request) -> JSONResponse:
            auth = request.headers.get("authorization", "")
            try:
                decoded = jwt.decode(auth.removeprefix("Bearer "), self.keys, algorithms=["RS256", "ES256"])
            except Exception:  # noqa: BLE001 - any bad token
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse({"sub": decoded.claims["sub"]})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/device", device, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/userinfo", userinfo),
        ])
