"""The YAML loader's shortcuts (remembered tags, plain decimal ints) read every scalar as PyYAML
itself does."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.yamlsource import load_documents

TRICKY = [
    "0",
    "-0",
    "+5",
    "007",
    "010",
    "0o17",
    "0x1F",
    "0b101",
    "1_000",
    "1:30",
    "190:20:30",
    "1.5",
    "1e3",
    ".inf",
    "-.Inf",
    ".NaN",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "true",
    "False",
    "~",
    "null",
    "Null",
    "",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "nginx:latest",
    "9223372036854775807",
    "-9223372036854775808",
    "12345678901234567890123",
    "0b_",
    "0x_",
]


def read(value: str) -> object:
    problems: list[object] = []
    docs = load_documents(f"key: {value}\n", {}, problems)  # type: ignore[arg-type]
    return docs[0].value["key"] if docs and not problems else ("problem", len(problems))


def pyyaml(value: str) -> object:
    return yaml.safe_load(f"key: {value}\n")["key"]


def test_tricky_scalars_read_as_pyyaml_reads_them_twice_over() -> None:
    for _ in range(2):  # the second time, every tag comes from the loader's memory
        for value in TRICKY:
            ours = read(value)
            try:
                theirs = pyyaml(value)
            except ValueError:  # PyYAML itself fails (int("", 2)): ours is a located problem
                assert ours == ("problem", 1), value
                continue
            if isinstance(theirs, int) and not -(2**63) <= theirs < 2**63:
                assert ours == ("problem", 1), value  # refused: not a 64-bit integer
            elif isinstance(theirs, float) and theirs != theirs:
                assert isinstance(ours, float) and ours != ours, value  # NaN
            elif type(theirs).__name__ in ("date", "datetime"):
                continue  # a timestamp's own handling is the builder's, not these shortcuts'
            else:
                assert (type(ours), ours) == (type(theirs), theirs), value


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[-+]?[0-9_:.oxbeE]{1,12}", fullmatch=True))
def test_numbers_read_as_pyyaml_reads_them(value: str) -> None:
    try:
        theirs = pyyaml(value)
    except yaml.YAMLError:
        return
    except ValueError:  # PyYAML's own int() fails on `0b_`, `0x_`: ours is a located problem
        assert read(value) == ("problem", 1), value
        return
    if isinstance(theirs, int) and -(2**63) <= theirs < 2**63 and not isinstance(theirs, bool):
        assert read(value) == theirs and type(read(value)) is int
    elif isinstance(theirs, str | float) and theirs == theirs:
        assert read(value) == theirs


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*"a \n\r\t\x00\x0b\x1f\x7f\x85\x9fé\ud800\ufffe\u2028\u2029", "\r\n", "\r\n"]
        ),
        max_size=30,
    ).map("".join)
)
def test_raw_control_finds_what_the_full_pattern_finds(text: str) -> None:
    """The scan for a first candidate character only skips ahead: the problem reported is the
    one the whole pattern finds from the start (a lone CR included, a CRLF not)."""
    from reconciler.yamlplaces import RAW_CONTROL, raw_control

    found = RAW_CONTROL.search(text)
    problem = raw_control(text)
    if found is None:
        assert problem is None
        return
    assert problem is not None
    before = text[: found.start()]
    assert problem.mark.line == before.count("\n") + 1
    assert problem.mark.column == found.start() - (before.rfind("\n") + 1) + 1
    assert problem.message == f"control character U+{ord(found.group()):04X} is not allowed"
