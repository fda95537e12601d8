"""The ``provision_ledger`` connector: third-party-provision records from the ledger."""

from connectors.provision_ledger.config import ProvisionLedgerConfig
from connectors.provision_ledger.connector import ProvisionLedgerConnector

__all__ = ["ProvisionLedgerConfig", "ProvisionLedgerConnector"]
