"""``Task`` and ``TaskResult``: one system's part of a request, and what it did."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from streams.records.base import LOOKUP, Kind, RequestId, _Strict, utcnow
from streams.records.requests import Change


class TaskStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    TIMED_OUT = "timed_out"
    #: Withheld by a data-map rule before the system was asked (e.g. Art. 33(2)(iii)).
    REFUSED = "refused"


class Reason(_Strict):
    """Why a response, or one system's part of it, is not what was asked (APPI Art. 36)."""

    code: str
    message: str
    system: str | None = None
    field: str | None = Field(default=None, description="The field of a correction it concerns.")
    message_ja: str | None = Field(
        default=None, description="The message in Japanese, where its author gave one."
    )


class FieldChange(_Strict):
    """A value a correction replaced in one system (or would replace, in a dry run)."""

    field: str
    old: Any = None
    new: Any = None
    table: str | None = Field(default=None, description="The table, topic or object it is in.")
    rows: int | None = Field(default=None, description="How many rows held the old value.")


class CorrectionReport(_Strict):
    """What a correction did in one system, field by field (``TaskResult.correction``).

    A requested field in none of the lists was held, correctable and already right, or
    the principal is not in the system."""

    changes: list[FieldChange] = Field(default_factory=list)
    not_found: list[str] = Field(
        default_factory=list, description="Requested fields the system holds nowhere."
    )
    not_correctable: list[str] = Field(
        default_factory=list, description="Requested fields it holds but may not correct."
    )

    @classmethod
    def of(
        cls,
        changes: Iterable[FieldChange | Mapping[str, Any]],
        wanted: Iterable[str],
        held: Collection[str],
        correctable: Collection[str],
    ) -> CorrectionReport:
        """The report of a correction that made ``changes``, asked for ``wanted`` fields of
        a system that holds the ``held`` ones and may correct the ``correctable`` ones."""
        wanted = list(wanted)
        return cls(
            changes=[FieldChange.model_validate(c) for c in changes],
            not_found=[f for f in wanted if f not in held],
            not_correctable=[f for f in wanted if f in held and f not in correctable],
        )

    def merge(self, other: CorrectionReport) -> CorrectionReport:
        """One report from the lookups of several identity units in one system."""

        def union(a: list[Any], b: list[Any]) -> list[Any]:
            return [*a, *(x for x in b if x not in a)]

        return CorrectionReport(
            changes=union(self.changes, other.changes),
            not_found=union(self.not_found, other.not_found),
            not_correctable=union(self.not_correctable, other.not_correctable),
        )

    @property
    def changed(self) -> list[str]:
        """The fields changed, each once."""
        return list(dict.fromkeys(c.field for c in self.changes))


class Task(_Strict):
    """One system's share of a request, sent to ``dsr.tasks.<system>``."""

    request_id: RequestId
    task_id: str = Field(description="Idempotency key: request, system, operation and wave.")
    system: str
    kind: Kind
    wave: int = 0
    identifiers: dict[str, str] = Field(description="The identifiers the request carries.")
    identities: list[dict[str, str]] = Field(
        default_factory=list,
        description="The identity units to look the principal up by, one connector call "
        "each: the request's own identifiers first, then those the resolve phase found, "
        "each unit whole (identifiers that belong together). Only units that supply one "
        "of the system's keys; empty: look up by ``identifiers``.",
    )
    lookup: bool = Field(
        default=False,
        description="A read-only lookup of the resolve phase: the runner reads the system "
        "per unit and reports only the identities found, never the records.",
    )
    changes: list[Change] = []
    grounds: list[str] = []
    dry_run: bool = False
    attempt: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    not_after: datetime | None = Field(
        default=None,
        description="The request's timeout when the task was sent: a task still queued "
        "after it belongs to a request already answered without it, so the runner skips "
        "it, counts it and dead-letters it unrun (``dsr dlq redrive`` runs it). None: "
        "run whenever it arrives.",
    )
    sealed: str | None = Field(
        default=None,
        description="identifiers, identities and changes, sealed under the request's data "
        "key (base64); those fields are then empty on the wire",
    )

    @staticmethod
    def make_id(request_id: str, system: str, kind: str, wave: int = 0) -> str:
        return f"{request_id}:{system}:{kind}:{wave}"

    @staticmethod
    def make_lookup_id(request_id: str, system: str, wave: int) -> str:
        return f"{request_id}:{system}:{LOOKUP}:{wave}"

    @staticmethod
    def is_lookup_id(task_id: str) -> bool:
        """Whether ``task_id`` names a lookup task (``make_lookup_id``)."""
        parts = task_id.rsplit(":", 2)
        return len(parts) == 3 and parts[1] == LOOKUP


