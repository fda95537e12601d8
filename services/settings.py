"""Runtime settings, read from ``DSR_*`` environment variables: the only place that reads them.

A value that does not parse is refused by name (``DSR_TASK_ATTEMPTS: Input should be a
valid integer``); an empty variable counts as unset.

| variable | default | meaning |
|---|---|---|
| DSR_KAFKA_BOOTSTRAP | (unset: start the embedded broker) | Kafka bootstrap servers |
| DSR_DATABASE_URL | sqlite:///<DSR_HOME>/ledger.db | the ledger database |
| DSR_HOME | ./.dsr | where embedded state lives (ledger, packages, sample data) |
| DSR_DATAMAP | <DSR_HOME>/datamap.yaml | the data map |
| DSR_STORAGE_URL | file://<DSR_HOME>/packages | where packages go: file:// or s3://bucket/prefix |
| DSR_S3_ENDPOINT_URL | (unset) | S3-compatible endpoint (MinIO, moto) |
| DSR_S3_KMS_KEY_ID | (unset: SSE-S3) | KMS key (id, ARN, alias/...) of S3 objects' SSE-KMS |
| DSR_PACKAGE_LINK_TTL_S | 900 | seconds a ``dsr package link`` link lasts (at most 7 days) |
| DSR_NOTICE_LINK_TTL_S | 604800 | seconds the link in a response notice lasts (at most 7 days) |
| DSR_TOPIC_REPLICATION | min(3, brokers) | replication factor of the topics the pipeline creates |
| DSR_TOPIC_MIN_ISR | min(2, replication) | their ``min.insync.replicas`` (produces use acks=all) |
| DSR_SESSION_TIMEOUT_S | 6 (4 on the embedded broker) | consumer-group session timeout, seconds |
| DSR_IDEMPOTENT_PRODUCER | true (false embedded) | the workers' producers are idempotent |
| DSR_TASK_ATTEMPTS | 5 | connector attempts before a task is failed |
| DSR_METRICS_PORT | 0 (off) | loopback port of this process's Prometheus ``/metrics`` |
| DSR_METRICS_ADDR | 127.0.0.1 | the address ``/metrics`` listens on (``0.0.0.0`` in a container) |
| DSR_DASHBOARD_PORT | 8700 | ``dsr up``'s dashboard port on 127.0.0.1 (0: any free one) |
| DSR_CONSOLE_PORT | 8701 | ``dsr up``'s privacy-ops console port on 127.0.0.1 (0: any free one) |
| DSR_SIGNING_KEYS | <DSR_HOME>/signing-keys.json | the producers' HMAC keys |
| DSR_REQUIRE_SIGNATURES | true | reject request events not signed by a key in the keyring |
| DSR_PRODUCER_KEY_ID | ops, or the keyring's first key | the key ``dsr submit`` signs with |
| DSR_SIGNATURE_MAX_AGE_S | 600 | how far (s) a ``dsr-signed-at`` may be from intake's clock |
| DSR_PROVISION_PURGE_INTERVAL_S | 3600 | seconds between purges of expired provision records |
| DSR_ENCRYPT_PACKAGES | true | seal local packages (AES-256-GCM, a data key per request) |
| DSR_SEAL_EVENTS | true | seal identifiers and records in task and result events (same keys) |
| DSR_CLAIM_CHECK_BYTES | 262144 | a larger sealed result goes by claim check (package store) |
| DSR_KEYS_DIR | <DSR_HOME>/keys | the wrapped data keys (``data/<request>.key``) |
| DSR_MASTER_KEY_FILE | <DSR_KEYS_DIR>/master.key | the master key (0600, made if absent) |
| DSR_PACKAGE_RETENTION_DAYS | 90 | days after completion until a package's data key goes |
| DSR_KEY_SHRED_INTERVAL_S | 3600 | seconds between the worker's shreddings of expired keys |
| DSR_NOTIFIER | outbox | how notices reach the principal: outbox (files) or smtp |
| DSR_SMTP_URL | (unset) | smtp://, smtp+tls:// (STARTTLS) or smtps://[user:password@]host[:port] |
| DSR_NOTICE_FROM | privacy@localhost | the From address of notices |
| DSR_COMPLAINTS_CONTACT | (a generic desk) | whom the principal contacts with a complaint |
| DSR_LETTERHEAD | <DSR_HOME>/letterhead.yaml | the business's name, address and desks on letters |
| DSR_PIPELINE_PUBLIC_KEY | <DSR_KEYS_DIR>/pipeline.pub | the pipeline's public key, for producers |
| DSR_TOPIC_PREFIX | dsr | names the topics and groups: deployments sharing a cluster keep apart |
| DSR_TOPIC_PARTITIONS | 4 | partitions of the topics ``dsr up`` creates |
| DSR_FETCH_MAX_WAIT_MS | 500 (50 embedded) | how long a worker's or runner's fetch waits for data |
| DSR_APPI_SLA_DAYS | 14 | the APPI's "without delay", as an internal SLA |
| DSR_LOG_LEVEL | INFO | the pipeline's own loggers' level (libraries log at WARNING) |
| DSR_COMPONENT | (the process's kind) | the name ``dsr up`` gives a process |
| DSR_HEARTBEAT_INTERVAL_S | 2 | seconds between a process's heartbeats (``dsr top``, dashboard) |
| DSR_RESTART_FROZEN_AFTER_S | 60 | ``dsr up`` restarts a process not beating that long (0: never) |
| DSR_RESTART_UNSTARTED_AFTER_S | 120 | ... or running that long without a first beat (0: never) |
| DSR_CRASH_AT | (unset) | crash points, for the fault tests only (``services.faults``) |
"""

