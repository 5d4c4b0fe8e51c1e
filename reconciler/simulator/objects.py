"""Registry credentials, secrets and API keys: the simulator's synchronous inference objects.

Under `/cloud/v3/inference/{project_id}/registry_credentials|secrets|api_keys` (API.md, "Other
inference objects"). No tasks: every change is done when the answer comes. What the simulator
decides where upstream is silent (documented in the README's simulator section):

- a credential's `password` is write-only: no answer carries it;
- a secret's `data.aws_secret_access_key` comes back masked as `"****"` (the SDK's model requires
  the field, and a secret store that echoes secrets would be a poor one);
- an API key's `secret` is in the create answer only, once; later reads never carry it;
- the simulator keeps only SHA-256 digests of those values (it needs none of them back), so its
  state file holds no secret;
- `cloud.py` imports this module, so the few names needed from `cloud` and `app` are imported
  where they are used;
- creating a namesake is 409; a missing one is 404; deleting a credential or secret a deployment
  still names is 409 naming the deployments; an API key can be deleted while in use (that is how
  a key is revoked): the deployments keep its name, and a namesake created later serves them;
- a deployment create or update naming an object that does not exist is 422
  (`check_references`, called by the cloud).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .schema import NAME_RE, BodyInvalid

if TYPE_CHECKING:
    from .cloud import Cloud

Handler = Callable[[Request, "Cloud"], Awaitable[Response]]
Wrap = Callable[[Handler], Callable[[Request], Awaitable[Response]]]

CREDENTIALS = "registry_credentials"
SECRETS = "secrets"
API_KEYS = "api_keys"
MASK = "****"
NOUNS = {CREDENTIALS: "Registry credential", SECRETS: "Secret", API_KEYS: "API key"}
NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CredentialBody(_Strict):
    username: NonEmpty
    password: NonEmpty
    registry_url: NonEmpty


class CredentialCreate(CredentialBody):
    name: str


class AwsIam(_Strict):
    aws_access_key_id: NonEmpty
    aws_secret_access_key: NonEmpty


class SecretBody(_Strict):
    type: Literal["aws-iam"]
    data: AwsIam


class SecretCreate(SecretBody):
    name: str


class ApiKeyCreate(_Strict):
    name: str
    description: str | None = None
    expires_at: str | None = None


class ApiKeyUpdate(_Strict):
    description: str | None = None


def _error(status: int, exception_class: str, message: str) -> Exception:
    from .cloud import CloudError

    return CloudError(status, exception_class, message)


def _digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass
class StoredObject:
    """One object: the fields an answer shows, and digests of the write-only ones."""

    collection: str
    project_id: int
    name: str
    shown: dict[str, Any]
    digests: dict[str, str] = field(default_factory=dict)
    created: float = 0.0


@dataclass
class ObjectStore:
    """Every credential, secret and API key, by (collection, project_id, name)."""

    items: dict[tuple[str, int, str], StoredObject] = field(default_factory=dict)

    def get(self, collection: str, project_id: int, name: str) -> StoredObject:
        found = self.items.get((collection, project_id, name))
        if found is None:
            raise _error(404, "NotFoundError", f"{NOUNS[collection]} {name!r} not found")
        return found

    def exists(self, collection: str, project_id: int, name: str) -> bool:
        return (collection, project_id, name) in self.items

    def in_project(self, collection: str, project_id: int) -> list[StoredObject]:
        found = [o for (c, p, _), o in self.items.items() if c == collection and p == project_id]
        return sorted(found, key=lambda o: (o.created, o.name))

    def put(self, obj: StoredObject) -> None:
        self.items[(obj.collection, obj.project_id, obj.name)] = obj

    def dump(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self.items.values()]

    @classmethod
    def load(cls, data: list[dict[str, Any]]) -> ObjectStore:
        store = cls()
        for item in data:
            store.put(StoredObject(**item))
        return store


def references(spec: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(collection, name, field path) of every object a deployment body names."""
    if spec.get("credentials_name"):
        yield CREDENTIALS, spec["credentials_name"], "credentials_name"
    for i, key in enumerate(spec.get("api_keys") or ()):
        yield API_KEYS, key, f"api_keys.{i}"
    for i, container in enumerate(spec.get("containers") or ()):
        sqs = ((container.get("scale") or {}).get("triggers") or {}).get("sqs")
        if sqs and sqs.get("secret_name"):
            path = f"containers.{i}.scale.triggers.sqs.secret_name"
            yield SECRETS, sqs["secret_name"], path


