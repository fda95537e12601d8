"""The published JSON Schemas of every event that crosses the queue boundary."""

from __future__ import annotations

import json

from pydantic import BaseModel

from services.provisions.records import ProvisionEvent
from streams.records import PUBLISHED_SCHEMAS

#: Events defined outside ``streams.records``: the provision ledger's own input.
SERVICE_SCHEMAS: dict[str, type[BaseModel]] = {"provision-event.v1.json": ProvisionEvent}


def render_all() -> dict[str, str]:
    return {
        name: json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
        for name, model in {**PUBLISHED_SCHEMAS, **SERVICE_SCHEMAS}.items()
    }
