"""What the API's answers mean: which failures to retry and how long to wait, the error of a
failed answer (redacted), and listings that keep the items they cannot parse."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import ApiStatusError, RateLimitedError, status_error_class
from ..redact import Redactor
from ..textsafe import escape

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Unreadable:
    """One item of a listing that does not parse: its name (or id) when it has one, and why."""

    name: str | None
    message: str


class Listing(list[M]):
    """The parsed items of a listing; `unreadable` holds the items that did not parse, so one odd
    item never fails the whole list (the caller decides what it means for that one)."""

    def __init__(self, items: Iterable[M] = (), unreadable: Iterable[Unreadable] = ()) -> None:
        super().__init__(items)
        self.unreadable: list[Unreadable] = list(unreadable)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. `attempts` counts the first try."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25  # each delay is shortened by up to this fraction, at random
    max_retry_after: float = 60.0  # a longer server hint is ignored in favour of our backoff

    def delay(self, retry: int, hint: float | None, rng: random.Random) -> float:
        if hint is not None and 0 <= hint <= self.max_retry_after:
            return hint
        backoff: float = min(self.base_delay * 2**retry, self.max_delay)
        return backoff * (1 - self.jitter * rng.random())


def retry_after(response: httpx.Response) -> float | None:
    ms = response.headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"]))
    return f"{first['msg']} at {where}" if where else str(first["msg"])


def unreadable(item: Any, exc: ValidationError) -> Unreadable:
    name = None
    if isinstance(item, dict):
        found = item.get("name", item.get("id"))
        name = found if isinstance(found, str) and found else None
    return Unreadable(name, first_error(exc))


def status_error(
    method: str, path: str, response: httpx.Response, redact: Redactor
) -> ApiStatusError:
    """The error for a failed answer; what the API says is redacted (it may echo a secret)."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None

    def said(value: Any) -> str | None:  # redacted (it may echo a secret), then made printable
        return escape(redact(str(value))) if value else None

    fields: dict[str, Any] = {}
    if isinstance(body, dict):
        invalid = body.get("invalid_fields")
        fields = {
            "exception_class": said(body.get("exception_class")),
            "detail": said(body.get("message") or body.get("detail")),
            "request_id": said(body.get("request_id")),
            "invalid_fields": {
                escape(str(name)): [
                    said(m) or "" for m in (msgs if isinstance(msgs, list) else [msgs])
                ]
                for name, msgs in invalid.items()
            }
            if isinstance(invalid, dict)
            else None,
        }
    elif response.text:
        fields = {"detail": said(response.text.strip()[:200])}
    fields.setdefault("request_id", None)
    fields["request_id"] = fields["request_id"] or said(response.headers.get("x-request-id"))
    cls = status_error_class(response.status_code)
    common = {"method": method, "path": path, "status_code": response.status_code, **fields}
    if cls is RateLimitedError:
        return RateLimitedError(retry_after=retry_after(response), **common)
    return cls(**common)
