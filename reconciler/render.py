"""Plans for people and for machines: text (like `terraform plan`), Markdown, JSON. Pure.

Text lists every deployment that changes, with its field diffs indented, kept orphans, and a
closing `Plan: ...` line; deployments in sync are counted, not listed (JSON and Markdown list
them). Markdown is for a pull-request comment: a summary table, then a collapsible section per
deployment, cut short with a note before `MARKDOWN_LIMIT` characters, as PR hosts cap comments.
Sensitive values are already `(sensitive)` inside a plan; nothing here can reveal one. Text from
manifests (keys, values, file names) is escaped (`textsafe`): no control character reaches a
terminal, and the Markdown diff fence is longer than any backtick run inside it.
"""

from __future__ import annotations

import html
from typing import Any

from .diff import SENSITIVE, FieldChange
from .objects_plan import WRITE_ONLY_NOTE, ObjectReason
from .plan import Action, Change, Plan, Reason
from .textsafe import escape, fence, json_text

MARKDOWN_LIMIT = 60_000
COLORS = {
    Action.CREATE: "\033[32m",
    Action.UPDATE: "\033[33m",
    Action.DELETE: "\033[31m",
    Action.ADOPT: "\033[36m",
    Action.NOOP: "\033[2m",
    Action.STOP: "\033[33m",
    Action.START: "\033[33m",
}
RESET = "\033[0m"
BOLD = "\033[1m"
EMOJI = {  # emoji are the point in a PR comment
    Action.CREATE: "➕",  # noqa: RUF001
    Action.UPDATE: "✏️",
    Action.DELETE: "🗑️",
    Action.ADOPT: "🤝",
    Action.NOOP: "✔️",
    Action.STOP: "⏹️",
    Action.START: "▶️",
}


def value_text(value: Any) -> str:
    if value in (SENSITIVE, WRITE_ONLY_NOTE):
        return str(value)
    return json_text(value, sort_keys=True)


def field_line(change: FieldChange) -> tuple[str, str]:
    """(symbol, text) of one field change."""
    path = escape(change.path)
    if change.before is None and change.after is not None:
        return "+", f"{path}: {value_text(change.after)}"
    if change.after is None and change.before is not None:
        return "-", f"{path}: {value_text(change.before)} -> null (API default)"
    return "~", f"{path}: {value_text(change.before)} -> {value_text(change.after)}"


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    more = "".join(f", {s[key]} to {key}" for key in ("replace", "stop", "start") if s.get(key))
    return (
        f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
        f"{s['adopt']} to adopt{more}, {s['noop']} unchanged."
    )


def _object_lines(plan: Plan) -> list[tuple[int, str, Action, list[str]]]:
    """(wave, head, colour, field lines) of each object that changes or is a kept orphan."""
    found = []
    for change in plan.objects:
        if not change.action.mutates and change.reason is ObjectReason.IN_SYNC:
            continue
        colour = Action.DELETE if change.action.value == "replace" else Action(change.action.value)
        head = f"  {change.action.symbol} {escape(str(change.key))}  {change.action.value} "
        head += f"({escape(change.why)})"
        if change.source:
            head += f"  {escape(change.source)}"
        fields = [" ".join(field_line(f)) for f in change.changes]
        found.append((change.wave, head, colour, fields))
    return found


def _listed(change: Change) -> bool:
    return change.action.mutates or change.reason is not Reason.IN_SYNC


