"""Fuzzed data maps: ``parse`` returns a DataMap or a ``DataMapError`` that says where and
why, never another exception, and never hangs or balloons on a hostile document."""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.datamap import MAX_DEPTH, DataMap, DataMapError, load, parse

SOURCE = "fuzz-datamap.yaml"
FUZZ = settings(max_examples=150, deadline=None)
ids = itertools.count()

pytestmark = pytest.mark.timeout(60)


def check(text: str, source: str = SOURCE) -> DataMap | DataMapError:
    """Parse ``text``; any outcome but a DataMap or a clear DataMapError fails the test."""
    try:
        result: DataMap | DataMapError = parse(text, source)
    except DataMapError as exc:
        message = str(exc)
        assert message.startswith(f"{source}: ") or f"data map {source}" in message
        assert len(message.strip()) > len(source) + 2, "the message must say why"
        result = exc
    return result


@contextlib.contextmanager
def env(value: str) -> Iterator[str]:
    """A fresh environment variable set to ``value``, for the duration."""
    name = f"DSR_FUZZ_{next(ids)}"
    os.environ[name] = value
    try:
        yield name
    finally:
        del os.environ[name]


# -- generators ---------------------------------------------------------------

YAML_SYMBOLS = "{}[]:,-&*!|>'\"#%@`?~<= \n\t$.\\"
yaml_ish = st.text(alphabet=st.sampled_from(YAML_SYMBOLS) | st.characters(), max_size=300)
not_utf8 = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["email", "sql", "disclosure", "erasure", "2020-13-45", "1e999", ".nan"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

names = st.from_regex(r"[a-z][a-z0-9_\-]{0,8}", fullmatch=True)
bad_names = st.text(max_size=12).filter(lambda s: not s[:1].islower() or not s.isascii())
IDENTIFIERS = ["email", "customer_id", "order_id", "phone", "my_number"]
FIELDS = [
    "connector",
    "description",
    "purposes",
    "identifiers",
    "discovers",
    "erase_after",
    "kinds",
    "call_timeout_seconds",
    "excluded",
    "refuse",
    "my_number_cleared",
    "electronic_disclosure",
    "config",
]


@st.composite
def data_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible data map: declared purposes, systems that discover each other's
    identifiers and wait on each other's erasure (sometimes in a cycle)."""
    purposes = draw(st.lists(names, max_size=3, unique=True))
    systems = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    raw: dict[str, Any] = {
        "purposes": [{"id": p, "description": f"Purpose {p}"} for p in purposes],
        "systems": {},
    }
    if draw(st.booleans()):
        raw["subject_identifiers"] = draw(st.lists(st.sampled_from(IDENTIFIERS), max_size=3))
    for name in systems:
        spec: dict[str, Any] = {
            "connector": draw(st.sampled_from(["sql", "http", "s3", "pkg.mod:Class"])),
            "identifiers": draw(st.lists(st.sampled_from(IDENTIFIERS), min_size=1, max_size=2)),
        }
        if draw(st.booleans()):
            spec["discovers"] = draw(st.lists(st.sampled_from(IDENTIFIERS), max_size=2))
        if purposes and draw(st.booleans()):
            spec["purposes"] = draw(st.lists(st.sampled_from(purposes), max_size=2))
        if draw(st.booleans()):
            spec["erase_after"] = draw(st.lists(st.sampled_from(systems), max_size=2))
        if draw(st.booleans()):
            spec["my_number_cleared"] = True
        raw["systems"][name] = spec
    return raw


@st.composite
def broken_data_maps(
    draw: st.DrawFn,
) -> tuple[dict[str, Any], dict[str, Any], list[str], bool]:
    """A plausible data map, a copy with one thing changed, the words its error may name,
    and whether the change is certainly wrong (a value drawn at random may be valid)."""
    base = draw(data_maps())
    raw = copy.deepcopy(base)
    system = draw(st.sampled_from(sorted(raw["systems"])))
    spec = raw["systems"][system]
    how = draw(
        st.sampled_from(
            ["wrong type", "unknown key", "missing", "bad name", "cycle", "undeclared", "top"]
        )
    )
    if how == "wrong type":
        field = draw(st.sampled_from(FIELDS))
        spec[field] = draw(json_values)
        # Fewer identifiers found, or more, can strand or entangle another system.
        knock_on = ["needs", "cycle"] if field in ("discovers", "identifiers") else []
        return base, raw, [field, system, *knock_on], False
    if how == "unknown key":
        key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS))
        spec[key] = draw(json_values)
        return base, raw, [key, system], True
    if how == "missing":
        field = draw(st.sampled_from(["connector", "identifiers"]))
        spec.pop(field)
        return base, raw, [field, system], True
    if how == "bad name":
        name = draw(bad_names)
        raw["systems"][name] = raw["systems"].pop(system)
        return base, raw, [f"system name {name!r}"], True
    if how == "cycle":
        other = draw(st.sampled_from(sorted(raw["systems"])))
        spec["erase_after"] = [other]
        raw["systems"][other]["erase_after"] = [system]
        return base, raw, ["cycle", system], True
    if how == "undeclared":
        spec["purposes"] = ["never_declared"]
        return base, raw, ["never_declared", system], True
    key = draw(st.sampled_from(["purposes", "systems", "request_timeout_seconds", "extra"]))
    raw[key] = draw(json_values)
    return base, raw, [key], False


