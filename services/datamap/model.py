"""The data map's model: purposes, systems and the rules on them, validated."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.datamap.graph import find_cycle, path, strongly_connected
from services.rules.sentence import Sentence
from streams.records import Kind, answered_by


class DataMapError(ValueError):
    """The data map cannot be used; the message says where and why."""


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
    concurrency: int = Field(
        default=1,
        ge=1,
        le=256,
        description="How many of this system's tasks a runner carries out at once. Above 1 "
        "the connector is called from several threads, so it must be thread-safe (the "
        "SQL, S3 and HTTP connectors are).",
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
                    return [name, *path(deps, dep, name)]
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
