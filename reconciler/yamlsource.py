"""Safe YAML: documents as plain values, with the line and column of every key and value.

PyYAML (libyaml where available) composes each document into nodes that carry marks; this module
builds the Python values itself from those nodes, so it can record where each path came from,
refuse what a manifest never needs, and stay bounded on hostile input:

- the file's size is capped (`MAX_FILE_BYTES`, checked by the caller before reading);
- bytes must be UTF-8 (the error names the line and column of the first bad byte);
- aliases are expanded while building, against a budget of nodes per file, so an alias bomb
  ("billion laughs") stops at the budget instead of exhausting memory;
- nesting deeper than `MAX_DEPTH` is refused;
- duplicate keys are errors (YAML would silently keep the last one); every key is a string
  (`~:`, `1:` or an unquoted `yes:` would otherwise vanish or turn into something else);
- only the standard YAML tags are accepted, on scalars, mappings and sequences alike;
- control characters are refused: raw ones in the file at their line and column, escaped ones
  (ESC or NUL written as double-quoted escapes) in any string; tab, newline and CR only in
  `description` and `envs` values;
- integers must fit in 64 bits.

`${VAR}` in a string value under `spec` is replaced from the environment (`$${` stands for a
literal `${`); anywhere else it is an error (labels, names and `apiVersion` are stored or printed
in clear). An unset variable is an error at the value's place; every interpolated path is
reported as sensitive so it is never printed.

The marks, problems and documents it builds, and the checks of the file's bytes and characters
before parsing, are in `yamlplaces`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .yamlplaces import Document, Mark, Path, YamlProblem, raw_control, syntax_problem

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
INT_TAG = "tag:yaml.org,2002:int"
SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)
INT64 = (-(2**63), 2**63 - 1)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, LF and CR allowed
VAR_RE = re.compile(r"\$(\$?)\{([^}]*)\}")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")  # an int YAML 1.1 reads as plain decimal
_TAGS: dict[str, str] = {}  # plain scalar -> its implicit tag (a pure function of the text)
_TAGS_CAP = 4096


class Loader(_BaseLoader):  # type: ignore[misc]
    """PyYAML's safe loader, remembering which tag each plain scalar resolves to.

    Without path resolvers (the safe loader has none), a plain scalar's tag depends on its text
    alone; PyYAML works it out in Python, with regular expressions, for every scalar of every
    file (a tenth of loading 10,000 manifests). Short texts are remembered, up to a cap."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not ScalarNode or not implicit[0] or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        tag = _TAGS.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= 64:
                if len(_TAGS) >= _TAGS_CAP:
                    _TAGS.clear()
                _TAGS[value] = tag
        return tag


PLAIN_SCALARS: dict[str, Callable[[SafeConstructor, Any], Any]] = {
    "tag:yaml.org,2002:int": SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": SafeConstructor.construct_yaml_null,
}


class _TooBig(Exception):
    pass


def in_spec(path: Path) -> bool:
    """Whether `path` is inside a manifest's `spec` (of the document, or of a List item)."""
    return path[:1] == ("spec",) or (len(path) > 2 and path[0] == "items" and path[2] == "spec")


