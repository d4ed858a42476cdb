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
- ``sign``: the PAdES signature of a rendered letter, and the demonstration certificate;
- ``fonts``: the installed CJK fonts checked, and the letter faces derived from them by fontTools;
- ``errors``: ``LetterError`` and its kinds.

Archival form: a letter is a PDF/A-3b file (WeasyPrint's PDF/A variant; the identification is in its XMP
metadata) with the data it was rendered from attached as ``letter-data.json`` (relationship "Data"), and,
given a ``LetterSigner``, signed (PAdES baseline, pyHanko: ``sign``) with the bank's certificate.

Reproducibility: the PDF's creation and modification dates come from ``issued_at`` and WeasyPrint writes no
random identifier, so the same data, locale, templates, letter faces and WeasyPrint version give the same
bytes (checked by the tests, also across processes). A change to any of those changes the bytes, which is
why the SHA-256 stored with a letter is that of the stored bytes, never of a re-rendering. A signed letter
also carries its signing time and so differs at every signing: its SHA-256 is that of the signed bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from .render import DATA_FILE, PDF_VARIANT, LetterURLFetcher, check_subsetter
from .render import write_pdf as _write_pdf  # looked up at each call: tests without WeasyPrint replace it
from .render import write_pdf_bare as render_html_bare
from .sign import LetterSigner, LetterSigningError, create_demo_certificate
from .sign import sign_pdf as _sign_pdf  # looked up at each call: tests without WeasyPrint replace it
from .templates import LETTERS_DIR, LOCALES, labels, render_html, template_version

__all__ = [
    "DATA_FILE",
    "DRAFT_NUMBER",
    "FONTS_DIR",
    "KINDS",
    "LETTERS_DIR",
    "LETTER_FACES",
    "LETTER_FONT",
    "LETTER_SANS_FONT",
    "LOCALES",
    "MODELS",
    "PDF_VARIANT",
    "AppealDecision",
    "AppealRecord",
    "CaseSummary",
    "Determination",
    "LetterDataError",
    "LetterError",
    "LetterFace",
    "LetterFontMissing",
    "LetterSigner",
    "LetterSigningError",
    "LetterSubsetterMissing",
    "LetterURLFetcher",
    "LetterURLRefused",
    "RenderedLetter",
    "check_letter_fonts",
    "create_demo_certificate",
    "data_json",
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


def render_letter(kind: str, data: Mapping[str, Any], locale: str = "zh",
                  signer: LetterSigner | None = None) -> RenderedLetter:
    """Render a letter of ``kind`` from ``data`` to a PDF/A-3b file carrying ``data`` as an attached JSON
    file (``letter-data.json``), signed with ``signer``'s certificate when one is given; ``sha256`` is that of
    the final (signed) bytes.

    Raises LetterDataError (bad data), LetterFontMissing, LetterSubsetterMissing, LetterURLRefused,
    LetterSigningError.
    """
    check_letter_fonts()
    check_subsetter()
    html = letter_html(kind, data, locale)
    issued = date.fromisoformat(str(data["issued_at"])[:10])  # validated by letter_html
    pdf = _write_pdf(html, data_json(data), datetime(issued.year, issued.month, issued.day, tzinfo=UTC))
    if signer is not None:
        pdf = _sign_pdf(pdf, signer)
    return RenderedLetter(
        pdf=pdf,
        sha256=hashlib.sha256(pdf).hexdigest(),
        template=f"letters/{kind}.html",
        template_version=template_version(kind),
        html=html,
    )


def data_json(data: Mapping[str, Any]) -> bytes:
    """The letter's data as the attached file holds it: JSON, UTF-8, keys sorted (dates and amounts as strings)."""
    return json.dumps(dict(data), ensure_ascii=False, sort_keys=True, indent=1, default=str).encode("utf-8")


def letter_html(kind: str, data: Mapping[str, Any], locale: str = "zh") -> str:
    """Return the HTML of a letter (what render_letter prints); raises LetterDataError."""
    if kind not in KINDS:
        raise LetterDataError(f"unknown letter kind {kind!r}; expected one of {', '.join(KINDS)}")
    if locale not in LOCALES:
        raise LetterDataError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
    return render_html(kind, template_data(kind, data), locale)