def check_references(store: ObjectStore, project_id: int, spec: dict[str, Any]) -> None:
    """422 when a deployment body names a credential, secret or API key that does not exist."""
    fields: dict[str, list[str]] = {}
    for collection, name, path in references(spec):
        if not store.exists(collection, project_id, name):
            fields.setdefault(path, []).append(f"{NOUNS[collection]} {name!r} does not exist")
    if fields:
        first = next(iter(fields.items()))
        raise BodyInvalid(f"Validation error: {first[0]}: {first[1][0]}", fields)


def users(cloud: Cloud, collection: str, project_id: int, name: str) -> list[str]:
    """Names of the deployments (not being deleted) that name this object."""
    return sorted(
        dep.name
        for dep in cloud.in_project(project_id)
        if not dep.deleting
        and any(c == collection and n == name for c, n, _ in references(dep.spec))
    )


# -- answers -----------------------------------------------------------------------------------


def _view(cloud: Cloud, obj: StoredObject) -> dict[str, Any]:
    view = dict(obj.shown)
    if obj.collection == API_KEYS:
        view["deployment_names"] = users(cloud, API_KEYS, obj.project_id, obj.name)
    return view


async def _body(request: Request, model: type[BaseModel]) -> Any:
    from .app import _json_body

    data = await _json_body(request)
    if not isinstance(data, dict):
        raise BodyInvalid("Request body must be a JSON object", {"__root__": ["not an object"]})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "__root__"
            fields.setdefault(loc, []).append(err["msg"].removeprefix("Value error, "))
        first = next(iter(fields.items()))
        raise BodyInvalid(f"Validation error: {first[0]}: {first[1][0]}", fields) from None


def _new_name(cloud: Cloud, collection: str, project_id: int, name: str) -> None:
    if not NAME_RE.match(name):
        raise BodyInvalid(
            "Validation error: name: invalid name",
            {
                "name": [
                    "must be 4-30 characters of lowercase letters, digits and '-', "
                    "starting with a letter"
                ]
            },
        )
    if cloud.objects.exists(collection, project_id, name):
        raise _error(409, "ConflictError", f"{NOUNS[collection]} {name!r} already exists")


def _ids(request: Request) -> tuple[int, str]:
    return request.path_params["project_id"], request.path_params["name"]


def _credential_shown(project_id: int, name: str, body: CredentialBody) -> dict[str, Any]:
    return {
        "name": name,
        "project_id": project_id,
        "registry_url": body.registry_url,
        "username": body.username,
    }


def _secret_shown(name: str, body: SecretBody) -> dict[str, Any]:
    data = {"aws_access_key_id": body.data.aws_access_key_id, "aws_secret_access_key": MASK}
    return {"name": name, "type": body.type, "data": data}


def _collection_handlers(collection: str) -> dict[str, Handler]:
    async def list_(request: Request, cloud: Cloud) -> Response:
        from .app import _page

        items = [_view(cloud, o) for o in cloud.objects.in_project(collection, _ids_p(request))]
        return JSONResponse(_page(request, items, cloud.config.page_cap))

    async def get(request: Request, cloud: Cloud) -> Response:
        return JSONResponse(_view(cloud, cloud.objects.get(collection, *_ids(request))))

    async def delete(request: Request, cloud: Cloud) -> Response:
        project_id, name = _ids(request)
        cloud.objects.get(collection, project_id, name)
        using = users(cloud, collection, project_id, name) if collection != API_KEYS else []
        if using:
            raise _error(
                409,
                "ConflictError",
                f"{NOUNS[collection]} {name!r} is used by deployment(s): {', '.join(using)}",
            )
        del cloud.objects.items[(collection, project_id, name)]
        cloud.save()
        return Response(status_code=204)

    return {"list": list_, "get": get, "delete": delete}


def _ids_p(request: Request) -> int:
    project_id: int = request.path_params["project_id"]
    return project_id