from __future__ import annotations

import os
from email import policy
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasGenerator, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.files import write_status

#: What a notice says about complaints when ``DSR_COMPLAINTS_CONTACT`` is unset.
DEFAULT_COMPLAINTS_CONTACT = (
    "当社の個人情報お問い合わせ窓口までご連絡ください。 / "
    "Please contact our personal information enquiries desk."
)

#: How long a worker's or runner's fetch waits on the broker for data, ms, unless
#: ``DSR_FETCH_MAX_WAIT_MS`` says otherwise: Kafka's own default, since Apache Kafka
#: answers a waiting fetch as soon as data arrives, and a long wait only spares the idle
#: fetches.
FETCH_MAX_WAIT_MS = 500
#: The same on the embedded broker, which looks again for data only when half the wait
#: is over, so a message waits up to half of it at every hop (``streams.transport``):
#: ``dsr up`` sets it there, unless ``DSR_FETCH_MAX_WAIT_MS`` is set.
EMBEDDED_FETCH_MAX_WAIT_MS = 50


def _env_name(field: str) -> str:
    return f"DSR_{field.upper()}"


def _override(variable: str, *, secret: bool = False) -> Any:
    """A path or URL whose default derives from others (a property below picks)."""
    return Field(default=None, validation_alias=variable, repr=not secret)


#: A switch: off when set to 0, false, no or off; on otherwise.
Switch = Annotated[
    bool, BeforeValidator(lambda v: str(v).lower() not in ("0", "false", "no", "off"))
]


