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

from services.datamap.graph import find_cycle, strongly_connected
from services.datamap.loading import MAX_DEPTH, MAX_NODES, load, parse, read
from services.datamap.model import (
    MAX_TIMEOUT_SECONDS,
    MY_NUMBER,
    DataMap,
    DataMapError,
    Purpose,
    RefusalRule,
    SystemSpec,
    answers,
    unanswerable_kinds,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TIMEOUT_SECONDS",
    "MY_NUMBER",
    "DataMap",
    "DataMapError",
    "Purpose",
    "RefusalRule",
    "SystemSpec",
    "answers",
    "find_cycle",
    "load",
    "parse",
    "read",
    "strongly_connected",
    "unanswerable_kinds",
]
