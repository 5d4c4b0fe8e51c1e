"""Every error the reconciler raises on purpose, in one tree.

    ReconcilerError                  anything we report to a user as a one-line message
    ├── ConfigError                  bad or missing configuration (no API key, bad URL, ...)
    └── ApiError                     talking to the Gcore API failed
        ├── ApiTransportError        no HTTP answer: connect error, timeout, dropped connection
        └── ApiStatusError           the API answered with an error status
            ├── ValidationFailedError    400 / 422: the body was refused
            ├── AuthenticationError      401: missing or wrong API key
            ├── PermissionDeniedError    403: forbidden (no capacity, no rights)
            ├── NotFoundError            404
            ├── ConflictError            409: a deployment with that name exists
            ├── RateLimitedError         429: slow down; carries `retry_after`
            └── ServerError              5xx

Retry decisions read the class, never a message: `ApiError.temporary` is true for the errors a
later identical request may not meet (transport errors, 429, 5xx). The client resends what
provably never arrived (a refused connection, a 429) by itself; a mutating request that may
have taken effect (`ApiTransportError.maybe_applied`, or a 5xx) is raised to the executor, whose
`send_checked` reads the world before it sends that request again.

Messages name the request (method and path, which holds project and deployment name) and the
API's own words. They never hold the API key: the client never puts it anywhere but a header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "ApiStatusError",
    "ApiTransportError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ReconcilerError",
    "ServerError",
    "ValidationFailedError",
    "status_error_class",
]


class ReconcilerError(Exception):
    """Base of all errors reported to a user as one line, without a traceback."""


class ConfigError(ReconcilerError):
    """Configuration is missing or wrong."""


class ApiError(ReconcilerError):
    """A request to the Gcore API failed."""

    temporary: ClassVar[bool] = False

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class ApiTransportError(ApiError):
    """No HTTP answer came back.

    `maybe_applied` is true when the request may have reached the server (it was sent, then the
    connection dropped or timed out while waiting); false when it provably never left (connect
    error), so even a mutating request may be sent again.
    """

    temporary = True

    def __init__(self, message: str, *, method: str, path: str, maybe_applied: bool) -> None:
        super().__init__(f"{method} {path}: {message}", method=method, path=path)
        self.maybe_applied = maybe_applied


class ApiStatusError(ApiError):
    """The API answered with an error status and (usually) Gcore's error body."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status_code: int,
        exception_class: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        invalid_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.status_code = status_code
        self.exception_class = exception_class
        self.detail = detail
        self.request_id = request_id
        self.invalid_fields = dict(invalid_fields or {})
        text = f"{method} {path}: HTTP {status_code}"
        if exception_class:
            text += f" {exception_class}"
        if detail:
            text += f": {detail}"
        fields = [
            f"{name}: {', '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for name, msgs in sorted(self.invalid_fields.items())
        ]
        extra = [f for f in fields if f not in (detail or "")]
        if extra:
            text += f" ({'; '.join(extra)})"
        if request_id:
            text += f" [request {request_id}]"
        super().__init__(text, method=method, path=path)


class ValidationFailedError(ApiStatusError):
    """400 or 422: the API refused the request body."""


class AuthenticationError(ApiStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(ApiStatusError):
    """403: not allowed (for example no capacity for a flavor in a region)."""


class NotFoundError(ApiStatusError):
    """404."""


class ConflictError(ApiStatusError):
    """409: the resource exists already."""


class RateLimitedError(ApiStatusError):
    """429: too many requests. `retry_after` is the server's hint in seconds, if any."""

    temporary = True

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after = retry_after


class ServerError(ApiStatusError):
    """5xx: the API failed on its side."""

    temporary = True


_BY_STATUS: dict[int, type[ApiStatusError]] = {
    400: ValidationFailedError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationFailedError,
    429: RateLimitedError,
}


def status_error_class(status_code: int) -> type[ApiStatusError]:
    """The error class for an HTTP error status."""
    if status_code >= 500:
        return ServerError
    return _BY_STATUS.get(status_code, ApiStatusError)
