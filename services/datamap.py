"""The data map: which internal systems hold personal data, and how to reach them.

System owners register their system here. A data map is a YAML file::

    purposes:
      - id: order_fulfilment
        description: Ship what the customer bought.
    systems:
      crm:
        connector: sql              # an entry point in ``dsr.connectors``, or module:Class
        purposes: [customer_support]
        identifiers: [email]        # subject identifiers the system can look up by
        config: {...}               # validated by the connector's own Config model

``${VAR}`` references are expanded from the environment, so secrets and paths
stay out of the file. Anchors and aliases may share a block of config, but a
document nested deeper than ``MAX_DEPTH`` levels, or whose aliases expand to more
than ``MAX_NODES`` values (or into a loop), is refused.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.rules.sentence import Sentence
from streams.records import Kind, answered_by


class DataMapError(ValueError):
    """The data map cannot be used; the message says where and why."""


#: Nesting deeper than this is refused while reading the YAML.
MAX_DEPTH = 100
#: Values in the document once every alias is expanded; more is refused ("billion laughs").
MAX_NODES = 1_000_000
#: The longest timeout a data map may set (a year): longer ones overflow date arithmetic.
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600.0


class Purpose(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    description: str


class RefusalRule(BaseModel):
    """A standing refusal: what a system holds is withheld for these kinds, on a ground
    the principal is told (e.g. records under a legal duty of secrecy, APPI Art. 33(2)(iii)).
    The system is not asked; the response names it, with the code and the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kinds: list[Kind] = Field(min_length=1)
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    reason: str = Field(min_length=1, max_length=1000)
    reason_ja: str | None = Field(
        default=None, min_length=1, max_length=1000, description="The reason in Japanese."
    )


#: The identifier that carries an individual number (My Number Act): specific personal
#: information, which only systems cleared for it may receive.
MY_NUMBER = "my_number"


class SystemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    connector: str = Field(min_length=1)
    description: str = ""
    label: Sentence | None = Field(
        default=None,
        description="The name the principal reads in letters and packages, "
        "{ja: ..., en: ...}; without one the system's name is shown, marked as unlabelled.",
    )
    fields: dict[str, Sentence] = Field(
        default={},
        description="Display labels of the tables and fields this system returns, by name "
        "(`email`) or by table and name (`customers.email`), each {ja: ..., en: ...}.",
    )
    purposes: list[str] = []
    identifiers: list[str | list[str]] = Field(
        min_length=1,
        description="The keys the system can look the subject up by, any one of them: an "
        "identifier's name, or a list of names that only together identify the subject "
        "(a composite key such as [country_code, phone]).",
    )
    discovers: list[str] = Field(
        default=[], description="Further identifiers the system returns, unlocking later waves."
    )
    erase_after: list[str] = Field(
        default=[], description="Systems whose erasure must finish first (e.g. a cache's source)."
    )
    kinds: list[Kind] | None = Field(
        default=None, description="Narrow the kinds sent to this system; default: all it supports."
    )
    call_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        allow_inf_nan=False,
        description="A connector call running longer is abandoned and retried as transient.",
    )
    excluded: Literal["pseudonymised", "anonymised"] | None = Field(
        default=None, description="Stores outside the scope of data-subject requests."
    )
    refuse: list[RefusalRule] = Field(
        default=[], description="Standing refusals: kinds this system's data is withheld for."
    )
    my_number_cleared: bool = Field(
        default=False,
        description="Cleared to handle individual numbers (My Number, 個人番号). Only such "
        "systems ever receive a request's my_number identifier.",
    )
    electronic_disclosure: bool = Field(
        default=True,
        description="False for a store that can only be disclosed on paper (scanned archives, "
        "microfilm): a disclosure that finds data there is answered in writing, with notice.",
    )
    config: dict[str, Any] = {}

    @field_validator("identifiers")
    @classmethod
    def _keys_well_formed(cls, value: list[str | list[str]]) -> list[str | list[str]]:
        for key in value:
            parts = [key] if isinstance(key, str) else key
            if not parts or len(set(parts)) != len(parts):
                raise ValueError(f"a composite key names each identifier once: {key!r}")
        return value

    @property
    def keys(self) -> list[tuple[str, ...]]:
        """Each key as the tuple of identifiers it needs, all together."""
        return [(k,) if isinstance(k, str) else tuple(k) for k in self.identifiers]

    @property
    def identifier_names(self) -> set[str]:
        """Every identifier any of the system's keys uses."""
        return {part for key in self.keys for part in key}

    def key_for(self, unit: Mapping[str, str]) -> tuple[str, ...] | None:
        """The first key ``unit`` supplies every part of, or None."""
        return next((k for k in self.keys if all(unit.get(p) for p in k)), None)

    def refusal_for(self, kind: Kind) -> RefusalRule | None:
        return next((r for r in self.refuse if kind in r.kinds), None)


class DataMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    purposes: list[Purpose] = []
    subject_identifiers: list[str] | None = Field(
        default=None,
        description="Identifiers a request may carry; when set, every identifier a system "
        "needs must be one of these or discovered by another system.",
    )
    systems: dict[str, SystemSpec] = Field(min_length=1)
    request_timeout_seconds: float = Field(
        default=300.0, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False
    )

    @model_validator(mode="after")
    def _purposes_declared(self) -> DataMap:
        known = {p.id for p in self.purposes}
        # names first: a bad name is the root cause when others refer to it
        for name in self.systems:
            if not re.fullmatch(r"[a-z][a-z0-9_\-]{0,62}", name):
                raise ValueError(f"system name {name!r}: use lowercase letters, digits, _ and -")
        for name, spec in self.systems.items():
            missing = [p for p in spec.purposes if p not in known]
            if missing:
                raise ValueError(f"system {name!r} names undeclared purposes: {missing}")
            handled = {*spec.identifier_names, *spec.discovers}
            if MY_NUMBER in handled and not spec.my_number_cleared:
                raise ValueError(
                    f"system {name!r} handles {MY_NUMBER} but is not my_number_cleared"
                )
            unknown = [s for s in spec.erase_after if s not in self.systems]
            if unknown:
                raise ValueError(f"system {name!r}: erase_after names unknown systems {unknown}")
        self._identifiers_obtainable()
        self._reachable()
        cycle = self._order_cycle()
        if cycle:
            raise ValueError("systems depend on each other in a cycle: " + " → ".join(cycle))
        return self

    def _reachable(self) -> None:
        """With ``subject_identifiers`` set, every system can be reached: one of its keys
        is carried by a request, or discovered by a system that can be reached."""
        if self.subject_identifiers is None:
            return
        known = set(self.subject_identifiers)
        left = dict(self.systems)
        while True:
            reached = [n for n, spec in left.items() if any(set(k) <= known for k in spec.keys)]
            if not reached:
                break
            for name in reached:
                known.update(left.pop(name).discovers)
        for name, spec in left.items():
            raise ValueError(
                f"system {name!r} needs {spec.identifiers}, but no identifier a request "
                f"carries ({self.subject_identifiers}) leads to them"
            )

    def _order_cycle(self) -> list[str] | None:
        """An action order that cannot be met: a cycle through an ``erase_after`` edge in
        ``dependencies()``. A cycle of discovery alone is met: the resolve phase reaches
        closure and the request's own identifiers break the tie."""
        after = {name: set(spec.erase_after) for name, spec in self.systems.items()}
        cycle = find_cycle(after)
        if cycle:
            return cycle
        deps = self.dependencies()
        component = strongly_connected(deps)
        for name, needs in sorted(after.items()):
            for dep in sorted(needs):
                if component[name] == component[dep]:
                    return [name, *_path(deps, dep, name)]
        return None

    def _identifiers_obtainable(self) -> None:
        """Every system has a key whose parts one source supplies together: the request
        (when ``subject_identifiers`` is set), or one other system's discoveries. Parts
        from different sources could belong to different people, so are never combined."""
        sources = [set(o.discovers) for o in self.systems.values()]
        if self.subject_identifiers is not None:
            sources.append(set(self.subject_identifiers))
        for name, spec in self.systems.items():
            composite = [k for k in spec.keys if len(k) > 1]
            for key in composite:
                if self.subject_identifiers is None or any(set(key) <= s for s in sources):
                    continue
                raise ValueError(
                    f"system {name!r}: no request or system supplies the parts of its key "
                    f"{list(key)} together"
                )
            if self.subject_identifiers is None:
                continue
            if not any(set(k) <= s for k in spec.keys for s in sources):
                raise ValueError(
                    f"system {name!r} needs {spec.identifiers}, but no request carries them "
                    f"({self.subject_identifiers}) and no system discovers them"
                )

    def dependencies(self) -> dict[str, set[str]]:
        """System → systems acted on before it, for erasure: those in its
        ``erase_after``, and ``discovery_order`` for the identifiers a request may carry."""
        deps = self.discovery_order(self.subject_identifiers or ())
        for name, spec in self.systems.items():
            deps[name] |= set(spec.erase_after)
        return deps

    def discovery_order(self, direct: Iterable[str]) -> dict[str, set[str]]:
        """System → systems acted on before it, for the kinds that change data: a system
        that supplies identifiers another system's key uses waits for that one. A system
        one of whose keys ``direct`` (the request's identifiers) supplies needs no one."""
        carried = set(direct)
        discoverers: dict[str, set[str]] = {}
        for other, o in self.systems.items():
            for identifier in o.discovers:
                discoverers.setdefault(identifier, set()).add(other)
        deps: dict[str, set[str]] = {name: set() for name in self.systems}
        for name, spec in self.systems.items():
            if any(set(k) <= carried for k in spec.keys):
                continue
            for identifier in spec.identifier_names:
                for other in discoverers.get(identifier, ()):
                    if other != name:
                        deps[other].add(name)
        return deps

    def purposes_of(self, systems: list[str]) -> list[Purpose]:
        wanted = {p for s in systems if s in self.systems for p in self.systems[s].purposes}
        return [p for p in self.purposes if p.id in wanted]