def dump(raw: Any, style: str) -> str:
    if style == "json":
        return json.dumps(raw, ensure_ascii=False)
    return yaml.safe_dump(raw, default_flow_style=style == "flow", allow_unicode=True)


# -- properties ---------------------------------------------------------------


@FUZZ
@given(text=yaml_ish | not_utf8 | st.text(max_size=300))
def test_any_text_is_a_data_map_or_a_clear_error(text: str) -> None:
    check(text)


@FUZZ
@given(raw=data_maps(), style=st.sampled_from(["block", "flow", "json"]))
def test_plausible_data_maps_load_or_say_why(raw: dict[str, Any], style: str) -> None:
    check(dump(raw, style))


@settings(max_examples=300, deadline=None)
@given(broken=broken_data_maps(), style=st.sampled_from(["block", "flow", "json"]))
def test_a_broken_data_map_names_what_is_wrong(
    broken: tuple[dict[str, Any], dict[str, Any], list[str], bool], style: str
) -> None:
    base, raw, words, certain = broken
    assume(isinstance(check(dump(base, style)), DataMap))  # the break is the only fault
    outcome = check(dump(raw, style))
    if certain:  # an unknown key, a missing field, a bad name, a cycle, an undeclared purpose
        assert isinstance(outcome, DataMapError), ("accepted", words)
    if not isinstance(outcome, DataMapError):
        return  # another value that happens to be valid
    message = str(outcome)
    if "not valid YAML" in message:  # e.g. a control character: refused where it stands
        assert f'in "{SOURCE}", ' in message, message
        return
    if words[0].startswith("system name "):  # YAML reads some names back changed (NEL: " ")
        read = yaml.safe_load(dump(raw, style))["systems"]
        words = [f"system name {n!r}" for n in read if n not in base["systems"]]
    assert any(w in message for w in words), (words, message)


@FUZZ
@given(
    width=st.integers(min_value=2, max_value=12),
    levels=st.integers(min_value=1, max_value=12),
    where=st.sampled_from(["config", "identifiers", "purposes", "description", "top"]),
)
def test_alias_expansion_never_balloons(width: int, levels: int, where: str) -> None:
    lines = ["x0: &x0 [lol, lol]"]
    for n in range(1, levels + 1):
        lines.append(f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * width)}]")
    body = "\n".join(f"      {line}" for line in lines)
    last = f"*x{levels}"
    value = f"{{bomb: {last}}}" if where == "config" else last
    text = (
        "purposes: [{id: p, description: P}]\n"
        f"systems:\n  t:\n    connector: sql\n    identifiers: [email]\n    config:\n{body}\n"
        "  s:\n    connector: sql\n    identifiers: [email]\n"
        + (f"request_timeout_seconds: {last}\n" if where == "top" else f"    {where}: {value}\n")
    )
    outcome = check(text)
    if width**levels > 1_000_000:
        assert isinstance(outcome, DataMapError)
        assert "aliases expand" in str(outcome)


