"""The SQL connector's config, as it appears under a system in the data map::

    connector: sql
    config:
      url: postgresql+psycopg://crm@db/crm
      password: ${CRM_DB_PASSWORD}          # optional; kept as a secret
      tables:
        - name: customers
          key: {column: email, identifier: email}
          columns: [email, name, phone, birthday]   # default: every column
          identifiers: {customer_id: id}    # other identifiers found here
          correctable: [name, phone, birthday]
          erasure: {columns: {email: hash, name: mask, phone: null}}
          suspension: {flag_column: processing_suspended}
        - name: orders
          key: {column: customer_id, identifier: customer_id}
          erasure: {strategy: delete}
          suspension: {move_to: orders_suppressed}
        - name: loyalty_members              # a composite key: every part must match
          key:
            - {column: country_code, identifier: country_code}
            - {column: phone, identifier: phone}
          identifiers: {customer_id: customer_id}
          erasure: {strategy: delete}
      provision_log:
        table: provisions
        key: {column: email, identifier: email}
        columns: [recipient, purpose, provided_at]
        stopped_column: stopped

A ``key`` is one ``{column, identifier}`` or a list of them: a composite key,
which finds a row only when every part matches. A call that lacks a part of a
table's key skips that table. Names are checked against the live schema by
``check()`` and before the first operation. In YAML, ``null`` as an erasure
strategy is read as ``"null"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Strategy = Literal["null", "mask", "hash"]
#: Seconds a statement waits for a lock another session holds (an application's open
#: transaction, a migration) before its call fails, retriable: SQLite's busy timeout,
#: PostgreSQL's ``lock_timeout``, MySQL's and MariaDB's lock wait time-outs (in whole
#: seconds). ``busy_timeout_s``, its former name, is read too.
LockTimeout = Annotated[
    float,
    Field(
        gt=0,
        validation_alias=AliasChoices("lock_timeout_s", "busy_timeout_s"),
        description="Seconds a statement waits for another session's lock (default 5).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Model):
    """The column that holds one of the subject's identifiers: a key, or a part of one."""

    column: Name
    identifier: Name


def _key_parts(value: Any) -> Any:
    """One ``{column, identifier}``, or a list of them (a composite key)."""
    return [value] if isinstance(value, dict | KeySpec) else value


def _parts_distinct(parts: list[KeySpec]) -> list[KeySpec]:
    for attr in ("column", "identifier"):
        names = [getattr(p, attr) for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"a composite key names each {attr} once: {names}")
    return parts


#: A table's key: every part must match for a row to be the subject's.
Key = Annotated[
    list[KeySpec],
    BeforeValidator(_key_parts),
    AfterValidator(_parts_distinct),
    Field(min_length=1),
]


class ErasureSpec(_Model):
    """Delete the subject's rows, or anonymise some of their columns in place."""

    strategy: Literal["delete", "anonymise"] | None = None
    columns: dict[Name, Strategy] = {}

    @field_validator("columns", mode="before")
    @classmethod
    def _yaml_null(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "null" if v is None else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_strategy(self) -> Self:
        if self.strategy == "delete" and self.columns:
            raise ValueError("use either strategy: delete or per-column strategies, not both")
        if self.strategy != "delete" and not self.columns:
            raise ValueError("set strategy: delete, or columns: {column: null|mask|hash}")
        return self

    @property
    def deletes(self) -> bool:
        return self.strategy == "delete"


class SuspensionSpec(_Model):
    """Set a flag column to true, or move the rows to a suppression table with the same columns."""

    flag_column: Name | None = None
    move_to: Name | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.flag_column is None) == (self.move_to is None):
            raise ValueError("set exactly one of flag_column or move_to")
        return self


class TableSpec(_Model):
    name: Name
    key: Key
    columns: list[Name] | None = Field(
        default=None, description="The personal-data columns to disclose; default: all."
    )
    identifiers: dict[Name, Name] = Field(
        default={},
        description="Other identifiers of the subject held here, as identifier: column. "
        "They find the subject's rows in tables keyed by them, and are reported.",
    )
    correctable: list[Name] = []
    erasure: ErasureSpec | None = None
    suspension: SuspensionSpec | None = None

    @model_validator(mode="after")
    def _correctable_disclosed(self) -> Self:
        if self.columns is not None:
            hidden = [c for c in self.correctable if c not in self.columns]
            if hidden:
                raise ValueError(f"correctable columns not in columns: {hidden}")
        return self


class ProvisionLogSpec(_Model):
    """The table that records provision of personal data to third parties."""

    table: Name
    key: Key
    columns: list[Name] | None = None
    stopped_column: Name | None = None


class SQLConfig(_Model):
    url: str = Field(description="A SQLAlchemy database URL. Its password is never shown.")
    password: SecretStr | None = Field(
        default=None, description="Set on the URL, so the URL itself can stay free of secrets."
    )
    schema_name: Name | None = Field(default=None, description="Database schema of the tables.")
    tables: list[TableSpec] = Field(default_factory=list)
    provision_log: ProvisionLogSpec | None = None
    suspension: SuspensionSpec | None = Field(
        default=None, description="Default for tables without their own; a flag_column only."
    )
    lock_timeout_s: LockTimeout = 5.0

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a SQLAlchemy database URL (dialect+driver://...)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.tables and self.provision_log is None:
            raise ValueError("list at least one table, or a provision_log")
        names = [t.name for t in self.tables]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tables listed twice: {twice}")
        targets = [s.move_to for t in self.tables if (s := t.suspension) and s.move_to]
        if set(targets) & set(names) or len(set(targets)) != len(targets):
            raise ValueError("each move_to table must be its own, and not a listed table")
        if self.suspension is not None and self.suspension.move_to is not None:
            raise ValueError("the default suspension can only be a flag_column")
        return self

    def engine_url(self) -> URL:
        url = make_url(self.url)
        if self.password is not None:
            url = url.set(password=self.password.get_secret_value())
        return url

    def masked_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (self.masked_url() if key == "url" else value)
