"""Configuration read from the environment, as the official Gcore SDK reads it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

DEFAULT_BASE_URL = "https://api.gcore.com"


class Secret:
    """A string that will not show itself: repr, str and format all print a mask.

    The API key travels as a Secret from the environment to the one place that needs its value,
    the Authorization header, so it cannot leak into a log line, an exception or a repr.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and how to authenticate to it."""

    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None
    project_id: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        key = env.get("GCORE_API_KEY") or None
        project = env.get("GCORE_CLOUD_PROJECT_ID") or None
        if project is not None:
            try:
                project_id: int | None = int(project)
            except ValueError:
                raise ConfigError(
                    f"GCORE_CLOUD_PROJECT_ID must be an integer, got {project!r}"
                ) from None
        else:
            project_id = None
        base_url = (env.get("GCORE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"GCORE_BASE_URL must be an http(s) URL, got {base_url!r}")
        return cls(base_url=base_url, api_key=Secret(key) if key else None, project_id=project_id)

    def require_key(self) -> Secret:
        if self.api_key is None:
            raise ConfigError(
                "GCORE_API_KEY is not set: export your Gcore API key, or use --simulate"
            )
        return self.api_key
