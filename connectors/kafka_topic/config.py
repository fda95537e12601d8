"""The Kafka topic connector's config, as it appears under a system in the data map::

    connector: kafka_topic
    config:
      bootstrap_servers: [kafka-1:9092, kafka-2:9092]
      topic: customer-profiles
      key: {identifier: customer_id, format: "customer:{customer_id}"}
      value_format: json
      correctable: [name, phone, address]
      suspension: {field: processing_suspended}
      security:                             # optional; default PLAINTEXT
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_plain_username: dsr-connector
        sasl_plain_password: ${PROFILES_KAFKA_PASSWORD}   # kept as a secret
      timeout_s: 30

``key`` may also be a list, for a topic whose records are keyed by different
identifiers. A ``format`` names its identifier as its only placeholder; it
defaults to the bare identifier value.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: Kafka's own rule for topic names.
TopicName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9._-]{1,249}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Model):
    """How a record key is built from one of the subject's identifiers."""

    identifier: Name
    format: str | None = Field(
        default=None,
        description='A str.format template naming only the identifier, e.g. "cust-{customer_id}".',
    )

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        if self.format is None:
            return self
        try:
            parts = list(string.Formatter().parse(self.format))
        except ValueError as exc:
            raise ValueError(f"format is not a valid template: {exc}") from None
        names = [(name, spec, conv) for _, name, spec, conv in parts if name is not None]
        if not names:
            raise ValueError(f"format has no placeholder; use {{{self.identifier}}}")
        for name, spec, conv in names:
            if name != self.identifier:
                raise ValueError(
                    f"format placeholder {{{name}}} is not the key's identifier; "
                    f"use {{{self.identifier}}} only"
                )
            if spec or conv:
                raise ValueError(f"use a plain {{{self.identifier}}}, without ! or :")
        return self

    def render(self, value: str) -> bytes:
        """The record key for one identifier value, as the bytes Kafka compares."""
        template = self.format if self.format is not None else "{" + self.identifier + "}"
        return template.format_map({self.identifier: value}).encode("utf-8")


class SuspensionSpec(_Model):
    """Suspend by writing the latest value again with ``field`` set to true."""

    field: Name = "processing_suspended"


Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class SecuritySpec(_Model):
    """How to reach the cluster. The password is a secret: never shown, never logged."""

    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "PLAIN"
    sasl_plain_username: Name | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = Field(default=None, description="CA bundle for SSL/SASL_SSL.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        sasl = self.security_protocol.startswith("SASL_")
        has_login = self.sasl_plain_username is not None or self.sasl_plain_password is not None
        if sasl and (self.sasl_plain_username is None or self.sasl_plain_password is None):
            raise ValueError(
                f"{self.security_protocol} needs sasl_plain_username and sasl_plain_password"
            )
        if has_login and not sasl:
            raise ValueError("a SASL login needs security_protocol SASL_SSL or SASL_PLAINTEXT")
        return self

    def client_options(self) -> dict[str, Any]:
        """The kafka-python options; the only place the password is revealed."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_plain_password is not None:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_plain_username,
                "sasl_plain_password": self.sasl_plain_password.get_secret_value(),
            }
        if self.ssl_cafile is not None:
            options["ssl_cafile"] = self.ssl_cafile
        return options


class KafkaTopicConfig(_Model):
    bootstrap_servers: list[str] = Field(
        min_length=1, description='"host:port" addresses, as a list or comma-separated.'
    )
    topic: TopicName
    key: list[KeySpec] = Field(
        min_length=1, description="How the subject's record keys are built: one spec, or a list."
    )
    value_format: Literal["json"] = Field(default="json", description="Values are JSON objects.")
    correctable: list[Name] = Field(default=[], description="Fields a correction may set.")
    suspension: SuspensionSpec | None = None
    security: SecuritySpec = SecuritySpec()
    timeout_s: float = Field(
        default=30.0,
        ge=1,
        le=300,
        description="The longest each step (connect, read to the end, confirm writes) may take.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        )

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict | KeySpec) else value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return servers

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.key)) != len(self.key):
            raise ValueError("key lists the same key twice")
        if self.suspension is not None and self.suspension.field in self.correctable:
            raise ValueError("the suspension field cannot also be correctable")
        return self
