"""The git webhook's guards: a bounded body, a verified signature, and each delivery once.

The body is read only up to `max_body` bytes (a declared `Content-Length` over the cap is
answered 413 before a byte of the body is read) and within `body_timeout` seconds, so neither a
huge nor a slow POST can hold memory or a connection. The signature header must be ASCII
`sha256=<hex>`; anything else is simply a bad signature (401). A delivery ID (GitHub's
`X-GitHub-Delivery`) already seen is answered 200 and triggers nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("reconciler.web")

MAX_BODY = 1024 * 1024
BODY_TIMEOUT = 10.0
DELIVERIES_KEPT = 4096


@dataclass(frozen=True)
class WebhookLimits:
    max_body: int = MAX_BODY
    body_timeout: float = BODY_TIMEOUT


class _TooLarge(Exception):
    pass


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.isascii() or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").encode())


def _refuse(status: int, error: str) -> Response:
    # the client may still be sending: close the connection rather than read what is left
    return JSONResponse({"error": error}, status_code=status, headers={"Connection": "close"})


async def read_body(request: Request, limits: WebhookLimits) -> bytes | Response:
    """The request body, or the response that refuses it (413, 408, 400)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            return _refuse(400, "bad Content-Length")
        if int(declared) > limits.max_body:
            log.warning("webhook refused: body of %s bytes is over the limit", declared)
            return _refuse(413, f"body over {limits.max_body} bytes")
    chunks: list[bytes] = []

    async def collect() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body:
                raise _TooLarge
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), limits.body_timeout)
    except _TooLarge:
        log.warning("webhook refused: body over %d bytes", limits.max_body)
        return _refuse(413, f"body over {limits.max_body} bytes")
    except TimeoutError:
        log.warning("webhook refused: body not received within %gs", limits.body_timeout)
        return _refuse(408, "body too slow")
    except ClientDisconnect:
        log.info("webhook: the client went away before sending its body")
        return Response(status_code=400)
    return b"".join(chunks)


class Deliveries:
    """The most recent delivery IDs, so a replayed delivery triggers nothing."""

    def __init__(self, kept: int = DELIVERIES_KEPT) -> None:
        self.kept = kept
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, delivery: str | None) -> bool:
        """True unless `delivery` was seen already (then it is a replay); remembers it."""
        if not delivery:
            return True
        if delivery in self._seen:
            self._seen.move_to_end(delivery)
            return False
        self._seen[delivery] = None
        if len(self._seen) > self.kept:
            self._seen.popitem(last=False)
        return True