class Settings(BaseSettings):
    """Every setting of every process. ``Settings(home=...)`` overrides by field name."""

    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=_env_name),
        populate_by_name=True,
        env_ignore_empty=True,
        case_sensitive=True,
        frozen=True,
        extra="ignore",
    )

    home: Path = Path(".dsr")
    kafka_bootstrap: str | None = None
    #: May hold a password: never printed (``database_url_masked``).
    database_url_override: str | None = _override("DSR_DATABASE_URL", secret=True)
    datamap_override: str | None = _override("DSR_DATAMAP")
    storage_url_override: str | None = _override("DSR_STORAGE_URL", secret=True)
    s3_endpoint_url: str | None = None
    s3_kms_key_id: str | None = None
    package_link_ttl_s: float = 900
    notice_link_ttl_s: float = 7 * 24 * 3600
    # The embedded broker holds a new group's first JoinGroup for half the session
    # timeout, so a short session timeout is a short start-up (and a quick failover).
    # Apache Kafka refuses less than its group.min.session.timeout.ms, 6 s by default.
    session_timeout_override: float | None = _override("DSR_SESSION_TIMEOUT_S")
    #: A broker killed after writing a batch but before acknowledging it makes the
    #: producer send it again: idempotence keeps it from being appended twice. The
    #: embedded broker has no idempotent producers (``dsr up`` turns it off there).
    idempotent_producer: Switch = True
    #: Unset: min(3, brokers) and min(2, replication), so 1 on the embedded broker.
    topic_replication: int | None = None
    topic_min_isr: int | None = None
    topic_prefix: str = Field(default="dsr", pattern=r"^[A-Za-z0-9._-]+$")
    topic_partitions: int = Field(default=4, ge=1)
    fetch_max_wait_ms: int = Field(default=FETCH_MAX_WAIT_MS, ge=0)
    task_attempts: int = Field(default=5, ge=1)
    #: Where this process serves ``/metrics`` on 127.0.0.1; 0 means no metrics server.
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"
    dashboard_port: int = 8700
    console_port: int = 8701
    signing_keys_override: str | None = _override("DSR_SIGNING_KEYS")
    require_signatures: Switch = True
    producer_key_id: str | None = None
    signature_max_age_s: float = 600
    provision_purge_interval_s: float = 3600
    encrypt_packages: Switch = True
    seal_events: Switch = True
    claim_check_bytes: int = 262144
    keys_dir_override: str | None = _override("DSR_KEYS_DIR")
    pipeline_public_key_override: str | None = _override("DSR_PIPELINE_PUBLIC_KEY")
    master_key_override: str | None = _override("DSR_MASTER_KEY_FILE")
    package_retention_days: int = 90
    key_shred_interval_s: float = 3600
    notifier: str = "outbox"
    #: May hold a password: never printed.
    smtp_url: str | None = Field(default=None, repr=False)
    notice_from: str = "privacy@localhost"
    complaints_contact: str = DEFAULT_COMPLAINTS_CONTACT
    letterhead_override: str | None = _override("DSR_LETTERHEAD")
    appi_sla_days: int = Field(default=14, ge=1)
    log_level: str = "INFO"
    #: The name ``dsr up`` gives this process; unset in a one-process container.
    component: str | None = None
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    restart_frozen_after_s: float = Field(default=60.0, ge=0)
    restart_unstarted_after_s: float = Field(default=120.0, ge=0)
    #: Comma-separated crash points (``services.faults``): the fault tests' only.
    crash_at: str = ""

    @field_validator("home")
    @classmethod
    def _absolute(cls, home: Path) -> Path:
        return home.resolve()

    @field_validator("notifier", "log_level")
    @classmethod
    def _case(cls, value: str, info: Any) -> str:
        return value.lower() if info.field_name == "notifier" else value.upper()

    @field_validator("notice_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        """The From of every notice: refused here rather than by each notice it would
        fail (the standard library cannot even parse some display names)."""
        try:
            header = policy.SMTP.header_factory("From", value)
            addresses, defects = header.addresses, header.defects
        except Exception:  # noqa: BLE001 - the library's parser fails in its own ways
            addresses, defects = (), ("unparsable",)
        address = addresses[0].addr_spec if len(addresses) == 1 else ""
        if defects or "@" not in address or not address.isascii():
            raise ValueError(
                "not one e-mail address for the From header, in ASCII (an international "
                "domain in its xn-- form), like privacy@example.com or "
                "Privacy Office <privacy@example.com>"
            )
        return value

    @property
    def letterhead_path(self) -> Path:
        if self.letterhead_override:
            return Path(self.letterhead_override)
        return self.home / "letterhead.yaml"

    @property
    def database_url(self) -> str:
        return self.database_url_override or f"sqlite:///{self.home / 'ledger.db'}"

    @property
    def database_url_masked(self) -> str:
        """The ledger's URL with any password hidden, for printing and logs."""
        from services.masking import mask_url

        return mask_url(self.database_url)

    @property
    def datamap_path(self) -> Path:
        return Path(self.datamap_override) if self.datamap_override else self.home / "datamap.yaml"

    @property
    def signing_keys_path(self) -> Path:
        if self.signing_keys_override:
            return Path(self.signing_keys_override)
        return self.home / "signing-keys.json"

    @property
    def keys_dir(self) -> Path:
        return Path(self.keys_dir_override) if self.keys_dir_override else self.home / "keys"

    @property
    def pipeline_public_key_path(self) -> Path:
        """Where a producer reads the pipeline's public key (``dsr keys public``)."""
        if self.pipeline_public_key_override:
            return Path(self.pipeline_public_key_override)
        return self.keys_dir / "pipeline.pub"

    @property
    def master_key_path(self) -> Path:
        if self.master_key_override:
            return Path(self.master_key_override)
        return self.keys_dir / "master.key"

    @property
    def storage_url(self) -> str:
        return self.storage_url_override or (self.home / "packages").as_uri()

    @property
    def session_timeout_s(self) -> float:
        if self.session_timeout_override is not None:
            return self.session_timeout_override
        return 6.0 if self.kafka_bootstrap else 4.0

    @property
    def broker_heartbeat_s(self) -> float:
        """The consumer's heartbeat to its group coordinator."""
        return max(0.5, self.session_timeout_s / 6)

    @property
    def crash_points(self) -> frozenset[str]:
        return frozenset(p for p in self.crash_at.split(",") if p)


def variables() -> list[str]:
    """Every ``DSR_*`` variable the settings read."""
    return [str(f.validation_alias or _env_name(n)) for n, f in Settings.model_fields.items()]


def load() -> Settings:
    """This process's settings; a variable that does not parse stops it, named."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"dsr: bad settings: {explain(error)}") from None


def explain(error: ValidationError) -> str:
    """``DSR_X='value': why`` for each variable refused."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}" for e in error.errors()
    )


@cache
def for_process() -> Settings:
    """This process's settings, read once: for what runs deep inside it (crash points)."""
    return load()


def mark_ready(settings: Settings) -> None:
    """Tell the supervisor this process has its partitions (``Stack.wait_joined``)."""
    name = settings.component
    if not name:
        return
    write_status(settings.home / "run" / f"{name}.ready", str(os.getpid()).encode())
