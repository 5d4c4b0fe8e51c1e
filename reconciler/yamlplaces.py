"""Where things are in a YAML file, and the problems found before any value is built.

`Mark` (1-based line and column), `YamlProblem` (a message at a mark, with the document path
when known) and `Document` (a document's value with the marks of its paths and which paths are
sensitive) are what `yamlsource` builds and the manifest loader words its errors with. The
checks here place a problem in the file itself: bytes that are not UTF-8, raw control
characters, and PyYAML's syntax errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import Node

# what YAML itself refuses raw (C0 but tab/LF/CR, DEL, C1 but NEL, surrogates, non-characters),
# and the line breaks YAML counts that editors, grep and CI annotations do not (NEL, LS, PS, a CR
# outside CRLF): taken as breaks, they would put every later line number off by one
RAW_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029]|\r(?!\n)"
)
# the characters RAW_CONTROL can start at (any CR): one character class scans a file about three
# times as fast as the alternation, and most files hold none of them (LF line ends)
RAW_CONTROL_START = re.compile(
    "[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029]"
)

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
    # a problem of one value (an unset ${VAR}): the document's other fields are still checked,
    # so every error shows at once; a syntax error leaves nothing to check
    of_value: bool = False


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


def raw_control(text: str) -> YamlProblem | None:
    """The first character YAML refuses in a file, at its real line and column."""
    start = RAW_CONTROL_START.search(text)
    found = RAW_CONTROL.search(text, start.start()) if start is not None else None
    if found is None:
        return None
    before = text[: found.start()]
    line = before.count("\n") + 1
    column = found.start() - (before.rfind("\n") + 1) + 1
    return YamlProblem(
        Mark(line, column), f"control character U+{ord(found.group()):04X} is not allowed"
    )


def syntax_problem(exc: yaml.YAMLError, text: str = "") -> YamlProblem:
    """A syntax error, placed where the broken construct starts (the context), when known.

    `text` (the file's) lets a tab be named where libyaml only says "found character"."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if "'\\t'" in problem or "tab character" in problem or _tab_at(text, problem_mark):
        problem, context, context_mark = "tabs are not allowed for indentation", None, None
    mark = context_mark or problem_mark
    where = Mark(mark.line + 1, mark.column + 1) if mark is not None else Mark(1, 1)
    text = f"YAML syntax error: {problem}"
    if context:
        text += f" ({context}"
        if problem_mark is not None and context_mark is not None:
            text += f"; the problem shows at line {problem_mark.line + 1}"
        text += ")"
    return YamlProblem(where, text)


def _tab_at(text: str, mark: object) -> bool:
    """Whether the character at a problem's mark is a tab."""
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if not isinstance(line, int) or not isinstance(column, int):
        return False
    lines = text.split("\n")
    return line < len(lines) and lines[line][column : column + 1] == "\t"


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
