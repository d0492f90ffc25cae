"""RFC 9457 problem responses and bounded request bodies, shared by every server of ours.

Every refusal a server makes is a 4xx ``application/problem+json`` body whose ``reason`` is a stable
token a client can act on and whose ``detail`` says what failed in words; servers add their own members
(``checks``, ``warnings``…). Bodies are read with a hard limit, so an oversized upload is answered 413
before it is buffered.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

CT_PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 411: "Length Required", 413: "Request too large", 415: "Unsupported content type",
          422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal error",
          503: "Service Unavailable"}


class HttpProblem(Exception):
    """Raised inside a handler to answer with a problem body (``headers`` e.g. ``Retry-After``)."""

    def __init__(self, status: int, reason: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem(status: int, reason: str, detail: str, *, base: str = "urn:enarx:problem:", title: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response; ``base`` + ``reason`` is its ``type`` URI."""
    body = {"type": base + reason, "title": title or TITLES.get(status, "Refused"), "status": status,
            "detail": detail, "reason": reason, **extra}
    return JSONResponse(body, status_code=status, media_type=CT_PROBLEM, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as the declared or received size passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, "too-large", f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, "too-large", f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