class TaskResult(_Strict):
    """What a connector runner reports for one task, sent to ``dsr.results``."""

    request_id: RequestId
    task_id: str
    system: str
    kind: Kind
    status: Literal["ok", "failed"]
    records: list[dict[str, Any]] = Field(default_factory=list)
    changed: int = Field(default=0, ge=0)
    kept: int = Field(
        default=0,
        ge=0,
        description="Of ``changed``, an erasure's records kept in place with the fields that "
        "identify the principal removed or pseudonymised, rather than deleted.",
    )
    pending_purge: int = Field(
        default=0,
        ge=0,
        description="Of ``changed``, an erasure's records deleted from the system's current "
        "data whose earlier copies stay readable until a scheduled clean-up removes them "
        "(a compacted topic's older values, until its log cleaner runs).",
    )
    fields: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(
        default_factory=dict, description="The system's own account of what it did, for operators."
    )
    correction: CorrectionReport | None = Field(
        default=None, description="A correction's outcome, field by field."
    )
    identities: list[dict[str, str]] = Field(
        default_factory=list,
        description="The principal's identities the system holds, one unit per record "
        "(identifiers that belong together); they extend the request's identity graph.",
    )
    refusal: Reason | None = Field(
        default=None,
        description="Set when the system withholds some or all of what was asked, on a "
        "ground the principal is told (partial refusal); the records are what may be shown.",
    )
    error: str | None = None
    error_code: str | None = None
    retriable: bool = False
    attempts: int = 1
    started_at: datetime
    finished_at: datetime = Field(default_factory=utcnow)
    sealed: str | None = Field(
        default=None,
        description="records, identities and details, sealed under the "
        "request's data key (base64); those fields are then empty on the wire",
    )
    claim: str | None = Field(
        default=None,
        pattern=r"^claims/[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}/[0-9a-f]{64}$",
        description="A sealed value too large for one message, kept in the package store "
        "under this key instead (claim check); ``sealed`` is then empty",
    )

    @model_validator(mode="after")
    def _kept_among_changed(self) -> TaskResult:
        if self.kept + self.pending_purge > self.changed:
            raise ValueError(
                f"kept ({self.kept}) and pending_purge ({self.pending_purge}) are more "
                f"than changed ({self.changed})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _correction_in_details(cls, data: Any) -> Any:
        """A correction's report as results recorded before ``correction`` carry it, and as
        connectors written before it report it: in ``details``."""
        if not isinstance(data, dict) or data.get("correction") or data.get("kind") != "correction":
            return data
        details = dict(data.get("details") or {})
        if not {"changes", "not_found", "not_correctable"} & details.keys():
            return data
        return {
            **data,
            "details": details,
            "correction": {
                "changes": [_entry(c) for c in details.pop("changes", None) or []],
                "not_found": [_entry(f)["field"] for f in details.pop("not_found", None) or []],
                "not_correctable": [
                    _entry(f)["field"] for f in details.pop("not_correctable", None) or []
                ],
            },
        }


def _entry(item: Any) -> dict[str, Any]:
    return dict(item) if isinstance(item, dict) else {"field": str(item)}
