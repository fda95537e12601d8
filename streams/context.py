"""What the stream processors share: the ledger, the data map, connectors' capabilities
and the package store. Handlers are plain functions of this context and return the
messages to send, so they can be tested without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from pydantic import BaseModel

from connectors.registry import capabilities
from services.crypto.sealing import Sealer
from services.datamap import DataMap, answers, unanswerable_kinds
from services.datamap import load as load_datamap
from services.delivery.claims import ClaimCheck
from services.delivery.encrypted import open_package_storage
from services.delivery.labels import Labels
from services.delivery.letterhead import Letterhead
from services.delivery.storage import Storage
from services.ledger import Ledger
from services.settings import DEFAULT_COMPLAINTS_CONTACT, Settings
from services.signing import KeyringFile, Verifier
from streams.records import Kind

log = logging.getLogger("dsr.pipeline")


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    #: A response sent again because the ledger has no record of its being sent
    #: (``streams.outbox`` looks on the topic first).
    resend: bool = False
    #: What ``value`` holds, when metrics count it (a response, a rejected event, a dead
    #: letter): the wiring counts the typed record, never re-reads the bytes.
    record: BaseModel | None = None


@dataclass
class Pipeline:
    ledger: Ledger
    datamap: DataMap
    storage: Storage
    #: What each system's connector answers (``connectors.registry.capabilities``): the
    #: worker never builds a connector nor holds a system's secrets.
    capabilities: Mapping[str, frozenset[Kind]] = field(default_factory=dict)
    #: The producers' keys; None accepts unsigned events (``DSR_REQUIRE_SIGNATURES=false``).
    keyring: Verifier | None = None
    #: Who writes to the principal, and whom they complain to (``DSR_LETTERHEAD``).
    letterhead: Letterhead = field(
        default_factory=lambda: Letterhead.default(DEFAULT_COMPLAINTS_CONTACT)
    )
    #: How long the link to a package that a response notice gives lasts.
    notice_link_ttl: timedelta = timedelta(days=7)
    #: Seals personal data in task and result events; None sends it in the clear.
    #: (The ledger has its own, for what it keeps: ``Ledger.sealer``.)
    sealer: Sealer | None = None
    #: Reads back sealed results sent by claim check (``services.delivery.claims``).
    claims: ClaimCheck | None = None

    @cached_property
    def labels(self) -> Labels:
        return Labels.of(self.datamap)

    @property
    def request_timeout(self) -> timedelta:
        return timedelta(seconds=self.datamap.request_timeout_seconds)

    def does(self, system: str, operation: Kind) -> bool:
        """Whether the system's connector does ``operation``."""
        return operation in self.capabilities.get(system, frozenset())

    def supports(self, system: str, kind: Kind) -> bool:
        """Whether the system answers requests of ``kind``."""
        spec = self.datamap.systems[system]
        return answers(spec, lambda op: self.does(system, op), kind)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        datamap = load_datamap(settings.datamap_path)
        sealer = Sealer.from_settings(settings)
        kinds = capabilities(datamap)
        does = {name: kinds[name].__contains__ for name in kinds}
        for kind in unanswerable_kinds(datamap, does):
            log.warning(
                "no system in the data map answers %s requests: they will be answered "
                "no_applicable_system and never complete",
                kind,
                extra={"stage": "startup", "kind": kind.value},
            )
        return cls(
            ledger=Ledger(settings.database_url, sealer=sealer),
            datamap=datamap,
            # sealed when local (see encrypted.py), with the keys the sealer unwrapped
            storage=open_package_storage(settings, sealer.data_keys if sealer else None),
            capabilities=kinds,
            keyring=KeyringFile(settings.signing_keys_path, settings.signature_max_age_s)
            if settings.require_signatures
            else None,
            letterhead=Letterhead.load(settings.letterhead_path, settings.complaints_contact),
            notice_link_ttl=timedelta(seconds=settings.notice_link_ttl_s),
            sealer=sealer,
            claims=ClaimCheck.from_settings(settings),
        )

    def close(self) -> None:
        self.ledger.close()
