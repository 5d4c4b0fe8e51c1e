"""Registry credentials, secrets, API keys and deployment logs: the synchronous endpoints.

A thin layer over `ApiClient`'s one request path (same retries, same error classes): these
objects have no tasks, so a create, change or delete is done when its answer comes. Credentials
and secrets change with PUT, API keys with PATCH (description only). The secret an API key
create returns once is handed back as a `Secret`, so no repr or log line can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from ..config import Secret
from ..kinds import Kind
from .client import ApiClient


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ObjectAnswer(_Answer):
    """Any of the three kinds as the API reports it; the fields the kind has are filled."""

    name: str
    project_id: int | None = None
    registry_url: str | None = None
    username: str | None = None
    type: str | None = None
    data: dict[str, Any] | None = None
    description: str | None = None
    expires_at: str | None = None
    created_at: str | None = None
    deployment_names: list[str] = Field(default_factory=list)

    def view(self, kind: Kind) -> dict[str, Any]:
        """The answer in the request shape of `kind` (without `name`), for the diff."""
        if kind is Kind.REGISTRY_CREDENTIAL:
            return {"registry_url": self.registry_url, "username": self.username}
        if kind is Kind.SECRET:
            data = dict(self.data or {})
            data.pop("aws_secret_access_key", None)  # write-only: masked in answers
            return {"type": self.type, "data": data}
        return {"description": self.description, "expires_at": self.expires_at}


class LogLine(_Answer):
    message: str
    pod: str = ""
    region_id: int | None = None
    time: str = ""


CHANGE_METHOD = {Kind.REGISTRY_CREDENTIAL: "PUT", Kind.SECRET: "PUT", Kind.API_KEY: "PATCH"}


class InferenceObjects:
    """The three collections of `/cloud/v3/inference/{project_id}/…`, and deployment logs."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @staticmethod
    def path(kind: Kind, project_id: int, name: str | None = None) -> str:
        path = f"/cloud/v3/inference/{int(project_id)}/{kind.collection}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    async def list_objects(self, kind: Kind, project_id: int) -> list[ObjectAnswer]:
        return await self.api._paginate(self.path(kind, project_id), ObjectAnswer)

    async def get(self, kind: Kind, project_id: int, name: str) -> ObjectAnswer:
        return await self.api._get_model(self.path(kind, project_id, name), ObjectAnswer)

    async def create(
        self, kind: Kind, project_id: int, name: str, body: Mapping[str, Any]
    ) -> tuple[ObjectAnswer, Secret | None]:
        """POST; for an API key, also the secret the API gives this once."""
        path = self.path(kind, project_id)
        data = (await self.api._request("POST", path, json={"name": name, **body})).json()
        secret = data.pop("secret", None) if isinstance(data, dict) else None
        answer = self.api._parse(ObjectAnswer, data, path)
        return answer, Secret(str(secret)) if secret else None

    async def change(self, kind: Kind, project_id: int, name: str, body: Mapping[str, Any]) -> None:
        """PUT the whole body (credentials, secrets) or PATCH the description (API keys)."""
        method = CHANGE_METHOD[kind]
        await self.api._request(method, self.path(kind, project_id, name), json=dict(body))

    async def delete(self, kind: Kind, project_id: int, name: str) -> None:
        await self.api._request("DELETE", self.path(kind, project_id, name))

    async def logs(
        self,
        project_id: int,
        name: str,
        *,
        region_id: int | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        """A deployment's log lines, oldest first; `tail` keeps only the newest N."""
        path = self.api.deployments_path(project_id, name) + "/logs"
        params: list[tuple[str, str | int]] = [("order_by", "time.desc" if tail else "time.asc")]
        if region_id is not None:
            params.append(("region_id", region_id))
        if tail:
            query = [*params, ("limit", tail), ("offset", 0)]
            page = (await self.api._request("GET", path, params=query)).json()
            lines = [self.api._parse(LogLine, r, path) for r in page.get("results") or []]
            return lines[::-1]
        return await self.api._paginate(path, LogLine, params)
