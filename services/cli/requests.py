"""Requests and decisions: ``submit``, ``responses``, ``release``, ``extend``, ``refuse``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app, broker_address, console, err
from services.cli.views import _print_response
from services.settings import load as load_settings


@app.command()
def submit(file: Annotated[str, typer.Argument(help="JSON lines file, or - for stdin.")]) -> None:
    """Submit request events (one JSON object per line) to the requests topic."""
    from services.client import Submitter

    stream = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
    with stream:
        lines = [line.strip() for line in stream if line.strip()]
    settings = load_settings()
    submitter = Submitter.from_settings(settings, broker_address(settings))
    try:
        n = submitter.submit_all(lines)
    finally:
        submitter.close()
    console.print(f"Submitted {n} event(s).")


@app.command()
def responses(
    request: Annotated[
        str | None, typer.Option("--request", help="Only this request's responses.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", help="Keep printing responses as they come (with --request: wait for it)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the responses on dsr.responses: status, outcome per system, reasons and where
    the package or letter is."""
    from services import client

    settings = load_settings()
    # On the operator's broker, the workers' wait (Apache Kafka answers a fetch as soon
    # as data arrives); on dsr up's embedded broker, the client's short one.
    wait = settings.fetch_max_wait_ms if settings.kafka_bootstrap else client.FETCH_MAX_WAIT_MS
    found = 0
    try:
        for body in client.responses(
            broker_address(settings), request, follow=follow, fetch_max_wait_ms=wait
        ):
            found += 1
            if as_json:
                print(json.dumps(body, ensure_ascii=False), flush=True)
            else:
                _print_response(body)
    except KeyboardInterrupt:
        return
    if request is not None and not found:
        err.print(
            f"No response to {request!r} on the topic (yet). `dsr status {request}` shows "
            "what the ledger holds."
        )
        raise typer.Exit(1)


@app.command()
def release(
    request_id: str,
    method: Annotated[str | None, typer.Option(help="How the identity was checked.")] = None,
    reference: Annotated[str | None, typer.Option(help="The identity check's reference.")] = None,
    payment_reference: Annotated[
        str | None, typer.Option(help="The fee payment's reference.")
    ] = None,
    authority_reference: Annotated[
        str | None, typer.Option(help="The agent's power of attorney or proof, as a reference.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 30.0,
) -> None:
    """Release a held request with the evidence it waits for (identity verified, fee paid,
    an agent's authority), sent again as intake allows. Waits for the worker to record it;
    exits 1 if it was not released, 2 if nothing recorded it."""
    from services.crypto.sealing import Sealer
    from services.decisions import release as release_request
    from services.ledger import Ledger

    settings = load_settings()
    evidence = {
        "method": method or "",
        "reference": reference or "",
        "payment_reference": payment_reference or "",
        "authority_reference": authority_reference or "",
    }
    with Ledger(settings.database_url, sealer=Sealer.from_settings(settings)) as ledger:
        outcome = release_request(
            settings, broker_address(settings), ledger, request_id, evidence, None, wait
        )
    if not outcome.applied:
        err.print(outcome.message, highlight=False)
        raise typer.Exit(1 if outcome.reason_code else 2)
    console.print(outcome.message, highlight=False)


@app.command()
def extend(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why, in words the principal will read.")],
    by: Annotated[str, typer.Option(help="Who decides (an operator id).")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 60.0,
) -> None:
    """Extend an open request's deadline by its regulation's one extension (GDPR two
    months, CCPA 45 days); the reason goes into the response to the principal. Waits
    for the worker to record it; exits 1 if it was rejected, 2 if nothing recorded it."""
    _decide(request_id, "extension", None, reason, by, wait)


@app.command()
def refuse(
    request_id: str,
    ground: Annotated[str, typer.Option(help="A refusal code of the request's regulation.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")],
    by: Annotated[str, typer.Option(help="Who decides (an operator id).")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 60.0,
    system: Annotated[
        str | None, typer.Option(help="Refuse only this system's part of the request.")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Refuse only this field of a disclosure (repeatable)."),
    ] = None,
) -> None:
    """Refuse a request not yet fanned out on one of its regulation's grounds (e.g. the
    APPI's Art. 33(2) harm_to_principal_or_third_party); the response says so. With
    --system or --field, refuse that part only: the response is partially completed,
    with the reason. Waits for the worker to record it; exits 1 if it was rejected (with
    the accepted grounds), 2 if nothing recorded it."""
    _decide(request_id, "refusal", ground, reason, by, wait, system, field or [])


def _decide(
    request_id: str,
    decision: str,
    ground: str | None,
    reason: str,
    by: str,
    wait: float,
    system: str | None = None,
    fields: list[str] | None = None,
) -> None:
    """Send the decision and report what became of it: exit 1 when it was rejected, 2
    when no worker recorded it in time."""
    from services.decisions import decide
    from services.ledger import as_utc
    from streams.records import DecisionEvent

    settings = load_settings()
    event = DecisionEvent.model_validate(
        {
            "request_id": request_id,
            "decision": decision,
            "ground": ground,
            "reason": reason,
            "decided_by": by,
            "system": system,
            "fields": fields or [],
        }
    )
    outcome = decide(settings, broker_address(settings), event, wait)
    if outcome is None:
        err.print(
            f"The {decision} of {request_id} was sent, but no worker recorded it within "
            f"{wait:g} s; `dsr status {request_id}` will show it once one does."
        )
        raise typer.Exit(2)
    if not outcome.applied:
        why = "; ".join(e.get("msg", "") for e in outcome.errors) or outcome.reason_code
        err.print(f"[red]Rejected[/] ({outcome.reason_code}): {why}", highlight=False)
        raise typer.Exit(1)
    if decision == "extension":
        row_deadline = outcome.detail.get("deadline")
        shown = as_utc(datetime.fromisoformat(row_deadline)).isoformat() if row_deadline else "?"
        console.print(f"Extended {request_id}: the deadline is now {shown}.", highlight=False)
    elif event.in_part:
        part = " ".join([*([f"system {system}"] if system else []), *(fields or [])])
        console.print(
            f"Refused {part} of {request_id} ({ground}); the rest goes on.", highlight=False
        )
    else:
        console.print(
            f"Refused {request_id} ({ground}); the response goes to the principal.",
            highlight=False,
        )
