"""The connector contract: dispatch, capabilities, config validation and secrets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from connectors import (
    CheckResult,
    ConfigError,
    Connector,
    NotSupported,
    OperationResult,
    Withheld,
    dispatch,
)
from connectors.base import Identifiers
from connectors.dispatch import ok_result
from streams.records import FAN_OUT_KINDS, Change, Kind, Task


class NotebookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_token: SecretStr
    pages: dict[str, str] = {}
    read_only: bool = False


class Notebook(Connector[NotebookConfig]):
    """An in-memory system: one page of notes per email address."""

    name = "notebook"
    Config = NotebookConfig
    capabilities = frozenset({Kind.DISCLOSURE, Kind.CORRECTION, Kind.ERASURE})

    def __init__(self, system: str, config: object) -> None:
        super().__init__(system, config)  # type: ignore[arg-type]
        self.pages = dict(self.config.pages)

    @classmethod
    def kinds_for(cls, config: Any) -> frozenset[Kind]:
        return frozenset({Kind.DISCLOSURE}) if config.read_only else cls.capabilities

    def check(self) -> CheckResult:
        return CheckResult(True, f"{len(self.pages)} pages")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        page = self.pages.get(identifiers.get("email", ""))
        if page and page.startswith("secret:"):  # a page the business may not show
            return OperationResult(withheld=Withheld("violation_of_other_laws", "Sealed page."))
        return OperationResult(records=[{"note": page, "_source": "pages"}] if page else [])

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        email = identifiers.get("email", "")
        new = next((str(c.value) for c in changes if c.field == "note"), None)
        if email not in self.pages or new is None or self.pages[email] == new:
            return OperationResult(dry_run=dry_run)
        if not dry_run:
            self.pages[email] = new
        return OperationResult(changed=1, fields=["note"], dry_run=dry_run)

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        email = identifiers.get("email", "")
        if email not in self.pages:
            return OperationResult(dry_run=dry_run)
        if not dry_run:
            del self.pages[email]
        return OperationResult(changed=1, fields=["note"], dry_run=dry_run)


def notebook(**config: object) -> Notebook:
    return Notebook("notes", {"api_token": "t0ken-value", "pages": {"a@x.jp": "hello"}, **config})


def task(kind: Kind, **fields: object) -> Task:
    return Task(
        request_id="r1",
        task_id=Task.make_id("r1", "notes", kind),
        system="notes",
        kind=kind,
        identifiers={"email": "a@x.jp"},
        **fields,
    )  # type: ignore[arg-type]


def test_dispatch_calls_the_method_for_the_kind() -> None:
    c = notebook()
    assert dispatch(c, task(Kind.DISCLOSURE)).records == [{"note": "hello", "_source": "pages"}]
    planned = dispatch(
        c, task(Kind.CORRECTION, changes=[Change(field="note", value="bye")], dry_run=True)
    )
    assert planned.dry_run and planned.changed == 1 and c.pages["a@x.jp"] == "hello"
    assert dispatch(c, task(Kind.CORRECTION, changes=[Change(field="note", value="bye")])).changed
    assert c.pages["a@x.jp"] == "bye"
    assert dispatch(c, task(Kind.ERASURE, grounds=["consent_withdrawn"])).changed == 1
    assert dispatch(c, task(Kind.DISCLOSURE)).records == []
    assert dispatch(c, task(Kind.ERASURE, grounds=["consent_withdrawn"])).changed == 0


@pytest.mark.parametrize(
    "kind", sorted(FAN_OUT_KINDS - {Kind.DISCLOSURE, Kind.CORRECTION, Kind.ERASURE})
)
def test_an_undeclared_kind_raises_not_supported(kind: Kind) -> None:
    c = notebook()
    assert not c.supports(kind)
    with pytest.raises(NotSupported, match=f"does not do {kind}"):
        dispatch(c, task(kind, grounds=["g"]))


def test_a_kind_narrowed_by_config_is_not_supported() -> None:
    c = notebook(read_only=True)
    assert c.supports(Kind.DISCLOSURE) and not c.supports(Kind.ERASURE)
    with pytest.raises(NotSupported):
        dispatch(c, task(Kind.ERASURE, grounds=["g"]))
    assert c.pages  # nothing was erased


class Shredder(Notebook):
    """Erases pages, but cannot show them."""

    capabilities = frozenset({Kind.ERASURE})


def test_purpose_notification_asks_only_whether_the_system_holds_data() -> None:
    holds = dispatch(notebook(), task(Kind.PURPOSE_NOTIFICATION))
    assert (holds.records, holds.details) == ([], {"holds_data": True})  # no record leaves
    empty = notebook(pages={})
    assert dispatch(empty, task(Kind.PURPOSE_NOTIFICATION)).details == {"holds_data": False}
    shredder = Shredder("notes", {"api_token": "t0ken-value"})
    with pytest.raises(NotSupported):  # a system that cannot disclose cannot tell
        dispatch(shredder, task(Kind.PURPOSE_NOTIFICATION))


class Directory(Notebook):
    """A notebook that also knows each page owner's phone, as a whole identity unit."""

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        found = super().disclose(identifiers)
        email = identifiers.get("email", "")
        phone = {"a@x.jp": "090-1", "b@x.jp": "090-2"}.get(email) if found.records else None
        return OperationResult(
            records=found.records,
            identities=[{"email": email, "phone": phone}] if phone else [],
        )


