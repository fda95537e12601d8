"""The kit's tests of failure: transient errors, bad configs, and secrets kept hidden."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connectors.dispatch import check
from connectors.errors import ConfigError, ConnectorError, RetriableError
from connectors.testing.calls import ORDER, READS, attempt, fail, label, run
from connectors.testing.harness import Harness
from connectors.testing.session import Session
from streams.records import Kind


class FailureTests:
    def test_transient_failure_is_retriable(self, kit: Session) -> None:
        kinds = [k for k in ORDER if kit.supports(k)]
        if not kinds:
            pytest.skip("the connector declares no operations")
        with Broken(kit.harness):
            for kind in kinds:
                _expect_retriable(kit, kind)
        try:
            _run(kit, kinds[0])
        except ConnectorError as exc:
            fail(f"{label(kinds[0])} still fails after break_transiently() ended: {exc!r}")

    def test_invalid_configs_raise_config_error(self, kit: Session) -> None:
        h = kit.harness
        configs = attempt("Harness.invalid_configs()", h.invalid_configs)
        if not configs:
            pytest.skip(
                "Harness.invalid_configs() lists none; add configs the connector must refuse"
            )
        problems = []
        for i, config in enumerate(configs):
            which = f"invalid_configs()[{i}]"
            try:
                connector = h.connector_class(h.system, config)
            except ConfigError as exc:
                if h.system not in str(exc):
                    problems.append(f"{which}: the ConfigError does not name the system: {exc}")
                problems += [
                    f"{which}: the ConfigError shows {s}" for s in _secrets_in(h, str(exc))
                ]
            except Exception as exc:  # noqa: BLE001 - reported to the author
                problems.append(
                    f"{which} raised {type(exc).__name__} ({exc}), not ConfigError; validate it "
                    "in the Config model (Connector.__init__ turns that into ConfigError)"
                )
            else:
                connector.close()
                problems.append(f"{which} was accepted; it must raise ConfigError")
        if problems:
            fail("\n".join(problems))

    def test_secrets_are_never_shown(self, kit: Session, caplog: pytest.LogCaptureFixture) -> None:
        h, s = kit.harness, kit.seeded
        if not attempt("Harness.secrets()", h.secrets):
            pytest.skip(
                "Harness.secrets() lists none; list the config values that must stay hidden"
            )
        shown: dict[str, str] = {}
        with caplog.at_level(logging.DEBUG):
            c = kit.connector
            shown["the result of check()"] = repr(attempt("connector.check()", check, c))
            for kind in ORDER:
                if kit.supports(kind) and (kind is not Kind.CORRECTION or s.correction):
                    shown[f"the result of {label(kind)}"] = repr(_run(kit, kind, dry_run=False))
            if kit.supports(Kind.DISCLOSURE):
                unknown = kit.read(Kind.DISCLOSURE, s.unknown_identifiers())
                shown["the result of disclose() for an unknown subject"] = repr(unknown)
            if type(h).break_transiently is not Harness.break_transiently:
                shown["the errors raised while the system is broken"] = _errors_while_broken(kit)
        for record in caplog.records:
            key = f"a log message of {record.name!r}"
            shown[key] = shown.get(key, "") + record.getMessage()
        shown["the log output"] = caplog.text
        shown |= {f"{f.__name__}(connector)": f(c) for f in (repr, str)}
        shown |= {f"{f.__name__}(connector.config)": f(c.config) for f in (repr, str)}
        problems = [
            f"{s} appears in {where}" for where, text in shown.items() for s in _secrets_in(h, text)
        ]
        if problems:
            fail("a secret is shown:\n" + "\n".join(f"  - {p}" for p in problems))


class Broken:
    """``harness.break_transiently()``, failing readably while it is not written."""

    def __init__(self, harness: Harness) -> None:
        self.name = f"{type(harness).__name__}.break_transiently()"
        self.cm = attempt(self.name, harness.break_transiently)

    def __enter__(self) -> None:
        attempt(self.name, self.cm.__enter__)

    def __exit__(self, *exc: Any) -> None:
        self.cm.__exit__(*exc)


def _run(kit: Session, kind: Kind, *, dry_run: bool | None = None) -> Any:
    """Run ``kind`` for the subject; destructive kinds as a dry run unless told otherwise."""
    dry = kind not in READS if dry_run is None else dry_run
    return run(kit.connector, kind, kit.seeded.subject, change=kit.seeded.correction, dry_run=dry)


def _expect_retriable(kit: Session, kind: Kind) -> None:
    what = label(kind, dry_run=kind not in READS)
    try:
        _run(kit, kind)
    except RetriableError:
        return
    except ConnectorError as exc:
        fail(
            f"{what} raised {type(exc).__name__} ({exc}) while the system was failing "
            "transiently; raise RetriableError for timeouts, connection errors and locks"
        )
    except Exception as exc:  # noqa: BLE001 - reported to the author
        fail(
            f"{what} raised {type(exc).__name__} ({exc}) while the system was failing "
            "transiently; catch it and raise RetriableError, so the runner retries"
        )
    fail(
        f"{what} succeeded while Harness.break_transiently() was active; make it really cut "
        "the connector off from the system"
    )


def _errors_while_broken(kit: Session) -> str:
    messages = []
    with Broken(kit.harness):
        for kind in ORDER:
            if kit.supports(kind):
                try:
                    _run(kit, kind)
                except Exception as exc:  # noqa: BLE001 - only its message matters here
                    messages.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(messages)


def _secrets_in(harness: Harness, text: str) -> list[str]:
    """The secrets ``text`` contains, named by position so the message shows none."""
    return [
        f"Harness.secrets()[{i}] ({secret[:2]}…)"
        for i, secret in enumerate(harness.secrets())
        if secret and secret in text
    ]
