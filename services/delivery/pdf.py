"""The written letter as PDF, printed by WeasyPrint with a Japanese font from PyPI.

Every script in the letter is set in one font, IPAexGothic, which the
``matplotlib-fontja`` package ships (IPA Font License: embedding is allowed).
It is loaded through ``@font-face`` from the installed package, so the PDF looks
the same whichever fonts the machine has, and WeasyPrint embeds only the glyphs
the letter uses (a subset: a two-page letter is 20–35 KB).

WeasyPrint needs Debian's Pango (``libpango-1.0-0``, ``libpangoft2-1.0-0``), and
subsets fonts about three times faster with ``libharfbuzz-subset0``; the
Makefile installs all three when they are missing.

The same letter gives the same bytes: the PDF's creation and modification dates
are the response's ``completed_at``, never the clock. The bytes can change with
the versions of WeasyPrint, HarfBuzz or the font.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime
from pathlib import Path
from typing import Any

FONT_PACKAGE = "matplotlib_fontja"
FONT_FAMILY = "DSR Letter"

_INSTALL = (
    "the PDF letter needs WeasyPrint and Debian's Pango: "
    "pip install weasyprint, apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
    "libharfbuzz-subset0 (`make demo` and `make test` do both)"
)


def bundled_font() -> Path:
    """IPAexGothic from the ``matplotlib-fontja`` package, found without importing matplotlib."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the PDF letter needs its font: pip install {FONT_PACKAGE!r}")
    return Path(next(iter(spec.submodule_search_locations))) / "fonts" / "ipaexg.ttf"


def font_css(font: Path) -> str:
    """A stylesheet that sets the whole letter in ``font``.

    It is passed as a user stylesheet, which loses to the letter's own CSS
    unless marked ``!important``.
    """
    return (
        f'@font-face {{ font-family: "{FONT_FAMILY}"; src: url("{font.as_uri()}"); }}\n'
        f'html, body {{ font-family: "{FONT_FAMILY}" !important; }}\n'
    )


def layout(letter_html: str, font: Path | None = None) -> Any:
    """The letter laid out on A4 pages in ``font``: a WeasyPrint ``Document``."""
    try:
        from weasyprint import CSS, HTML
        from weasyprint.text.fonts import FontConfiguration
    except OSError as exc:  # WeasyPrint is installed but Pango is not
        raise RuntimeError(f"{_INSTALL} ({exc})") from exc

    fonts = FontConfiguration()
    sheet = CSS(string=font_css(font or bundled_font()), font_config=fonts)
    return HTML(string=letter_html).render(stylesheets=[sheet], font_config=fonts)


def render_pdf(letter_html: str, *, dated: datetime, font: Path | None = None) -> bytes:
    """The letter's HTML as an A4 PDF, with its font embedded and dated ``dated``."""
    document = layout(letter_html, font)
    document.metadata.created = document.metadata.modified = dated.isoformat()
    pdf: bytes = document.write_pdf()
    return pdf
