"""Find connector classes by name and build them from the data map.

Connectors are registered as entry points in the ``dsr.connectors`` group::

    [project.entry-points."dsr.connectors"]
    sql = "connectors.sql:SQLConnector"

A data map may also name a class by its import path, ``package.module:Class``,
for a connector that is importable but not packaged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from connectors.base import ConnectorBase
from connectors.errors import ConfigError
from streams.records import Kind

GROUP = "dsr.connectors"


class SystemSpec(Protocol):
    """What the registry reads of a data map's system (``services.datamap.SystemSpec``)."""

    @property
    def connector(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def excluded(self) -> str | None: ...


class DataMap(Protocol):
    """What the registry reads of a data map: its systems."""

    @property
    def systems(self) -> Mapping[str, SystemSpec]: ...


def installed() -> dict[str, EntryPoint]:
    """The installed connectors, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_connector_class(name: str) -> type[ConnectorBase[Any]]:
    """The connector class registered as ``name``, or at import path ``module:Class``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"connector {name!r} cannot be imported: {exc}") from exc
    else:
        eps = installed()
        if name not in eps:
            known = ", ".join(sorted(eps)) or "none"
            raise ConfigError(
                f"unknown connector {name!r}; installed connectors: {known} "
                f"(connectors register in the {GROUP!r} entry-point group, "
                "or are named by import path, module:Class)"
            )
        try:
            cls = eps[name].load()
        except ImportError as exc:
            raise ConfigError(f"connector {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, ConnectorBase)):
        raise ConfigError(f"{name!r} is not a Connector class")
    return cls


def build(system_name: str, spec: SystemSpec) -> ConnectorBase[Any]:
    """Build the connector for one system; a ``ConfigError`` says what is wrong."""
    try:
        cls = load_connector_class(spec.connector)
    except ConfigError as exc:
        raise ConfigError(f"system {system_name!r}: {exc}") from None
    return cls(system_name, spec.config)


def capabilities(datamap: DataMap) -> dict[str, frozenset[Kind]]:
    """What each system in scope answers, from its connector class and its validated
    config: no connector is built, no connection opened. A ``ConfigError`` says which
    system's config is wrong."""
    out = {}
    for name, spec in datamap.systems.items():
        if spec.excluded is not None:
            continue
        try:
            cls = load_connector_class(spec.connector)
        except ConfigError as exc:
            raise ConfigError(f"system {name!r}: {exc}") from None
        out[name] = cls.kinds_for(cls.validate_config(name, spec.config)) & cls.capabilities
    return out


def build_all(
    datamap: DataMap, systems: Iterable[str] | None = None
) -> dict[str, ConnectorBase[Any]]:
    """Build the named systems' connectors, or those of every system in scope.

    Systems marked ``excluded`` in the data map are out of scope and skipped
    unless named.
    """
    if systems is None:
        names = [n for n, s in datamap.systems.items() if s.excluded is None]
    else:
        names = list(systems)
        unknown = [n for n in names if n not in datamap.systems]
        if unknown:
            raise ConfigError(f"systems not in the data map: {', '.join(unknown)}")
    built: dict[str, ConnectorBase[Any]] = {}
    try:
        for name in names:
            built[name] = build(name, datamap.systems[name])
    except BaseException:
        for connector in built.values():
            connector.close()
        raise
    return built
