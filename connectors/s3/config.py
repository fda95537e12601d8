"""The S3 connector's config, as it appears under a system in the data map::

    connector: s3
    identifiers: [customer_id, email]
    config:
      bucket: acme-uploads
      prefixes:                            # key patterns (see connectors.s3.keys)
        - users/{customer_id}/             # a folder: every object under it
        - exports/{email}/profile.json     # one object
      endpoint_url: http://minio:9000      # optional: MinIO, moto, ...
      region: ap-northeast-1
      access_key_id: ${UPLOADS_KEY_ID}     # optional; default: the AWS credential chain
      secret_access_key: ${UPLOADS_SECRET} # kept as a secret
      erasure: delete                      # every object, and every version of it
      suspension: {tag: {key: dsr-suspended, value: "true"}}
      correction: {content_type: json, correctable: [name, phone]}
      provision_log:
        key: provisions/{email}.jsonl      # JSON lines, one provision record a line
        stop_marker: provisions/{email}.stopped

Disclosure and erasure are always available; suspension, correction,
third-party records and third-party stop only when their section is set.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from connectors.s3.keys import parse_pattern

MiB = 1024 * 1024


def _pattern(text: str) -> str:
    parse_pattern(text)
    return text


Pattern = Annotated[str, AfterValidator(_pattern)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagSpec(_Model):
    key: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "dsr-suspended"
    value: Annotated[str, StringConstraints(max_length=256)] = "true"


class SuspensionSpec(_Model):
    """Suspend by tagging each of the subject's objects; the data stays as it is."""

    tag: TagSpec = TagSpec()


class CorrectionSpec(_Model):
    """Correct top-level keys of the subject's JSON objects."""

    content_type: Literal["json"] = "json"
    correctable: list[Name] = Field(min_length=1)


class ProvisionLogSpec(_Model):
    """JSON-lines objects recording what was provided to whom.

    ``stop_marker`` is the key of a small JSON object written when provision to
    third parties must stop; whatever provides data to third parties checks for
    it. Without it, third-party stop is not offered.
    """

    key: Pattern
    stop_marker: Pattern | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"key": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _marker_is_one_object(self) -> Self:
        if self.stop_marker is None:
            return self
        if self.stop_marker.endswith("/"):
            raise ValueError("stop_marker must name one object, not a folder")
        missing = set(parse_pattern(self.stop_marker).identifiers) - set(
            parse_pattern(self.key).identifiers
        )
        if missing:
            raise ValueError(
                f"stop_marker uses identifiers the log key does not: {sorted(missing)}"
            )
        return self


class S3Config(_Model):
    bucket: BucketName
    prefixes: list[Pattern] = Field(min_length=1)
    endpoint_url: str | None = Field(
        default=None, description="For MinIO or moto; requests then use path-style addressing."
    )
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    erasure: Literal["delete"] = "delete"
    suspension: SuspensionSpec | None = None
    correction: CorrectionSpec | None = None
    provision_log: ProvisionLogSpec | None = None
    max_content_bytes: int = Field(
        default=MiB, gt=0, le=64 * MiB, description="Larger objects are listed without content."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        if self.endpoint_url is not None and not re.fullmatch(
            r"https?://[^\s/?#]+(/[^\s?#]*)?", self.endpoint_url
        ):
            raise ValueError("endpoint_url must be an http:// or https:// URL")
        if len(set(self.prefixes)) != len(self.prefixes):
            raise ValueError("a pattern is listed twice in prefixes")
        return self
