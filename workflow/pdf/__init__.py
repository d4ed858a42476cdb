"""The WeasyPrint adapter: letters rendered from plain dicts to PDF bytes.

Pure: no Flask, no database. A service builds a plain dict (its shape is declared by the models in
``models``), calls ``render_letter(kind, data, locale)`` and stores the returned bytes with the template
name, the template version, its data and the SHA-256; a stored letter is never re-rendered in place.

The package:

- ``__init__``: this API;
- ``models``: the data of each kind of letter as pydantic models, which validate the dict (``LetterDataError``
  names every problem) and give the templates their data, leaving the stored dict as it is;
- ``templates``: the Jinja environment of templates/letters/, its filters, labels and version digest;
- ``render``: HTML to PDF by WeasyPrint, with one font configuration, the letters' base URL and a URL
  fetcher that serves only templates/letters/;
- ``fonts``: the installed CJK fonts checked, and the letter faces derived from them by fontTools;
- ``errors``: ``LetterError`` and its kinds.

Reproducibility: the PDF's creation and modification dates come from ``issued_at`` and WeasyPrint writes no
random identifier, so the same data, locale, templates, letter faces and WeasyPrint version give the same
bytes (checked by the tests, also across processes). A change to any of those changes the bytes, which is
why the SHA-256 stored with a letter is that of the stored bytes, never of a re-rendering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import LetterDataError, LetterError, LetterFontMissing, LetterSubsetterMissing, LetterURLRefused
from .fonts import (
    FONTS_DIR,
    LETTER_FACES,
    LETTER_FONT,
    LETTER_SANS_FONT,
    LetterFace,
    check_letter_fonts,
    letter_fonts,
)
from .models import (
    DRAFT_NUMBER,
    KINDS,
    MODELS,
    AppealDecision,
    AppealRecord,
    CaseSummary,
    Determination,
    template_data,
)
from .render import LetterURLFetcher, check_subsetter
from .render import write_pdf as _write_pdf  # looked up at each call: tests without WeasyPrint replace it
from .render import write_pdf_bare as render_html_bare
from .templates import LETTERS_DIR, LOCALES, labels, render_html, template_version

__all__ = [
    "DRAFT_NUMBER",
    "FONTS_DIR",
    "KINDS",
    "LETTERS_DIR",
    "LETTER_FACES",
    "LETTER_FONT",
    "LETTER_SANS_FONT",
    "LOCALES",
    "MODELS",
    "AppealDecision",
    "AppealRecord",
    "CaseSummary",
    "Determination",
    "LetterDataError",
    "LetterError",
    "LetterFace",
    "LetterFontMissing",
    "LetterSubsetterMissing",
    "LetterURLFetcher",
    "LetterURLRefused",
    "RenderedLetter",
    "check_letter_fonts",
    "labels",
    "letter_fonts",
    "letter_html",
    "render_html_bare",
    "render_letter",
    "template_version",
]


@dataclass(frozen=True)
class RenderedLetter:
    """A rendered letter: store ``pdf`` with ``sha256``, ``template``, ``template_version`` and the data."""

    pdf: bytes
    sha256: str
    template: str  # e.g. "letters/determination.html" (relative to templates/)
    template_version: str  # digest of the template files used (kind, base, macros, CSS, labels)
    html: str


def render_letter(kind: str, data: Mapping[str, Any], locale: str = "zh") -> RenderedLetter:
    """Render a letter of ``kind`` from ``data`` to PDF.

    Raises LetterDataError (bad data), LetterFontMissing, LetterSubsetterMissing, LetterURLRefused.
    """
    check_letter_fonts()
    check_subsetter()
    html = letter_html(kind, data, locale)
    pdf = _write_pdf(html)
    return RenderedLetter(
        pdf=pdf,
        sha256=hashlib.sha256(pdf).hexdigest(),
        template=f"letters/{kind}.html",
        template_version=template_version(kind),
        html=html,
    )


def letter_html(kind: str, data: Mapping[str, Any], locale: str = "zh") -> str:
    """Return the HTML of a letter (what render_letter prints); raises LetterDataError."""
    if kind not in KINDS:
        raise LetterDataError(f"unknown letter kind {kind!r}; expected one of {', '.join(KINDS)}")
    if locale not in LOCALES:
        raise LetterDataError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
    return render_html(kind, template_data(kind, data), locale)