@pytest.mark.parametrize("kind", sorted(FAN_OUT_KINDS))
def test_a_lookup_reads_per_unit_and_returns_only_identities_and_evidence(kind: Kind) -> None:
    c = Directory("notes", {"api_token": "t", "pages": {"a@x.jp": "hello", "b@x.jp": "bye"}})
    units = [{"email": "a@x.jp"}, {"email": "nobody@x.jp"}]
    found = dispatch(c, task(kind, lookup=True, identities=units, grounds=["g"]))
    assert found.records == [] and found.changed == 0  # no record leaves the runner
    assert found.identities == [{"email": "a@x.jp", "phone": "090-1"}]  # not b's
    assert found.details == {"holds_data": True, "records": 1}
    assert c.pages == {"a@x.jp": "hello", "b@x.jp": "bye"}  # read only, whatever the kind
    missing = dispatch(c, task(kind, lookup=True, identities=[{"email": "nobody@x.jp"}]))
    assert (missing.identities, missing.details) == ([], {"holds_data": False, "records": 0})


def test_a_declared_kind_must_be_implemented() -> None:
    class Boasting(Notebook):
        capabilities = frozenset({Kind.DISCLOSURE, Kind.SUSPENSION})

    with pytest.raises(TypeError, match="suspension"):
        Boasting("notes", {"api_token": "t"})


def test_config_is_validated_when_built_and_secrets_stay_hidden() -> None:
    with pytest.raises(ConfigError) as caught:
        Notebook("notes", {"api_token": "t0ken-value", "pages": "not a mapping"})
    message = str(caught.value)
    assert "system 'notes': invalid notebook connector config" in message
    assert "pages: Input should be a valid dictionary" in message
    assert "t0ken-value" not in message

    with pytest.raises(ConfigError, match="api_token: Field required"):
        Notebook("notes", {})

    c = notebook()
    assert "t0ken-value" not in repr(c) + repr(c.config) + str(c.config)
    assert c.config.api_token.get_secret_value() == "t0ken-value"


def test_a_connector_withholding_data_reports_the_ground_in_its_result() -> None:
    c = notebook(pages={"a@x.jp": "secret: sealed by a court"})
    t = task(Kind.DISCLOSURE)
    result = ok_result(t, dispatch(c, t), t.created_at)
    assert (result.status, result.records) == ("ok", [])
    assert result.refusal is not None
    assert (result.refusal.code, result.refusal.message, result.refusal.system) == (
        "violation_of_other_laws",
        "Sealed page.",
        "notes",
    )