def render_text(plan: Plan, *, color: bool = False) -> str:
    def paint(text: str, action: Action) -> str:
        return f"{COLORS[action]}{text}{RESET}" if color else text

    lines: list[str] = []
    if plan.revision:
        lines.append(f"Revision {plan.revision}")
    shown = [c for c in plan.changes if _listed(c)]
    objects = _object_lines(plan)
    if shown or objects:
        lines.append("reconciler will:")
        lines.append("")
    waves = plan.deployments_wave > 1 or any(o[0] > 1 for o in objects)
    blocks: list[tuple[int, list[str]]] = []
    for wave, head, colour, fields in objects:
        blocks.append((wave, [paint(head, colour), *(f"      {f}" for f in fields)]))
    for change in shown:
        symbol = change.action.symbol
        head = f"  {symbol} {escape(str(change.key))}  {change.action.value}"
        if change.why:
            head += f" ({escape(change.why)})"
        if change.then is not None:
            head += f", then {change.then.value}"
        if change.source:
            head += f"  {escape(change.source)}"
        block = [paint(head, change.action)]
        if len(change.steps) > 1:
            order = " then ".join("{" + ", ".join(step) + "}" for step in change.steps)
            block.append(f"      (sent as {len(change.steps)} updates in order: {order})")
        for field in change.changes:
            mark, text = field_line(field)
            action = {"+": Action.CREATE, "-": Action.DELETE, "~": Action.UPDATE}[mark]
            block.append(paint(f"      {mark} {text}", action))
        blocks.append((plan.wave_of(change), block))
    current = None
    for wave, block in sorted(blocks, key=lambda b: b[0]):
        if waves and wave != current and wave > 0:
            lines.append(f"  wave {wave}:")
            current = wave
        lines.extend(block)
    if not plan.has_changes:
        if shown:
            lines.append("")
        in_sync = sum(1 for c in plan.changes if c.reason is Reason.IN_SYNC)
        kept = sum(1 for c in plan.changes if c.reason.is_orphan and not c.action.mutates)
        text = f"No changes. {in_sync} deployment{'s' if in_sync != 1 else ''} in sync"
        if kept:
            text += f", {kept} orphan{'s' if kept != 1 else ''} kept"
        objects_in_sync = sum(1 for o in plan.objects if not o.action.mutates)
        if objects_in_sync:
            text += f", {objects_in_sync} object{'s' if objects_in_sync != 1 else ''} in sync"
        lines.append(text + ".")
    lines.append("")
    closing = summary_line(plan)
    lines.append(f"{BOLD}{closing}{RESET}" if color else closing)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return html.escape(escape(text)).replace("|", "\\|").replace("`", "&#96;")


def render_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    head = ["## reconciler plan", ""]
    if plan.revision:
        head += [f"Revision `{plan.revision}`", ""]
    head += [f"**{summary_line(plan)}**", ""]
    rows = ["| | deployment | action | reason | changes |", "|:-:|---|---|---|--:|"]
    rows += [
        f"| {EMOJI[c.action]} | `{_cell(str(c.key))}` | {c.action.value}"
        f"{f', then {c.then.value}' if c.then else ''} | {_cell(c.why)} | {len(c.changes)} |"
        for c in plan.changes
    ]
    rows += [  # credentials, secrets, API keys: the symbol says create, replace, delete, ...
        f"| `{o.action.symbol.strip() or '='}` | `{_cell(str(o.key))}` | {o.action.value} "
        f"| {_cell(o.why)} | {len(o.changes)} |"
        for o in plan.objects
    ]
    sections = []
    for change in plan.changes:
        if not change.changes and change.action is not Action.DELETE:
            continue
        diff_lines = [" ".join(field_line(f)) for f in change.changes] or ["- (the deployment)"]
        why = f" ({_cell(change.why)})" if change.why else ""
        source = f" · <code>{_cell(change.source)}</code>" if change.source else ""
        sections.append(
            "\n".join(
                [
                    f"<details><summary>{EMOJI[change.action]} "
                    f"<code>{_cell(str(change.key))}</code>: "
                    f"{change.action.value}{why}{source}</summary>",
                    "",
                    *fence(diff_lines, "diff"),
                    "",
                    "</details>",
                ]
            )
        )
    blocks = ["\n".join(head), *rows[:2]]
    out = "\n".join(blocks)
    note_room = 300
    parts = [*rows[2:], "", *sections]
    for count, part in enumerate(parts):
        if len(out) + len(part) + 1 > limit - note_room:
            left = len(parts) - count
            out += (
                f"\n\n> ✂️ Truncated: {left} more line(s) of this plan are not shown "
                f"(comments are capped near {limit:,} characters). "
                "Run `reconciler plan` for the whole plan."
            )
            return out + "\n"
        out += "\n" + part
    return out + "\n"


def render_json(plan: Plan) -> str:
    return json_text(plan.to_json(), indent=2) + "\n"


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan, color=color)
