"""The published JSON Schemas of every event that crosses the queue boundary."""

from __future__ import annotations

import json

from streams.records import PUBLISHED_SCHEMAS


def render_all() -> dict[str, str]:
    return {
        name: json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
        for name, model in PUBLISHED_SCHEMAS.items()
    }
