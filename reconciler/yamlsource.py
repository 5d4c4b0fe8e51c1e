"""Safe YAML: documents as plain values, with the line and column of every key and value.

PyYAML (libyaml where available) composes each document into nodes that carry marks; this module
builds the Python values itself from those nodes, so it can record where each path came from,
refuse what a manifest never needs, and stay bounded on hostile input:

- the file's size is capped (`MAX_FILE_BYTES`, checked by the caller before reading);
- bytes must be UTF-8 (the error names the line and column of the first bad byte);
- aliases are expanded while building, against a budget of nodes per file, so an alias bomb
  ("billion laughs") stops at the budget instead of exhausting memory;
- nesting deeper than `MAX_DEPTH` is refused;
- duplicate keys are errors (YAML would silently keep the last one);
- only the standard YAML tags are accepted.

`${VAR}` in a string value is replaced from the environment (`$${` stands for a literal `${`).
An unset variable is an error at the value's place; every interpolated path is reported as
sensitive so it is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
VAR_RE = re.compile(r"\$(\$?)\{([^}]*)\}")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PLAIN_SCALARS: dict[str, Callable[[SafeConstructor, Any], Any]] = {
    "tag:yaml.org,2002:int": SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": SafeConstructor.construct_yaml_null,
}

Path = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int

    @classmethod
    def of(cls, node: Node) -> Mark:
        return cls.at(node.start_mark)

    @classmethod
    def at(cls, mark: Any) -> Mark:
        """From PyYAML's 0-based mark."""
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class YamlProblem:
    """Something wrong at a place in a file; `path` is where in the document, if known."""

    mark: Mark
    message: str
    path: Path = ()


@dataclass
class Document:
    """One YAML document: its value, where each path starts, and which paths are sensitive.

    The marks are PyYAML's own (0-based, made by the parser anyway); a `Mark` is built only for
    the few places an error message asks for, not for every node of every file.
    """

    value: Any
    start: Mark
    key_marks: dict[Path, Any] = field(default_factory=dict)
    value_marks: dict[Path, Any] = field(default_factory=dict)
    sensitive: set[Path] = field(default_factory=set)

    def mark_of(self, path: Path, *, key: bool = False) -> Mark:
        """The mark of `path`, or of its nearest ancestor that has one."""
        marks = self.key_marks if key else self.value_marks
        probe = path
        while probe:
            if probe in marks:
                return Mark.at(marks[probe])
            if not key and probe in self.key_marks:
                return Mark.at(self.key_marks[probe])
            probe = probe[:-1]
        return self.start


class _TooBig(Exception):
    pass