async def _create_credential(request: Request, cloud: Cloud) -> Response:
    body: CredentialCreate = await _body(request, CredentialCreate)
    project_id = _ids_p(request)
    _new_name(cloud, CREDENTIALS, project_id, body.name)
    obj = StoredObject(
        CREDENTIALS,
        project_id,
        body.name,
        _credential_shown(project_id, body.name, body),
        {"password": _digest(body.password)},
        cloud.clock(),
    )
    cloud.objects.put(obj)
    cloud.save()
    return JSONResponse(_view(cloud, obj), status_code=201)


async def _replace_credential(request: Request, cloud: Cloud) -> Response:
    project_id, name = _ids(request)
    obj = cloud.objects.get(CREDENTIALS, project_id, name)
    body: CredentialBody = await _body(request, CredentialBody)
    obj.shown = _credential_shown(project_id, name, body)
    obj.digests = {"password": _digest(body.password)}
    cloud.save()
    return JSONResponse(_view(cloud, obj))


async def _create_secret(request: Request, cloud: Cloud) -> Response:
    body: SecretCreate = await _body(request, SecretCreate)
    project_id = _ids_p(request)
    _new_name(cloud, SECRETS, project_id, body.name)
    digests = {"aws_secret_access_key": _digest(body.data.aws_secret_access_key)}
    obj = StoredObject(
        SECRETS, project_id, body.name, _secret_shown(body.name, body), digests, cloud.clock()
    )
    cloud.objects.put(obj)
    cloud.save()
    return JSONResponse(_view(cloud, obj), status_code=201)


async def _replace_secret(request: Request, cloud: Cloud) -> Response:
    project_id, name = _ids(request)
    obj = cloud.objects.get(SECRETS, project_id, name)
    body: SecretBody = await _body(request, SecretBody)
    obj.shown = _secret_shown(name, body)
    obj.digests = {"aws_secret_access_key": _digest(body.data.aws_secret_access_key)}
    cloud.save()
    return JSONResponse(_view(cloud, obj))


async def _create_api_key(request: Request, cloud: Cloud) -> Response:
    from .cloud import iso

    body: ApiKeyCreate = await _body(request, ApiKeyCreate)
    project_id = _ids_p(request)
    _new_name(cloud, API_KEYS, project_id, body.name)
    secret = "sk-" + secrets.token_urlsafe(24)
    now = cloud.clock()
    shown = {
        "name": body.name,
        "description": body.description,
        "expires_at": body.expires_at,
        "created_at": iso(now) + "Z",
    }
    obj = StoredObject(API_KEYS, project_id, body.name, shown, {"secret": _digest(secret)}, now)
    cloud.objects.put(obj)
    cloud.save()
    return JSONResponse({**_view(cloud, obj), "secret": secret}, status_code=201)


async def _update_api_key(request: Request, cloud: Cloud) -> Response:
    obj = cloud.objects.get(API_KEYS, *_ids(request))
    body: ApiKeyUpdate = await _body(request, ApiKeyUpdate)
    if "description" in body.model_fields_set:
        obj.shown["description"] = body.description
    cloud.save()
    return JSONResponse(_view(cloud, obj))


def routes(wrap: Wrap) -> list[Route]:
    """The routes of the three collections, each handler wrapped by the app's `_endpoint`."""
    base = "/cloud/v3/inference/{project_id:int}/"
    writes: dict[str, tuple[Handler, str, Handler]] = {
        CREDENTIALS: (_create_credential, "PUT", _replace_credential),
        SECRETS: (_create_secret, "PUT", _replace_secret),
        API_KEYS: (_create_api_key, "PATCH", _update_api_key),
    }
    found = []
    for collection, (create, verb, change) in writes.items():
        common = _collection_handlers(collection)
        path = base + collection
        found += [
            Route(path, wrap(common["list"]), methods=["GET"]),
            Route(path, wrap(create), methods=["POST"]),
            Route(path + "/{name}", wrap(common["get"]), methods=["GET"]),
            Route(path + "/{name}", wrap(change), methods=[verb]),
            Route(path + "/{name}", wrap(common["delete"]), methods=["DELETE"]),
        ]
    return found