@FUZZ
@given(depth=st.integers(min_value=1, max_value=400), flow=st.booleans())
def test_deep_nesting_is_read_or_refused_by_its_depth(depth: int, flow: bool) -> None:
    if flow:
        nested = "[" * depth + "x" + "]" * depth
        text = f"systems: {{s: {{connector: sql, identifiers: [email], config: {{a: {nested}}}}}}}"
    else:
        nested = "".join(f"\n{'  ' * (i + 5)}a:" for i in range(depth)) + " x"
        text = "systems:\n  s:\n    connector: sql\n    identifiers: [email]\n    config:" + nested
    outcome = check(text)
    # block: document, systems, s, then the a: maps and x; flow nests the lists one deeper
    levels = depth + (5 if flow else 4)
    if levels > MAX_DEPTH:
        assert isinstance(outcome, DataMapError)
        assert "nested deeper than" in str(outcome)
    else:
        assert isinstance(outcome, DataMap)


env_values = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60
)


@FUZZ
@given(value=env_values | st.text(YAML_SYMBOLS, max_size=60), quoted=st.booleans())
def test_environment_values_cannot_break_the_loader(value: str, quoted: bool) -> None:
    with env(value) as name:
        ref = f"'${{{name}}}'" if quoted else f"${{{name}}}"
        check(f"systems:\n  s:\n    connector: {ref}\n    identifiers: [email]\n")
        check(f"systems: {{s: {{connector: sql, identifiers: [{ref}], config: {{u: {ref}}}}}}}")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200) | data_maps().map(lambda raw: dump(raw, "block").encode()))
def test_load_reads_any_file_or_says_why(data: bytes) -> None:
    path = Path(tempfile.gettempdir()) / f"dsr-datamap-fuzz-{os.getpid()}.yaml"
    path.write_bytes(data)
    try:
        load(path)
    except DataMapError as exc:
        assert str(path) in str(exc)
    finally:
        path.unlink()


# -- regressions --------------------------------------------------------------


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    outcome = check("systems: " + "[" * 5000 + "]" * 5000)
    assert isinstance(outcome, DataMapError)
    assert f"nested deeper than {MAX_DEPTH} levels" in str(outcome)
    assert f'in "{SOURCE}", line 1' in str(outcome)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("9" * 5000, "unusable int"),
        ("2020-13-45", "unusable timestamp: month must be in 1..12"),
        ("2001-12-14t21:59:43.10+99:00", "unusable timestamp"),
    ],
)
def test_a_scalar_that_does_not_fit_its_type_is_a_yaml_error_at_its_line(
    value: str, why: str
) -> None:
    outcome = check(f"systems:\n  s:\n    connector: sql\n    description: {value}\n")
    assert isinstance(outcome, DataMapError)
    assert why in str(outcome) and "line 4" in str(outcome)


def test_billion_laughs_is_refused_before_it_is_expanded() -> None:
    """Nine aliases a level, ten levels: 9**9 values once expanded. The count stops past
    MAX_NODES, so the refusal reads each alias once (had it expanded them, the test would
    run out of memory, or of pytest's timeout, rather than pass)."""
    lol = "".join(
        f"      l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else 'lol'}]\n" for n in range(10)
    )
    outcome = check(
        f"systems:\n  s:\n    connector: sql\n    identifiers: [email]\n    config:\n{lol}"
    )
    assert isinstance(outcome, DataMapError) and "aliases expand" in str(outcome)


