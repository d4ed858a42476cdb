"""What a Chinese document may not contain: the text extracted from the PDF (pdftotext), checked against a
deny-list of internal identifiers, notes and English words."""

from __future__ import annotations

import re
import subprocess

from workflow.domain import rules

# Precedence step ids, verification notes, the product's name, the rule set's internal codes and English words.
DENIED = (*rules.STEPS, "our wording", "unverified", "verified", "official summary", "bank-policy", "Mianze",
          "default", "re-determined", "altered on appeal", "None", "True", "False")
_CODE = re.compile(r"(?<![A-Za-z0-9])(?:[PMN]\d{2}|(?:MK|AC|PL|RV|AP|DS|PO)\d{2})(?![0-9])")
_WORD = re.compile(r"[A-Za-z]{3,}")
# Words of three or more ASCII letters a Chinese document legitimately holds: none but in identifiers of the
# bank's own records (case numbers such as MZ2026-T1-000001 carry two letters at most).
ALLOWED_WORDS: frozenset[str] = frozenset()


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF as pdftotext extracts it (reading order, no layout)."""
    return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode("utf-8")


def problems(text: str) -> list[str]:
    """What in a Chinese document's text is not fit to send: internal identifiers, notes, English words."""
    found = [f"denied text {word!r}" for word in DENIED if word.lower() in text.lower()]
    found += [f"rule-set code {m}" for m in sorted(set(_CODE.findall(text)))]
    found += [f"English word {m!r}" for m in sorted(set(_WORD.findall(text))) if m not in ALLOWED_WORDS]
    return found
