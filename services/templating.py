"""Jinja2 environments for the HTML the project renders (letters, the console): autoescaped,
strict about undefined values, and tidy about the whitespace of block tags."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def templates(package: str) -> jinja2.Environment:
    """The templates in ``<package>/templates``."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
