"""Manifest problems in words: the error type, its one-line form, and pydantic's errors
translated for people (unknown fields suggest the closest known name; no value from a sensitive
path is ever echoed)."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from ..errors import ReconcilerError
from ..textsafe import escape, line_start


@dataclass(frozen=True, order=True)
class ManifestError:
    """One problem at one place."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{line_start(self.file)}:{self.line}:{self.column}"
        message = escape(self.message)
        return f"{where}: {escape(self.path)}: {message}" if self.path else f"{where}: {message}"


class ManifestErrors(ReconcilerError):
    """The manifest set is invalid; `errors` holds every problem, sorted."""

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        self.errors = sorted(errors)
        count = len(self.errors)
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{self.errors[0]}{more}")


def format_path(path: Iterable[str | int]) -> str:
    """`("spec", "containers", 0, "scale")` -> `spec.containers[0].scale`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return (
        "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
    )


def describe(value: Any, sensitive: bool) -> str:
    if sensitive:
        return f"{_kind_of(value)} (value hidden: sensitive)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> `X`."""
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) != 1:
                return None
            annotation = non_none[0]
        elif origin is typing.Annotated:
            annotation = args[0]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the fields at `loc` (for suggesting field names)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or typing.get_origin(current) is dict:
            args = typing.get_args(current)
            current = args[-1] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            current = field.annotation if field else None
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def message(err: ErrorDetails, sensitive: bool, model: type[BaseModel]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    loc = err["loc"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        text = "unknown field"
        if parent is not None:
            close = difflib.get_close_matches(str(loc[-1]), _field_names(parent), n=1, cutoff=0.6)
            if close:
                text += f"; did you mean `{close[0]}`?"
            else:
                text += f"; expected one of: {', '.join(sorted(_field_names(parent)))}"
        return text
    shown = describe(value, sensitive)
    if kind == "int_type":
        return f"expected an integer, got {shown}"
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool | int | float):
            literal = str(value).lower() if isinstance(value, bool) else str(value)
            hint = "; quote it" if sensitive else f'; quote it: "{literal}"'
        return f"expected a string, got {shown}{hint}"
    if kind == "bool_type":
        return f"expected true or false, got {shown}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {shown}"
    if kind == "list_type":
        return f"expected a list, got {shown}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {shown}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {shown}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        if isinstance(value, str):
            return "must not be empty"
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return (
            "must be 4-30 characters of lowercase letters, digits and '-', "
            f"starting with a letter and not ending with '-'; got {shown}"
        )
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {shown}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])
