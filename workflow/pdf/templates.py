"""The letter templates (templates/letters/): their Jinja environment, filters, labels and version digest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

LETTERS_DIR = Path(__file__).resolve().parents[2] / "templates" / "letters"
LOCALES = ("zh", "en")


def template_version(kind: str) -> str:
    """Digest (16 hex digits) of every template file a letter of ``kind`` is rendered from."""
    digest = hashlib.sha256()
    for name in (f"{kind}.html", "base.html", "_macros.html", "letter.css", "labels.json"):
        digest.update(name.encode() + b"\0" + (LETTERS_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def render_html(kind: str, d: Mapping[str, Any], locale: str) -> str:
    """The HTML of a letter of ``kind`` from its template data (models.template_data) in ``locale``."""
    labels = _labels()[locale]
    name = d["respondent"]["name"] if "respondent" in d else ""
    title = labels["title"][kind]
    meta = {
        "title": f"{title} {d['doc_number']}",
        "author": d["bank"],
        "subject": labels["subject"][kind].format(name=name, case_no=d.get("case_no") or ""),
        "keywords": ", ".join(x for x in (d["doc_number"], d.get("case_no")) if x),
        "created": d["issued_at"].isoformat(),
        "template_version": template_version(kind),
        "generator": f"letters/{kind}.html {template_version(kind)}",
    }
    template = _jinja().get_template(f"{kind}.html")
    return template.render(kind=kind, d=d, L=labels, locale=locale, meta=meta, t=_translator(labels))


def labels(locale: str = "zh") -> dict[str, Any]:
    """The letters' labels of a locale (labels.json), e.g. for texts a service composes from them."""
    return _labels()[locale]


def _labels() -> dict[str, dict[str, Any]]:
    path = LETTERS_DIR / "labels.json"
    return _load_labels(path, path.stat().st_mtime_ns)  # reloaded when edited, like the templates


@lru_cache(maxsize=2)
def _load_labels(path: Path, mtime_ns: int) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _jinja() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(LETTERS_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fdate=_filter_date, money=_filter_money, pct=_filter_pct, pp=_filter_pp,
                       css_string=css_string)
    return env


def _translator(labels: Mapping[str, Any]):
    """t(key, **values): a label with its placeholders filled by HTML-escaped values."""

    def t(key: str, **values: Any) -> Markup:
        return Markup.escape(labels[key]).format(**values)  # Markup.format escapes the values

    return t


_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")


@jinja2.pass_context
def _filter_date(context, value: Any) -> str:
    if not isinstance(value, dt.date):
        return str(value)  # a period given as text
    if context.get("locale") == "en":
        return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"
    return f"{value.year}年{value.month}月{value.day}日"


def _filter_money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP):,.2f}"


def _filter_pct(value: Decimal) -> str:
    return f"{(value * 100).quantize(Decimal('0.01'), ROUND_HALF_UP)}%"


def _filter_pp(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP)}"


def css_string(value: str) -> Markup:
    """A CSS string literal, safe inside a <style> element."""
    escaped = "".join(c if c.isalnum() or c in " -_.,:;!?()" or ord(c) > 127 else f"\\{ord(c):x} " for c in value)
    return Markup(f'"{escaped}"')
