"""Hypothesis strategies for valid deployment specs (as request-shape dicts)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from reconciler.spec import NAME_PATTERN

# printable text without `$` (which would start an interpolation) and without surrogates
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="$", exclude_categories=("Cs", "Cc")),
    min_size=1,
    max_size=20,
)
NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,19}", fullmatch=True)
PERCENT = st.integers(1, 100)


@st.composite
def optional_fields(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """A dict holding a random subset of `fields`."""
    chosen = draw(st.sets(st.sampled_from(sorted(fields))) if fields else st.just(set()))
    return {name: draw(fields[name]) for name in sorted(chosen)}


def threshold() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"threshold": PERCENT})


def triggers() -> st.SearchStrategy[dict[str, Any]]:
    sqs = st.fixed_dictionaries(
        {
            "activation_queue_length": st.integers(1, 100),
            "aws_region": TEXT,
            "queue_length": st.integers(1, 100),
            "queue_url": TEXT,
            "secret_name": TEXT,
        },
        optional={
            "aws_endpoint": st.none() | TEXT,
            "scale_on_delayed": st.booleans(),
            "scale_on_flight": st.booleans(),
        },
    )
    http = st.fixed_dictionaries({"rate": st.integers(1, 1000), "window": st.integers(1, 3600)})
    return optional_fields(
        {
            "cpu": threshold(),
            "memory": threshold(),
            "gpu_memory": threshold(),
            "gpu_utilization": threshold(),
            "http": http,
            "sqs": sqs,
        }
    )


@st.composite
def scale(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(0, 5))
    result: dict[str, Any] = {"min": low, "max": draw(st.integers(low, 10))}
    result.update(
        draw(
            optional_fields(
                {
                    "cooldown_period": st.none() | st.integers(1, 3600),
                    "polling_interval": st.none() | st.integers(5, 3600),
                    "triggers": triggers(),
                }
            )
        )
    )
    return result


@st.composite
def containers(draw: st.DrawFn) -> list[dict[str, Any]]:
    regions = draw(st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True))
    return [{"region_id": r, "scale": draw(scale())} for r in regions]


@st.composite
def probe(draw: st.DrawFn) -> dict[str, Any]:
    port = st.integers(1, 65535)
    action = draw(st.sampled_from(["exec", "http_get", "tcp_socket", None]))
    result: dict[str, Any] = {}
    if action == "exec":
        result["exec"] = {"command": draw(st.lists(TEXT, min_size=1, max_size=3))}
    elif action == "http_get":
        result["http_get"] = {"port": draw(port)} | draw(
            optional_fields(
                {
                    "path": TEXT,
                    "host": st.none() | TEXT,
                    "schema": st.sampled_from(["HTTP", "HTTPS"]),
                    "headers": st.dictionaries(TEXT, TEXT, max_size=2),
                }
            )
        )
    elif action == "tcp_socket":
        result["tcp_socket"] = {"port": draw(port)}
    result.update(
        draw(
            optional_fields(
                {
                    "failure_threshold": st.integers(1, 10),
                    "initial_delay_seconds": st.integers(0, 100),
                    "period_seconds": st.integers(1, 100),
                    "success_threshold": st.integers(1, 10),
                    "timeout_seconds": st.integers(1, 60),
                }
            )
        )
    )
    return result


def probe_config() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"enabled": st.booleans()}, optional={"probe": probe()})


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec body: required fields, and any subset of the optional ones."""
    body: dict[str, Any] = {
        "image": draw(TEXT),
        "flavor_name": draw(TEXT),
        "listening_port": draw(st.integers(1, 65535)),
        "containers": draw(containers()),
    }
    optional = {
        "command": st.none() | st.lists(TEXT, min_size=1, max_size=4),
        "credentials_name": st.none() | TEXT,
        "description": st.none() | TEXT,
        "envs": st.dictionaries(ENV_NAMES, TEXT, max_size=3),
        "ingress_opts": st.fixed_dictionaries(
            {}, optional={"disable_response_buffering": st.booleans()}
        ),
        "logging": st.fixed_dictionaries(
            {},
            optional={
                "enabled": st.booleans(),
                "destination_region_id": st.none() | st.integers(1, 50),
                "topic_name": st.none() | TEXT,
                "retention_policy": st.none()
                | st.fixed_dictionaries({"period": st.none() | st.integers(0, 1825)}),
            },
        ),
        "probes": optional_fields(
            {
                "liveness_probe": probe_config(),
                "readiness_probe": probe_config(),
                "startup_probe": probe_config(),
            }
        ),
        "timeout": st.none() | st.integers(0, 86400),
    }
    body.update(draw(optional_fields(optional)))
    auth = draw(st.sampled_from(["none", "keys", "flag"]))
    if auth == "keys":
        body["api_keys"] = draw(st.lists(TEXT, max_size=3))
    elif auth == "flag":
        body["auth_enabled"] = draw(st.booleans())
    return body