def _identity(node: Node) -> Any:
    """A hashable identity of a key node (a sequence or mapping key is its own identity)."""
    return (node.tag, node.value) if isinstance(node, ScalarNode) else ("node", id(node))


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
            if self._tag_refused(node, path, SEQ_TAG):
                return None
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _tag_refused(self, node: Node, path: Path, allowed: frozenset[str] | str) -> bool:
        if node.tag == allowed or node.tag in allowed:
            return False
        self.problems.append(YamlProblem(Mark.of(node), f"unsupported YAML tag {node.tag}", path))
        return True

    def _scalar(self, node: Node, path: Path) -> Any:
        if node.tag == STR_TAG:  # the usual scalar, without a call per check
            text: str = node.value
            if "${" in text:
                text = self._interpolate(node, path)
            return text if text.isprintable() else self._checked(node, path, text)
        if self._tag_refused(node, path, SCALAR_TAGS):
            return None
        plain = PLAIN_SCALARS.get(node.tag)  # skips construct_object's bookkeeping when common
        try:
            if node.tag == INT_TAG and DECIMAL.fullmatch(node.value):
                value = int(node.value)  # what construct_yaml_int makes of it, sooner
            elif plain is not None:
                value = plain(self.constructor, node)
            else:
                value = self.constructor.construct_object(node)
        except (ConstructorError, ValueError, OverflowError):
            self.problems.append(YamlProblem(Mark.of(node), f"not a valid {node.tag}", path))
            return None
        out_of_range = isinstance(value, int) and not INT64[0] <= value <= INT64[1]
        if out_of_range and not isinstance(value, bool):
            self.problems.append(
                YamlProblem(Mark.of(node), "number out of range (must fit in 64 bits)", path)
            )
            return None
        return value

    def _checked(self, node: Node, path: Path, text: str) -> str:
        """`text` unless it holds a control character (reported without the value)."""
        if text.isprintable():
            return text
        free_text = bool(path) and (path[-1] == "description" or path[-2:-1] == ("envs",))
        found = (FREE_TEXT if free_text else CONTROL).search(text)
        if found:
            self.problems.append(
                YamlProblem(
                    Mark.of(node),
                    f"control character U+{ord(found.group()):04X} is not allowed here",
                    path,
                )
            )
        return text

    def _interpolate(self, node: Node, path: Path) -> str:
        text: str = node.value
        if "${" not in text:
            return text
        if not in_spec(path) and any(not m.group(1) for m in VAR_RE.finditer(text)):
            self.problems.append(
                YamlProblem(
                    Mark.of(node),
                    "${...} is only allowed in spec values (it would be stored or printed in "
                    "clear here); not interpolated",
                    path,
                )
            )
            return ""
        touched = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal touched
            if match.group(1):  # `$${...}` is a literal `${...}`
                return match.group(0)[1:]
            name = match.group(2)
            if not NAME_RE.match(name):
                self.problems.append(
                    YamlProblem(
                        Mark.of(node), f"${{{name}}} is not a valid variable name", path, True
                    )
                )
                return ""
            if name not in self.env:
                self.problems.append(
                    YamlProblem(
                        Mark.of(node), f"environment variable {name} is not set", path, True
                    )
                )
                return ""
            touched = True
            return self.env[name]

        result = VAR_RE.sub(substitute, text)
        if touched:
            self.doc.sensitive.add(path)
        return result

    def _key(self, node: Node, path: Path) -> Any:
        if not isinstance(node, ScalarNode):
            self.problems.append(
                YamlProblem(Mark.of(node), "a key must be a plain value (a string)", path)
            )
            return None
        if node.tag != STR_TAG:
            shown = f"{node.value!r}" if node.value else "an empty key"
            self.problems.append(
                YamlProblem(
                    Mark.of(node),
                    f"a key must be a string; {shown} is read as {node.tag.rsplit(':', 1)[-1]}"
                    " (quote it)",
                    path,
                )
            )
            return None
        return self._checked(node, path, node.value)

    def _pairs(self, node: MappingNode, depth: int) -> list[tuple[Node, Node]]:
        """The node's key/value pairs with `<<` merges resolved (own keys win)."""
        if depth > MAX_DEPTH:
            return []
        pairs: list[tuple[Node, Node]] = node.value
        for key_node, _ in pairs:
            if key_node.tag == MERGE_TAG:
                break
        else:
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
        own_keys = {_identity(k) for k, _ in own}
        seen: set[Any] = set()
        result = []
        for key_node, value_node in merged:
            identity = _identity(key_node)
            if identity in own_keys or identity in seen:
                continue
            seen.add(identity)
            result.append((key_node, value_node))
        return result + own

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        if node.tag != MAP_TAG and self._tag_refused(node, path, MAP_TAG):
            return result
        for key_node, value_node in self._pairs(node, depth):
            if key_node.tag == STR_TAG and isinstance(key_node, ScalarNode):  # as _key, sooner
                key = key_node.value
                if not key.isprintable():
                    key = self._checked(key_node, path, key)
            else:
                key = self._key(key_node, path)
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


def load_documents(
    text: str, env: Mapping[str, str], problems: list[YamlProblem]
) -> list[Document]:
    """Every non-empty document of `text`; problems are appended to `problems`."""
    builder = _Builder(env, problems)
    documents: list[Document] = []
    raw = raw_control(text.removeprefix("\ufeff"))
    if raw is not None:
        problems.append(raw)
        return documents
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
        problems.append(syntax_problem(exc, text))
    except RecursionError:
        problems.append(YamlProblem(Mark(1, 1), f"nested deeper than {MAX_DEPTH} levels"))
    return documents