class _Builder:
    """Builds the values of one file's documents from nodes, recording marks."""

    def __init__(self, env: Mapping[str, str], problems: list[YamlProblem]) -> None:
        self.env = env
        self.problems = problems
        self.budget = MAX_NODES
        self.constructor = SafeConstructor()

    def document(self, root: Node) -> Document:
        doc = Document(value=None, start=Mark.of(root))
        self.doc = doc
        doc.value = self.build(root, (), 0)
        return doc

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig
        if depth > MAX_DEPTH:
            self.problems.append(
                YamlProblem(Mark.of(node), f"nested deeper than {MAX_DEPTH} levels", path)
            )
            return None
        if path not in self.doc.value_marks:
            self.doc.value_marks[path] = node.start_mark
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: Path) -> Any:
        if node.tag == STR_TAG:
            return self._interpolate(node, path)
        plain = PLAIN_SCALARS.get(node.tag)
        if plain is not None:  # skips construct_object's bookkeeping for the common tags
            return plain(self.constructor, node)
        try:
            return self.constructor.construct_object(node)
        except ConstructorError:
            self.problems.append(
                YamlProblem(Mark.of(node), f"unsupported YAML tag {node.tag}", path)
            )
            return None

    def _interpolate(self, node: Node, path: Path) -> str:
        text: str = node.value
        if "${" not in text:
            return text
        touched = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal touched
            if match.group(1):  # `$${...}` is a literal `${...}`
                return match.group(0)[1:]
            name = match.group(2)
            if not NAME_RE.match(name):
                self.problems.append(
                    YamlProblem(Mark.of(node), f"${{{name}}} is not a valid variable name", path)
                )
                return ""
            if name not in self.env:
                self.problems.append(
                    YamlProblem(Mark.of(node), f"environment variable {name} is not set", path)
                )
                return ""
            touched = True
            return self.env[name]

        result = VAR_RE.sub(substitute, text)
        if touched:
            self.doc.sensitive.add(path)
        return result

    def _key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            self.problems.append(YamlProblem(Mark.of(node), "a key must be a plain value"))
            return None
        return node.value if node.tag == STR_TAG else self._scalar(node, ())

    def _pairs(self, node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
        """The node's key/value pairs with `<<` merges resolved (own keys win)."""
        if depth > MAX_DEPTH:
            return []
        pairs: list[tuple[Node, Node]] = node.value
        if not any(key_node.tag == MERGE_TAG for key_node, _ in pairs):
            return pairs  # the usual case: no merge to resolve
        own: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                self.budget -= 1
                if self.budget < 0:
                    raise _TooBig
                if not isinstance(source, MappingNode):
                    self.problems.append(
                        YamlProblem(
                            Mark.of(source), "a merge (<<) takes a mapping or a list of them"
                        )
                    )
                    continue
                merged.extend(self._pairs(source, depth + 1))
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        seen: set[Any] = set()
        result = []
        for key_node, value_node in merged:
            if key_node.value in own_keys or key_node.value in seen:
                continue
            seen.add(key_node.value)
            result.append((key_node, value_node))
        return result + own

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in self._pairs(node, depth):
            key = self._key(key_node)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first = Mark.at(self.doc.key_marks[child])
                self.problems.append(
                    YamlProblem(
                        Mark.of(key_node),
                        f"duplicate key {key!r} (first at line {first.line})",
                        child,
                    )
                )
            self.doc.key_marks[child] = key_node.start_mark
            self.doc.value_marks[child] = value_node.start_mark
            result[key] = self.build(value_node, child, depth + 1)
        return result


def _yaml_problem(exc: yaml.YAMLError) -> YamlProblem:
    """A syntax error, placed where the broken construct starts (the context), when known."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if "'\\t'" in problem or "tab character" in problem:
        problem, context, context_mark = "tab character: YAML indentation uses spaces", None, None
    mark = context_mark or problem_mark
    where = Mark(mark.line + 1, mark.column + 1) if mark is not None else Mark(1, 1)
    text = f"YAML syntax error: {problem}"
    if context:
        text += f" ({context}"
        if problem_mark is not None and context_mark is not None:
            text += f"; the problem shows at line {problem_mark.line + 1}"
        text += ")"
    return YamlProblem(where, text)


def decode(data: bytes) -> tuple[str | None, YamlProblem | None]:
    """UTF-8 text of a file, or where its first non-UTF-8 byte is."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        return None, YamlProblem(
            Mark(line, column), f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded"
        )


def load_documents(
    text: str, env: Mapping[str, str], problems: list[YamlProblem]
) -> list[Document]:
    """Every non-empty document of `text`; problems are appended to `problems`."""
    builder = _Builder(env, problems)
    documents: list[Document] = []
    try:
        for root in yaml.compose_all(text, Loader=Loader):
            if root is None:
                continue
            if isinstance(root, ScalarNode) and root.tag == "tag:yaml.org,2002:null":
                continue
            documents.append(builder.document(root))
    except _TooBig:
        problems.append(
            YamlProblem(
                Mark(1, 1),
                f"more than {MAX_NODES} YAML nodes once aliases are expanded "
                "(an alias bomb?); refusing to load",
            )
        )
        return []
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc))
    except RecursionError:
        problems.append(YamlProblem(Mark(1, 1), f"nested deeper than {MAX_DEPTH} levels"))
    return documents