def test_a_self_referencing_alias_is_refused() -> None:
    outcome = check("systems: {s: {connector: sql, identifiers: [email], config: &c {me: *c}}}")
    assert isinstance(outcome, DataMapError) and "into a loop" in str(outcome)


def test_shared_config_blocks_still_work() -> None:
    dm = parse(
        "systems:\n"
        "  a: &base {connector: sql, identifiers: [email], config: {url: 'sqlite://'}}\n"
        "  b: {<<: *base, identifiers: [phone]}\n"
    )
    assert dm.systems["b"].config == {"url": "sqlite://"}
    assert dm.systems["b"].identifiers == ["phone"]


def test_a_long_erase_after_chain_does_not_overflow_the_stack() -> None:
    n = 3000
    systems = "".join(
        f"  s{i}: {{connector: sql, identifiers: [email]"
        + (f", erase_after: [s{i + 1}]" if i + 1 < n else "")
        + "}\n"
        for i in range(n)
    )
    # Far less stack than the chain is long: a recursive walk of it would overflow.
    depth = len(inspect.stack())
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 200)
    try:
        _chain_checks(systems)
    finally:
        sys.setrecursionlimit(limit)


def _chain_checks(systems: str) -> None:
    dm = parse("systems:\n" + systems)
    assert dm.dependencies()["s0"] == {"s1"}
    outcome = check(
        "systems:\n"
        + systems.replace("identifiers: [email]}", "identifiers: [email], erase_after: [s0]}")
    )
    assert isinstance(outcome, DataMapError) and "cycle: s0 → s1 → s2" in str(outcome)


@pytest.mark.parametrize("value", [".inf", ".nan", "1e300", "-1"])
def test_an_unusable_timeout_is_refused(value: str) -> None:
    for text in (
        f"request_timeout_seconds: {value}\nsystems: {{s: {{connector: sql, identifiers: [e]}}}}",
        f"systems: {{s: {{connector: sql, identifiers: [e], call_timeout_seconds: {value}}}}}",
    ):
        outcome = check(text)
        assert isinstance(outcome, DataMapError) and "timeout_seconds" in str(outcome)


def test_huge_strings_are_read_or_refused_promptly() -> None:
    huge = "x" * 2_000_000
    dm = check(
        f"systems:\n  s:\n    connector: sql\n    identifiers: [email]\n    description: {huge}\n"
    )
    assert isinstance(dm, DataMap) and len(dm.systems["s"].description) == len(huge)
    outcome = check(f"systems:\n  {huge}: {{connector: sql, identifiers: [email]}}\n")
    assert isinstance(outcome, DataMapError)


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "datamap.yaml"
    path.write_bytes(b"systems:\n  s: {connector: \xff\xfe}\n")
    with pytest.raises(DataMapError, match=r"datamap.yaml: not UTF-8 text \(byte 26\)"):
        load(path)


def test_a_path_with_a_nul_is_a_clear_error() -> None:
    with pytest.raises(DataMapError, match="cannot read data map 'a\\\\x00b'"):
        load("a\x00b")


def test_an_unreadable_character_is_placed_in_the_named_file() -> None:
    outcome = check("systems:\n  s: {connector: \x7f}\n")
    assert isinstance(outcome, DataMapError)
    assert (
        f'unacceptable character #x007f: special characters are not allowed\n  in "{SOURCE}"'
        in (str(outcome))
    )


def test_a_bad_system_name_is_reported_before_references_to_it() -> None:
    """Renaming a system others erase after leaves two faults; the name is the cause."""
    raw = {
        "systems": {
            "a": {"connector": "sql", "identifiers": ["email"], "erase_after": ["i"]},
            "{": {"connector": "sql", "identifiers": ["email"]},
        }
    }
    with pytest.raises(DataMapError, match=r"system name '\{'"):
        parse(json.dumps(raw), SOURCE)
