"""Reading a data map from YAML: ``${VAR}`` expanded, deep nesting and alias bombs
refused, and every error said with where it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.datamap.model import DataMap, DataMapError

#: Nesting deeper than this is refused while reading the YAML.
MAX_DEPTH = 100
#: Values in the document once every alias is expanded; more is refused ("billion laughs").
MAX_NODES = 1_000_000


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting, and reports a scalar that does not
    fit its type (a 5000-digit integer, the 13th month) as a YAML error at its line."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"unusable {node.tag.rsplit(':', 1)[-1]}: {exc}", node.start_mark
            ) from None


def _expanded_size(root: Any) -> int:
    """How many values ``root`` holds once every alias is expanded, counting each shared
    value once per reference, and stopping past ``MAX_NODES``; a loop counts as too many."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, children_done = stack.pop()
        if not isinstance(value, dict | list):
            continue
        key = id(value)
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes.get(id(v), 1) for v in items)
            sizes[key] = min(total, MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            return MAX_NODES + 1
        on_path.add(key)
        stack.append((value, True))
        stack.extend((v, False) for v in items if isinstance(v, dict | list))
    return sizes.get(id(root), 1)


def parse(text: str, source: str = "<data map>") -> DataMap:
    expanded = os.path.expandvars(text)
    try:
        loader = _Loader(expanded)
        loader.name = source  # YAML errors then point into the file by its name
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        if isinstance(exc, yaml.reader.ReaderError):
            exc.name = source  # raised before the loader could be given the name
        raise DataMapError(f"{source}: not valid YAML: {exc}") from exc
    if _expanded_size(raw) > MAX_NODES:
        raise DataMapError(
            f"{source}: its aliases expand to more than {MAX_NODES} values, or into a loop"
        )
    if not isinstance(raw, dict):
        raise DataMapError(f"{source}: expected a mapping with 'systems'")
    try:
        return DataMap.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise DataMapError(f"{source}: invalid data map\n" + "\n".join(lines)) from None


def read(path: str | Path) -> str:
    """The data map file's text, unexpanded (``DataMapError`` if it cannot be read)."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataMapError(f"cannot read data map {p}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DataMapError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL in the path
        raise DataMapError(f"cannot read data map {str(p)!r}: {exc}") from None


def load(path: str | Path) -> DataMap:
    return parse(read(path), str(path))
