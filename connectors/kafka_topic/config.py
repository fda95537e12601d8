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
defaults to the bare identifier value. A composite key lists its identifiers,
and its ``format`` names each once, with text between them::

      key: {identifier: [country_code, phone], format: "member:{country_code}:{phone}"}

Its record keys are built only when the subject's identifiers hold every part, and
a part whose value holds a separator (here ``:``) is refused.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
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

from connectors.errors import FatalError

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: Kafka's own rule for topic names.
TopicName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9._-]{1,249}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Model):
    """How a record key is built from the subject's identifiers: one, or several that
    only together identify the subject (a composite key, every part required)."""

    identifier: Name | tuple[Name, ...] = Field(
        description="The identifier the key holds, or a list of them (a composite key)."
    )
    format: str | None = Field(
        default=None,
        description='A str.format template naming each identifier once, e.g. "cust-{customer_id}".',
    )

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.identifier,) if isinstance(self.identifier, str) else self.identifier

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        parts = self.parts
        if not parts or len(set(parts)) != len(parts):
            raise ValueError("a composite key names each identifier once, and at least one")
        if self.format is None:
            if len(parts) > 1:
                raise ValueError(
                    "a composite key needs a format, e.g. " + ":".join(f"{{{p}}}" for p in parts)
                )
            return self
        try:
            pieces = list(string.Formatter().parse(self.format))
        except ValueError as exc:
            raise ValueError(f"format is not a valid template: {exc}") from None
        names = [(name, spec, conv) for _, name, spec, conv in pieces if name is not None]
        if not names:
            raise ValueError(f"format has no placeholder; use {{{parts[0]}}}")
        for name, spec, conv in names:
            if name not in parts:
                raise ValueError(
                    f"format placeholder {{{name}}} is not the key's identifier; "
                    f"use {' and '.join(f'{{{p}}}' for p in parts)} only"
                )
            if spec or conv:
                raise ValueError(f"use a plain {{{name}}}, without ! or :")
        if sorted(n for n, _, _ in names) != sorted(parts):
            raise ValueError(f"format names each of {list(parts)} exactly once")
        if len(parts) > 1 and not all(_separators(self.format)):
            raise ValueError("separate the parts of a composite key with some text, e.g. ':'")
        return self

    def render(self, identifiers: Mapping[str, str]) -> bytes | None:
        """The record key, as the bytes Kafka compares; None when a part is missing.

        A part's value may not hold the text that separates it from the next part, or
        two people's parts could render the same key; such a value is refused."""
        if not all(identifiers.get(p) for p in self.parts):
            return None
        template = self.format if self.format is not None else "{" + self.parts[0] + "}"
        separators = _separators(template)
        for name in self.parts:
            if any(sep in identifiers[name] for sep in separators):
                raise FatalError(
                    f"identifier {name!r} holds the text that separates the parts of the "
                    "record key, so the key would be ambiguous; refusing"
                )
        return template.format_map({p: identifiers[p] for p in self.parts}).encode("utf-8")


def _separators(template: str) -> list[str]:
    """The text between each two placeholders of ``template``, braces unescaped."""
    out: list[str] = []
    current, seen = "", False
    for literal, name, _, _ in string.Formatter().parse(template):
        current += literal
        if name is not None:
            if seen:
                out.append(current)
            seen, current = True, ""
    return out


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
