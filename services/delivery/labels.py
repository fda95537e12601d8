"""Display labels: what the principal reads instead of internal system and field names.

Systems and the tables and fields they return get ``label: {ja, en}`` in the data map
(``SystemSpec.label``, ``SystemSpec.fields``); provision and receipt records carry
the Art. 29/30 item names (``services.provisions.labels``). A name without a label is
shown as it is, marked "表示名未登録 / no display name", so a missing label is seen in
the first letter rather than hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.datamap import DataMap
from services.provisions.labels import ITEM_LABELS, TABLE_LABELS
from services.rules.sentence import Sentence

PROVISION_CONNECTOR = "provision_ledger"


def unlabelled(name: str) -> Sentence:
    return Sentence(f"{name}（表示名未登録）", f"{name} (no display name)")


@dataclass(frozen=True)
class Labels:
    systems: Mapping[str, Sentence] = field(default_factory=dict)
    #: system -> ``table.field``, ``field`` or ``table`` -> label.
    fields: Mapping[str, Mapping[str, Sentence]] = field(default_factory=dict)

    @classmethod
    def of(cls, datamap: DataMap) -> Labels:
        systems = {name: s.label for name, s in datamap.systems.items() if s.label}
        fields: dict[str, dict[str, Sentence]] = {}
        for name, spec in datamap.systems.items():
            mine = fields[name] = {}
            if spec.connector == PROVISION_CONNECTOR:
                mine.update(TABLE_LABELS)
                for table, items in ITEM_LABELS.items():
                    mine.update({f"{table}.{item}": label for item, label in items.items()})
            mine.update(spec.fields)
        return cls(systems, fields)

    def system(self, name: str) -> Sentence:
        return self.systems.get(name) or unlabelled(name)

    def table(self, system: str, table: str) -> Sentence:
        return self.fields.get(system, {}).get(table) or unlabelled(table)

    def field(self, system: str, name: str, table: str | None = None) -> Sentence:
        mine = self.fields.get(system, {})
        found = (mine.get(f"{table}.{name}") if table else None) or mine.get(name)
        return found or unlabelled(name)
