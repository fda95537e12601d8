"""The pipeline's own ledger of third-party-provision records (APPI Arts. 29 and 30).

Records come in on the ``dsr.provisions`` topic (``streams/agents/provisions.py``)
or from a file (``dsr provisions import``); the ``provision_ledger`` connector
answers ``third_party_records`` and ``third_party_stop`` from them; records past
retention are purged by the worker's timer and by ``dsr provisions purge``.
"""

from services.crypto.digests import subject_digests
from services.provisions.records import (
    Basis,
    Counterparty,
    CrossBorder,
    Direction,
    Flow,
    ProvisionEvent,
    RecordForm,
)
from services.provisions.retention import retain_until
from services.provisions.store import Outcome, ProvisionStore, Purge

__all__ = [
    "Basis",
    "Counterparty",
    "CrossBorder",
    "Direction",
    "Flow",
    "Outcome",
    "ProvisionEvent",
    "ProvisionStore",
    "Purge",
    "RecordForm",
    "retain_until",
    "subject_digests",
]
