"""Runtime settings, read from ``DSR_*`` environment variables.

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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: What a notice says about complaints when ``DSR_COMPLAINTS_CONTACT`` is unset.
DEFAULT_COMPLAINTS_CONTACT = (
    "当社の個人情報お問い合わせ窓口までご連絡ください。 / "
    "Please contact our personal information enquiries desk."
)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _on(name: str) -> bool:
    """A switch that is on unless set to 0, false, no or off."""
    return _env(name, "true").lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("DSR_HOME", ".dsr")).resolve())
    kafka_bootstrap: str | None = field(
        default_factory=lambda: os.environ.get("DSR_KAFKA_BOOTSTRAP") or None
    )
    #: May hold a password: never printed (``database_url_masked``).
    database_url_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_DATABASE_URL") or None, repr=False
    )
    datamap_override: str | None = field(default_factory=lambda: os.environ.get("DSR_DATAMAP"))
    storage_url_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_STORAGE_URL"), repr=False
    )
    s3_endpoint_url: str | None = field(
        default_factory=lambda: os.environ.get("DSR_S3_ENDPOINT_URL") or None
    )
    s3_kms_key_id: str | None = field(
        default_factory=lambda: os.environ.get("DSR_S3_KMS_KEY_ID") or None
    )
    package_link_ttl_s: float = field(
        default_factory=lambda: float(_env("DSR_PACKAGE_LINK_TTL_S", "900"))
    )
    notice_link_ttl_s: float = field(
        default_factory=lambda: float(_env("DSR_NOTICE_LINK_TTL_S", str(7 * 24 * 3600)))
    )
    # The embedded broker holds a new group's first JoinGroup for half the session
    # timeout, so a short session timeout is a short start-up (and a quick failover).
    # Apache Kafka refuses less than its group.min.session.timeout.ms, 6 s by default.
    session_timeout_s: float = field(
        default_factory=lambda: float(
            _env("DSR_SESSION_TIMEOUT_S", "6" if os.environ.get("DSR_KAFKA_BOOTSTRAP") else "4")
        )
    )
    #: A broker killed after writing a batch but before acknowledging it makes the
    #: producer send it again: idempotence keeps it from being appended twice. The
    #: embedded broker has no idempotent producers (``dsr up`` turns it off there).
    idempotent_producer: bool = field(default_factory=lambda: _on("DSR_IDEMPOTENT_PRODUCER"))
    #: Unset: min(3, brokers) and min(2, replication), so 1 on the embedded broker.
    topic_replication: int | None = field(
        default_factory=lambda: _optional_int("DSR_TOPIC_REPLICATION")
    )
    topic_min_isr: int | None = field(default_factory=lambda: _optional_int("DSR_TOPIC_MIN_ISR"))
    task_attempts: int = field(default_factory=lambda: int(_env("DSR_TASK_ATTEMPTS", "5")))
    #: Where this process serves ``/metrics`` on 127.0.0.1; 0 means no metrics server.
    metrics_port: int = field(default_factory=lambda: int(_env("DSR_METRICS_PORT", "0")))
    metrics_addr: str = field(default_factory=lambda: _env("DSR_METRICS_ADDR", "127.0.0.1"))
    dashboard_port: int = field(default_factory=lambda: int(_env("DSR_DASHBOARD_PORT", "8700")))
    console_port: int = field(default_factory=lambda: int(_env("DSR_CONSOLE_PORT", "8701")))
    signing_keys_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_SIGNING_KEYS") or None
    )
    require_signatures: bool = field(default_factory=lambda: _on("DSR_REQUIRE_SIGNATURES"))
    producer_key_id: str | None = field(
        default_factory=lambda: os.environ.get("DSR_PRODUCER_KEY_ID") or None
    )
    signature_max_age_s: float = field(
        default_factory=lambda: float(_env("DSR_SIGNATURE_MAX_AGE_S", "600"))
    )
    provision_purge_interval_s: float = field(
        default_factory=lambda: float(_env("DSR_PROVISION_PURGE_INTERVAL_S", "3600"))
    )
    encrypt_packages: bool = field(default_factory=lambda: _on("DSR_ENCRYPT_PACKAGES"))
    seal_events: bool = field(default_factory=lambda: _on("DSR_SEAL_EVENTS"))
    claim_check_bytes: int = field(
        default_factory=lambda: int(_env("DSR_CLAIM_CHECK_BYTES", "262144"))
    )
    keys_dir_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_KEYS_DIR") or None
    )
    pipeline_public_key_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_PIPELINE_PUBLIC_KEY") or None
    )
    master_key_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_MASTER_KEY_FILE") or None
    )
    package_retention_days: int = field(
        default_factory=lambda: int(_env("DSR_PACKAGE_RETENTION_DAYS", "90"))
    )
    key_shred_interval_s: float = field(
        default_factory=lambda: float(_env("DSR_KEY_SHRED_INTERVAL_S", "3600"))
    )
    notifier: str = field(default_factory=lambda: _env("DSR_NOTIFIER", "outbox").lower())
    #: May hold a password: never printed.
    smtp_url: str | None = field(
        default_factory=lambda: os.environ.get("DSR_SMTP_URL") or None, repr=False
    )
    notice_from: str = field(default_factory=lambda: _env("DSR_NOTICE_FROM", "privacy@localhost"))
    complaints_contact: str = field(
        default_factory=lambda: _env("DSR_COMPLAINTS_CONTACT", DEFAULT_COMPLAINTS_CONTACT)
    )

    letterhead_override: str | None = field(
        default_factory=lambda: os.environ.get("DSR_LETTERHEAD") or None
    )

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
    def heartbeat_interval_s(self) -> float:
        return max(0.5, self.session_timeout_s / 6)


def load() -> Settings:
    return Settings()


def mark_ready(settings: Settings) -> None:
    """Tell the supervisor this process has its partitions (``Stack.wait_joined``)."""
    name = os.environ.get("DSR_COMPONENT")
    if not name:
        return
    run = settings.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{name}.ready").write_text(str(os.getpid()))