def answers(spec: SystemSpec, does: Callable[[Kind], bool], kind: Kind) -> bool:
    """Whether a system answers ``kind`` requests, ``does`` telling which operations its
    connector supports: it is in scope, the data map does not narrow the kind away, and
    its connector does the operation that answers the kind (a purpose notification is
    answered by a disclosure)."""
    if spec.excluded is not None:
        return False
    asked = answered_by(kind)
    if spec.kinds is not None and not {kind, *asked} & set(spec.kinds):
        return False
    return any(does(k) for k in asked)


def unanswerable_kinds(datamap: DataMap, does: Mapping[str, Callable[[Kind], bool]]) -> list[Kind]:
    """The request kinds that no system in the data map answers, ``does`` telling which
    operations each system's connector supports (a system missing from it does none).

    Such a request can only be answered with ``no_applicable_system`` and never
    completes, so it is worth a warning when the data map is loaded or checked."""
    return [
        kind
        for kind in Kind
        if not any(
            name in does and answers(spec, does[name], kind)
            for name, spec in datamap.systems.items()
        )
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        state[start] = 1
        path = [start]
        todo = [iter(sorted(graph.get(start, ())))]
        while todo:  # depth-first, without recursion: a long chain must not overflow
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def strongly_connected(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each node's strongly connected component, as a number (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    numbers = itertools.count()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    number = next(numbers)
                    while True:
                        member = stack.pop()
                        component[member] = number
                        if member == node:
                            break
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child not in component:
                low[node] = min(low[node], index[child])
    return component


def _path(graph: dict[str, set[str]], start: str, end: str) -> list[str]:
    """A shortest path from ``start`` to ``end`` in ``graph`` (one exists)."""
    came: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        node = todo.pop(0)
        if node == end:
            break
        for nxt in sorted(graph.get(node, ())):
            if nxt not in came:
                came[nxt] = node
                todo.append(nxt)
    path: list[str] = []
    at: str | None = end
    while at is not None:
        path.append(at)
        at = came[at]
    return path[::-1]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting, and reports a scalar that does not
    fit its type (a 5000-digit integer, the 13th month) as a YAML error at its line."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"unusable {node.tag.rsplit(':', 1)[-1]}: {exc}", node.start_mark
            ) from None


def _expanded_size(root: Any) -> int:
    """How many values ``root`` holds once every alias is expanded, counting each shared
    value once per reference, and stopping past ``MAX_NODES``; a loop counts as too many."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, children_done = stack.pop()
        if not isinstance(value, dict | list):
            continue
        key = id(value)
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes.get(id(v), 1) for v in items)
            sizes[key] = min(total, MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            return MAX_NODES + 1
        on_path.add(key)
        stack.append((value, True))
        stack.extend((v, False) for v in items if isinstance(v, dict | list))
    return sizes.get(id(root), 1)


def parse(text: str, source: str = "<data map>") -> DataMap:
    expanded = os.path.expandvars(text)
    try:
        loader = _Loader(expanded)
        loader.name = source  # YAML errors then point into the file by its name
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        if isinstance(exc, yaml.reader.ReaderError):
            exc.name = source  # raised before the loader could be given the name
        raise DataMapError(f"{source}: not valid YAML: {exc}") from exc
    if _expanded_size(raw) > MAX_NODES:
        raise DataMapError(
            f"{source}: its aliases expand to more than {MAX_NODES} values, or into a loop"
        )
    if not isinstance(raw, dict):
        raise DataMapError(f"{source}: expected a mapping with 'systems'")
    try:
        return DataMap.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise DataMapError(f"{source}: invalid data map\n" + "\n".join(lines)) from None


def load(path: str | Path) -> DataMap:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataMapError(f"cannot read data map {p}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DataMapError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL in the path
        raise DataMapError(f"cannot read data map {str(p)!r}: {exc}") from None
    return parse(text, str(p))
