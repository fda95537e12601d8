"""The provision-ledger connector's config, as it appears under a system in the data map::

    provision_ledger:
      connector: provision_ledger
      identifiers: [email, customer_id]
      config: {}                          # the pipeline's own ledger (DSR_DATABASE_URL)

``url`` points it at another ledger database; ``password`` is kept as a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connectors.sql.config import LockTimeout
from services.settings import load as load_settings


class ProvisionLedgerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None,
        description="The ledger's SQLAlchemy URL; default: the pipeline's own ledger.",
    )
    password: SecretStr | None = Field(
        default=None, description="Set on the URL, so the URL itself can stay free of secrets."
    )
    lock_timeout_s: LockTimeout = 5.0

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a SQLAlchemy database URL (dialect+driver://...)") from None
        return value

    def engine_url(self) -> URL:
        """The URL to connect with: the configured one, or the pipeline's ledger, read
        when the connector is built (so ``DSR_DATABASE_URL`` and ``DSR_HOME`` apply)."""
        url = make_url(self.url or load_settings().database_url)
        if self.password is not None:
            url = url.set(password=self.password.get_secret_value())
        return url

    def masked_url(self) -> str:
        return make_url(self.url or load_settings().database_url).render_as_string(
            hide_password=True
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (self.masked_url() if key == "url" and value else value)
