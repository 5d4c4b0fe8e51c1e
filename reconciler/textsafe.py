"""Untrusted text made safe for a terminal, a CI log and a Markdown comment.

Keys, values and file names come from manifests and API answers. Printed raw, an ESC sequence
can clear or rewrite a terminal, a newline can start a line a CI runner reads as a command
(GitHub Actions' `::error file=...`), and a backtick fence can close a Markdown code block and
forge the rest of a pull-request comment. Every text output goes through these helpers.
"""

from __future__ import annotations

import json
import re
from typing import Any

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_EXTRA = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape(text: str) -> str:
    """`text` with every control character shown as an escape (`\\x1b`, `\\n`)."""
    return CONTROL.sub(_visible, text) if CONTROL.search(text) else text


def line_start(text: str) -> str:
    """Escaped text that begins a printed line: never read as a runner command (`::`)."""
    text = escape(text)
    return "./" + text if text.startswith("::") else text


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps` that also escapes DEL, C1 and the Unicode line separators."""
    return json.dumps(value, ensure_ascii=False, **options).translate(_JSON_EXTRA)


def fence(lines: list[str], info: str = "") -> list[str]:
    """A Markdown code block that no line inside can close: the fence is longer than any run of
    backticks or tildes in the content."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    mark = "`" * max(3, longest + 1)
    return [f"{mark}{info}", *lines, mark]
