"""`reconciler.api.network.LeanPool`: httpcore's pool bookkeeping in one pass makes exactly the
decisions httpcore's own does, on any pool: the two are run side by side on random states."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import httpcore
import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api.network import LeanPool, use_asyncio_network

ORIGINS = [httpcore.URL(u).origin for u in ("http://a:80/", "http://b:80/")]


@dataclass(eq=False)
class FakeConnection:
    name: str
    origin: httpcore.Origin
    closed: bool = False
    expired: bool = False
    idle: bool = False
    available: bool = False

    def is_closed(self) -> bool:
        return self.closed

    def has_expired(self) -> bool:
        return self.expired

    def is_idle(self) -> bool:
        return self.idle

    def is_available(self) -> bool:
        return self.available

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin


@dataclass(eq=False)
class FakeRequest:
    request: httpcore.Request
    connection: FakeConnection | None = None
    assigned: list[str] = field(default_factory=list)

    def is_queued(self) -> bool:
        return self.connection is None

    def assign_to_connection(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.assigned.append(connection.name)


connections = st.lists(
    st.builds(
        FakeConnection,
        name=st.uuids().map(str),
        origin=st.sampled_from(ORIGINS),
        closed=st.booleans(),
        expired=st.booleans(),
        idle=st.booleans(),
        available=st.booleans(),
    ),
    max_size=8,
)
requests = st.lists(st.tuples(st.sampled_from([0, 1]), st.booleans()), max_size=8)


def pool_of(
    cls: type[httpcore.AsyncConnectionPool],
    conns: list[FakeConnection],
    reqs: list[FakeRequest],
    max_connections: int,
    max_keepalive: int,
) -> httpcore.AsyncConnectionPool:
    pool = cls(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    made = iter(range(1000))

    def create_connection(origin: httpcore.Origin) -> FakeConnection:
        return FakeConnection(f"new-{next(made)}", origin)

    pool.create_connection = create_connection  # type: ignore[method-assign,assignment]
    pool._connections = list(conns)  # type: ignore[arg-type]
    pool._requests = list(reqs)  # type: ignore[arg-type]
    return pool


@settings(max_examples=400, deadline=None)
@given(
    conns=connections,
    reqs=requests,
    max_connections=st.integers(1, 6),
    max_keepalive=st.integers(0, 6),
)
def test_the_lean_pool_decides_as_httpcores_own(
    conns: list[FakeConnection],
    reqs: list[tuple[int, bool]],
    max_connections: int,
    max_keepalive: int,
) -> None:
    queued = [
        FakeRequest(httpcore.Request("GET", f"http://{'ab'[o]}:80/"), None if q else conns[0])
        if conns or q
        else FakeRequest(httpcore.Request("GET", f"http://{'ab'[o]}:80/"))
        for o, q in reqs
    ]
    results = []
    for cls in (httpcore.AsyncConnectionPool, LeanPool):
        mine_conns, mine_reqs = copy.deepcopy((conns, queued))
        pool = pool_of(cls, mine_conns, mine_reqs, max_connections, max_keepalive)
        closing = pool._assign_requests_to_connections()
        results.append(
            (
                [c.name for c in closing],
                [c.name for c in pool._connections],  # type: ignore[attr-defined]
                [r.assigned for r in mine_reqs],
            )
        )
    assert results[0] == results[1]


def test_the_client_pool_is_the_lean_one() -> None:
    client = httpx.AsyncClient()
    assert use_asyncio_network(client)
    assert type(client._transport._pool) is LeanPool  # type: ignore[attr-defined]
