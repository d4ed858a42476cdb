"""The WeasyPrint adapter: letters rendered from plain dicts to PDF bytes.

Pure: no Flask, no database. A service builds a plain dict (see the ``*Data`` TypedDicts below), calls
``render_letter(kind, data, locale)`` and stores the returned bytes with the template name, the template
version, its parameters and the SHA-256; a stored letter is never re-rendered in place.

Boundaries kept here:

- fonts: before rendering, fontconfig must report the configured CJK families (``MIANZE_LETTER_FONT``,
  ``MIANZE_LETTER_SANS_FONT``) with a regular and a real bold face covering Chinese, or
  ``LetterFontMissing`` is raised (otherwise WeasyPrint would quietly draw empty boxes);
- letter faces: the letters do not print with the installed faces directly but with "letter faces" derived
  from them once per machine (by scripts/setup, or by the first rendering) into ``templates/letters/fonts/``:
  the same outlines and metrics, restricted to GB 2312, ASCII, Latin-1, the punctuation blocks and every
  character of the templates (7,842 glyphs instead of 65,535), numbered by frequency. WeasyPrint subsets the
  embedded fonts keeping glyph ids, so its work and the PDF's size follow the highest glyph id used: a
  two-page letter takes less than half the CPU time (a third of the instructions) and a fifth of the bytes.
  Any other character (a rare name) falls back to the installed family, which the stylesheet names next,
  and that face is then embedded as well;
- subsetting: HarfBuzz-Subset must be loaded (without it WeasyPrint falls back to fontTools, 25–40x slower
  for CJK fonts, with only a log message), or ``LetterSubsetterMissing`` is raised; the letter faces are
  derived with the same library;
- resources: the URL fetcher serves only files under ``templates/letters/``; any other URL (http, data:,
  other paths) stops the rendering with ``LetterURLRefused``. Letter data is HTML-escaped by Jinja.

Reproducibility: the PDF's creation and modification dates come from ``issued_at`` and WeasyPrint writes no
random identifier, so the same data, locale, templates, fonts and WeasyPrint version give the same bytes
(checked by the tests, also across processes). A change to any of those changes the bytes, which is why the
SHA-256 stored with a letter is that of the stored bytes, never of a re-rendering.

Concurrency: one ``FontConfiguration`` and the parsed stylesheet (letter.css with the letter faces) are
shared per process, and renders in one process are serialised by a lock (WeasyPrint's Pango/fontconfig
objects are not thread-safe and cffi releases the GIL). For throughput, render in several processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import mimetypes
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jinja2
import weasyprint
from markupsafe import Markup
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

__all__ = [
    "KINDS",
    "LETTERS_DIR",
    "LetterError",
    "LetterDataError",
    "LetterFontMissing",
    "LetterSubsetterMissing",
    "LetterURLRefused",
    "LetterURLFetcher",
    "RenderedLetter",
    "check_letter_fonts",
    "letter_html",
    "render_html_bare",
    "render_letter",
]

LETTERS_DIR = Path(__file__).resolve().parents[2] / "templates" / "letters"
KINDS = ("determination", "appeal_record", "appeal_decision", "case_summary")
LOCALES = ("zh", "en")

#: Installed font families the letter faces are derived from (regular and bold); overridable with
#: MIANZE_LETTER_FONT / MIANZE_LETTER_SANS_FONT.
LETTER_FONT = "Noto Serif CJK SC"
LETTER_SANS_FONT = "Noto Sans CJK SC"
#: Where the letter faces are derived to (not in Git; the URL fetcher serves them).
FONTS_DIR = LETTERS_DIR / "fonts"

OUTCOMES = ("exempt", "reduced", "liable")  # in order of severity
LIABILITY_KINDS = ("compliance", "diligence", "management")
STAGES = ("marketing", "acceptance", "pre_loan", "review", "approval", "disbursement", "post_loan")
DECISIONS = ("upheld", "altered")


# ---------------------------------------------------------------------------------------------------------
# Errors


class LetterError(Exception):
    """A letter could not be rendered."""


class LetterDataError(LetterError, ValueError):
    """The data dict of a letter is incomplete or inconsistent (the message lists every problem)."""


class LetterFontMissing(LetterError):
    """The CJK font the letter templates name is not installed (the letter would show empty boxes)."""


class LetterSubsetterMissing(LetterError):
    """WeasyPrint could not load HarfBuzz-Subset (CJK letters would take seconds each)."""


class LetterURLRefused(LetterError, ValueError):
    """A letter referred to a resource outside templates/letters/ (or to the network)."""


# ---------------------------------------------------------------------------------------------------------
# The data each kind expects (documentation and type checking; validated at run time by _normalise).

Outcome = Literal["exempt", "reduced", "liable"]
LiabilityKind = Literal["compliance", "diligence", "management"]
DateLike = dt.date | str  # a date, a datetime (its date is used) or an ISO "YYYY-MM-DD" string
Amount = Decimal | int | str  # yuan; a float is refused (money is never a float)
Ratio = Decimal | str  # a fraction: "0.0501" is shown as 5.01 %


class RespondentData(TypedDict):
    name: str
    employee_no: str
    branch: str  # the respondent's branch


class LoanData(TypedDict):
    loan_no: str
    enterprise: str
    amount: Amount
    balance: Amount


class ReasonData(TypedDict):
    text: str
    code: NotRequired[str]  # e.g. "P02", "N05", "PL03" (fired rule); optional for free-text reasons
    source: NotRequired[str]  # e.g. "金规〔2024〕11号"


class ToleranceData(TypedDict):
    """The frozen tolerance figure of the determination."""

    branch: str
    period: DateLike  # period end date (or a text such as "2025年度")
    sme_ratio: Ratio | None  # None: the branch has no inclusive SME loans
    all_ratio: Ratio | None  # None: the branch has no loans
    gap_pp: Decimal | str | None  # SME ratio minus all ratio, in percentage points
    within: bool


class DeviationData(TypedDict):
    recommended: Outcome
    decided: Outcome
    reason: str


class AppealRightData(TypedDict):
    deadline: DateLike
    body: str  # the appeal committee of the level above, e.g. "××银行总行尽职免责申诉复核委员会"
    channel: NotRequired[str]  # optional: how to file, e.g. "Mianze 申诉平台或书面提交至总行授信管理部"


class CommitteeData(TypedDict):
    name: str
    decided_at: NotRequired[DateLike]  # required except in an appeal record


class _CommonData(TypedDict):
    bank: str  # the bank's name, PDF author, running header
    branch: str  # the issuing branch, running header
    doc_number: str  # 文号, e.g. "济农商免认〔2026〕12号"
    issued_at: DateLike  # date of issue: signature date and PDF creation date
    committee: CommitteeData  # the deciding (or, for an appeal record, receiving) committee
    version: NotRequired[int]  # 1 unless a correction
    supersedes: NotRequired[str | None]  # doc_number of the letter this one corrects
    correction: NotRequired[str | None]  # the reason for the correction, shown with ``supersedes``
    case_no: NotRequired[str]


class DeterminationData(_CommonData):
    """认定书: one per respondent."""

    respondent: RespondentData
    loans: list[LoanData]
    stages: list[str]  # stage codes: marketing, acceptance, pre_loan, review, approval, disbursement, post_loan
    outcome: Outcome
    liability_kind: LiabilityKind
    sanctions: list[str]  # sanctions removed (exempt), reduced (reduced) or referred (liable)
    reasons: list[ReasonData]  # the fired rules, in precedence order
    tolerance: ToleranceData | None
    deviation: DeviationData | None  # the committee departed from the recommendation
    appeal: AppealRightData


class AppealRecordData(_CommonData):
    """申诉记录: an appeal as received (committee = the appeal committee that received it)."""

    respondent: RespondentData
    appealed_doc_number: str
    appealed_outcome: Outcome
    filed_at: DateLike
    grounds: str | list[str]  # a text (paragraphs split on line breaks) or a list of paragraphs
    evidence: list[str]


class AppealDecisionData(_CommonData):
    """申诉复核决定书: the appeal committee's decision; it can only confirm or improve the outcome."""

    respondent: RespondentData
    appealed_doc_number: str
    appealed_outcome: Outcome
    decision: Literal["upheld", "altered"]
    new_outcome: NotRequired[Outcome]  # required when altered; defaults to appealed_outcome when upheld
    liability_kind: NotRequired[LiabilityKind | None]
    filed_at: NotRequired[DateLike | None]
    reasons: list[ReasonData]
    reviewers: list[str]


class SummaryRespondentData(RespondentData):
    stages: list[str]
    outcome: Outcome
    liability_kind: NotRequired[LiabilityKind | None]
    doc_number: NotRequired[str | None]


class EventData(TypedDict):
    at: DateLike
    text: str


class CaseSummaryData(_CommonData):
    """案件认定情况汇总."""

    case_no: str
    enterprise: str
    loans: list[LoanData]
    respondents: list[SummaryRespondentData]
    tolerance: NotRequired[ToleranceData | None]
    events: NotRequired[list[EventData]]


# ---------------------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class RenderedLetter:
    """A rendered letter: store ``pdf`` with ``sha256``, ``template``, ``template_version`` and the data."""

    pdf: bytes
    sha256: str
    template: str  # e.g. "letters/determination.html" (relative to templates/)
    template_version: str  # digest of the template files used (kind, base, macros, CSS, labels)
    html: str


# ---------------------------------------------------------------------------------------------------------
# Public API


def render_letter(kind: str, data: Mapping[str, Any], locale: str = "zh") -> RenderedLetter:
    """Render a letter of ``kind`` from ``data`` to PDF.

    Raises LetterDataError (bad data), LetterFontMissing, LetterSubsetterMissing, LetterURLRefused.
    """
    check_letter_fonts()
    _check_subsetter()
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
    d = _normalise(kind, data)
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
    }
    template = _jinja().get_template(f"{kind}.html")
    return template.render(
        kind=kind, d=d, L=labels, locale=locale, meta=meta, t=_translator(labels),
    )


def render_html_bare(html: str) -> bytes:
    """Render HTML the plain WeasyPrint way, for benchmarks: default URL fetcher, a fresh font configuration
    and the letter stylesheet parsed anew (``render_letter`` parses it once per process)."""
    font_config = FontConfiguration()
    sheet = weasyprint.CSS(string=_stylesheet_text(check_letter_fonts()), base_url=_base_url(),
                           font_config=font_config)
    return weasyprint.HTML(string=html, base_url=_base_url()).write_pdf(stylesheets=[sheet],
                                                                          font_config=font_config)


def letter_fonts() -> tuple[str, str]:
    """Return the installed (serif, sans) font families the letter faces come from, after the environment
    overrides."""
    return (
        os.environ.get("MIANZE_LETTER_FONT") or LETTER_FONT,
        os.environ.get("MIANZE_LETTER_SANS_FONT") or LETTER_SANS_FONT,
    )


@dataclass(frozen=True)
class LetterFace:
    """A face the letters print with, derived from an installed face into FONTS_DIR (see _derive_face)."""

    role: str  # "serif" (body) or "sans" (headings)
    family: str  # the installed family, e.g. "Noto Serif CJK SC": the fallback for characters not derived
    weight: int  # CSS weight, 400 or 700
    source: str  # the installed font file (for Noto CJK a collection of faces) ...
    index: int  # ... and the face's index in it
    path: Path  # the derived font

    @property
    def css_family(self) -> str:
        """The family name of the derived face (in the font itself, the stylesheet and the PDF)."""
        return f"{self.family} Letters"


#: The faces the letters use: (role, CSS weight). The headings are bold; a sans regular face is not used.
LETTER_FACES = (("serif", 400), ("serif", 700), ("sans", 700))


def check_letter_fonts() -> tuple[LetterFace, ...]:
    """Check that the letter fonts are installed and return their letter faces, deriving any missing one
    (cached per process); raises LetterFontMissing. scripts/setup calls it once."""
    return _letter_faces(*letter_fonts())


def template_version(kind: str) -> str:
    """Digest (16 hex digits) of every template file a letter of ``kind`` is rendered from."""
    digest = hashlib.sha256()
    for name in (f"{kind}.html", "base.html", "_macros.html", "letter.css", "labels.json"):
        digest.update(name.encode() + b"\0" + (LETTERS_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Fonts and subsetting


_FC_ESCAPE = re.compile(r"([\\\-:,=])")
_FONT_HINT = ("Run scripts/setup, which installs the Debian package fonts-noto-cjk, or set MIANZE_LETTER_FONT / "
              "MIANZE_LETTER_SANS_FONT to an installed CJK font with a bold face.")


@dataclass(frozen=True)
class _InstalledFace:
    weight: int  # fontconfig weight: regular 80, medium 100, bold 200
    file: str
    index: int


@lru_cache(maxsize=16)
def _check_font(family: str) -> dict[int, _InstalledFace]:
    """Ask fontconfig for ``family`` with Chinese coverage; return its regular and bold faces by CSS weight."""
    escaped = _FC_ESCAPE.sub(r"\\\1", family)
    pattern = f":family={escaped}:lang=zh-cn"
    try:
        out = subprocess.run(
            ["fc-list", "--format", "%{weight}\\t%{index}\\t%{file}\\n", pattern],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise LetterFontMissing(
            f'cannot check the letter font "{family}" with fc-list ({exc}). {_FONT_HINT}') from exc
    faces: list[_InstalledFace] = []
    for line in out.splitlines():
        weights, index, file = (line.split("\t", 2) + ["", ""])[:3]
        if not file:
            continue
        for w in re.findall(r"\d+(?:\.\d+)?", weights):
            faces.append(_InstalledFace(int(float(w)), file, int(index or 0)))
    # The face closest to fontconfig's regular (80) and bold (200); ties broken by file and index.
    regular = min((f for f in faces if f.weight < 150), key=lambda f: (abs(f.weight - 80), f.file, f.index),
                  default=None)
    bold = min((f for f in faces if f.weight >= 180), key=lambda f: (abs(f.weight - 200), f.file, f.index),
               default=None)
    if regular is None or bold is None:
        found = "no face" if not faces else ("no bold face" if bold is None else "no regular face")
        raise LetterFontMissing(
            f'the letter font "{family}" is not installed with Chinese coverage ({found} found); '
            f"letters would print empty boxes. {_FONT_HINT}"
        )
    return {400: regular, 700: bold}


@lru_cache(maxsize=4)
def _letter_faces(serif: str, sans: str) -> tuple[LetterFace, ...]:
    families = {"serif": serif, "sans": sans}
    installed = {family: _check_font(family) for family in families.values()}  # both checked before deriving
    faces = []
    for role, weight in LETTER_FACES:
        family = families[role]
        face = installed[family][weight]
        path = _face_path(family, weight, face)
        if not path.is_file():
            _derive_face(face, family, weight, path)
        faces.append(LetterFace(role, family, weight, face.file, face.index, path))
    return tuple(faces)


#: Changes whenever _derive_face would write different bytes for the same source.
_DERIVE_VERSION = 2
#: OpenType layout features kept in the letter faces: those HarfBuzz applies to horizontal text by default.
#: The vertical, width and ruby features are left out: the letters do not use them.
_KEEP_FEATURES = (b"ccmp", b"locl", b"liga", b"clig", b"calt", b"rlig", b"rclt", b"rvrn", b"kern", b"mark",
                  b"mkmk", b"curs", b"dist", b"frac", b"numr", b"dnom")
#: Language systems kept besides each script's default: simplified Chinese (html lang="zh-CN"; the English
#: letters use the defaults). Noto CJK's "locl" gives Chinese text its own digits and punctuation; the
#: Japanese, Korean and traditional ones would bring 5,500 more glyphs.
_KEEP_LANGSYS = ("ZHS ",)
#: Tables left out of the letter faces: vertical metrics (the letters are set horizontally).
_DROP_TABLES = (b"VORG", b"vhea", b"vmtx", b"DSIG")


def _face_path(family: str, weight: int, face: _InstalledFace) -> Path:
    """Where the letter face derived from ``face`` lives: its name changes with anything its bytes depend on."""
    import fontTools

    stat = os.stat(face.file)
    tiers = hashlib.sha256(repr([sorted(tier) for tier in _codepoint_tiers()]).encode()).hexdigest()
    key = json.dumps([_DERIVE_VERSION, family, weight, face.file, face.index, stat.st_size, stat.st_mtime_ns,
                      tiers, _harfbuzz_version(), fontTools.version])
    slug = re.sub(r"[^A-Za-z0-9]+", "-", family).strip("-") or "font"
    return FONTS_DIR / f"{slug}-{weight}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.otf"


@lru_cache(maxsize=1)
def _codepoint_tiers() -> tuple[frozenset[int], ...]:
    """The characters of the letter faces, in the order their glyphs are numbered (see _order_glyphs):
    1. the letters' own text: ASCII, Latin-1, general and CJK punctuation, full-width forms and every character
       of the template files;
    2. the 3,755 most frequent hanzi (GB 2312 level 1);
    3. the rest of GB 2312 (its 3,008 level-2 hanzi and 682 symbols)."""
    own = {*range(0x20, 0x7F), *range(0xA0, 0x100), *range(0x2000, 0x2070), *range(0x3000, 0x3040),
           *range(0xFF01, 0xFFEF)}
    for path in sorted(LETTERS_DIR.glob("*.*")):
        if path.suffix in (".html", ".json", ".css"):
            own.update(ord(c) for c in path.read_text(encoding="utf-8") if c >= " ")
    level1, rest = set(), set()
    for lead in range(0xA1, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                char = bytes((lead, trail)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            (level1 if 0xB0 <= lead <= 0xD7 else rest).add(ord(char))
    return frozenset(own), frozenset(level1 - own), frozenset(rest - own - level1)


def _letter_codepoints() -> tuple[int, ...]:
    """The characters of the letter faces (their glyphs and what the kept layout features reach from them)."""
    return tuple(sorted(frozenset().union(*_codepoint_tiers())))


def _derive_face(face: _InstalledFace, family: str, weight: int, path: Path) -> None:
    """Write the letter face of an installed face to ``path``, deterministically. fontTools renames the family
    (so that fontconfig never takes the derived face for the installed one) and keeps only the language
    systems the letters use; HarfBuzz-Subset then keeps the outlines, metrics, hints and layout of the letter
    characters; last, the glyphs are numbered by frequency (_order_glyphs). Stale letter faces of the same
    family and weight are removed."""
    try:
        prepared = _prepare_face(face.file, face.index, f"{family} Letters", bold=weight >= 600)
        data = _order_glyphs(_subset_face(prepared, _letter_codepoints()))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: a concurrent process derives the same bytes
        for stale in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.otf"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - fontTools and HarfBuzz raise many kinds; all mean "no letter face"
        raise LetterFontMissing(
            f'cannot derive the letter face of "{family}" ({weight}) from {face.file} into {path.parent} '
            f"({type(exc).__name__}: {exc}). Run scripts/setup, and make sure {path.parent} is writable."
        ) from exc


def _prepare_face(file: str, index: int, family: str, bold: bool) -> bytes:
    """Face ``index`` of ``file`` as a single font, renamed to ``family`` (name ids 1-4, 6; the typographic
    names 16, 17 removed) and with the language systems of _KEEP_LANGSYS only. The other tables are copied as
    they are, and the head table's dates are kept."""
    from fontTools.ttLib import TTFont

    font = TTFont(file, fontNumber=index, lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    style = "Bold" if bold else "Regular"
    postscript = re.sub(r"[^A-Za-z0-9]", "", family) + "-" + style
    table = font["name"]
    table.names = [record for record in table.names if record.nameID not in (1, 2, 3, 4, 6, 16, 17)]
    for name_id, value in ((1, family), (2, style), (3, postscript), (4, f"{family} {style}"), (6, postscript)):
        table.setName(value, name_id, 3, 1, 0x409)
    for tag in ("GSUB", "GPOS"):
        if tag in font and font[tag].table.ScriptList:
            for record in font[tag].table.ScriptList.ScriptRecord:
                kept = [r for r in record.Script.LangSysRecord if r.LangSysTag in _KEEP_LANGSYS]
                record.Script.LangSysRecord = kept
                record.Script.LangSysCount = len(kept)
    out = io.BytesIO()
    font.save(out, reorderTables=False)
    font.close()
    return out.getvalue()


_HB_CDEF = """
typedef struct hb_blob_t hb_blob_t;
typedef struct hb_face_t hb_face_t;
typedef struct hb_set_t hb_set_t;
typedef uint32_t hb_codepoint_t;
typedef uint32_t hb_tag_t;
const char * hb_version_string (void);
hb_tag_t hb_tag_from_string (const char *str, int len);
hb_blob_t * hb_blob_create (const char *data, unsigned int length, int mode, void *user_data,
                             void *destroy);
void hb_blob_destroy (hb_blob_t *blob);
const char * hb_blob_get_data (hb_blob_t *blob, unsigned int *length);
hb_face_t * hb_face_create (hb_blob_t *blob, unsigned int index);
void hb_face_destroy (hb_face_t *face);
hb_blob_t * hb_face_reference_blob (hb_face_t *face);
void hb_set_clear (hb_set_t *set);
void hb_set_add_range (hb_set_t *set, hb_codepoint_t first, hb_codepoint_t last);
void hb_set_add_sorted_array (hb_set_t *set, const hb_codepoint_t *sorted_codepoints, unsigned int count);
typedef struct hb_subset_input_t hb_subset_input_t;
hb_subset_input_t * hb_subset_input_create_or_fail (void);
void hb_subset_input_destroy (hb_subset_input_t *input);
hb_set_t * hb_subset_input_set (hb_subset_input_t *input, int set_type);
hb_face_t * hb_subset_or_fail (hb_face_t *source, const hb_subset_input_t *input);
typedef struct hb_map_t hb_map_t;
typedef struct hb_subset_plan_t hb_subset_plan_t;
unsigned int hb_face_get_glyph_count (const hb_face_t *face);
int hb_map_has (const hb_map_t *map, hb_codepoint_t key);
hb_subset_plan_t * hb_subset_plan_create_or_fail (hb_face_t *face, const hb_subset_input_t *input);
const hb_map_t * hb_subset_plan_old_to_new_glyph_mapping (const hb_subset_plan_t *plan);
void hb_subset_plan_destroy (hb_subset_plan_t *plan);
"""
# hb_subset_sets_t
_HB_UNICODE, _HB_DROP_TABLE_TAG, _HB_NAME_ID, _HB_LAYOUT_FEATURE_TAG = 1, 3, 4, 6


@lru_cache(maxsize=1)
def _harfbuzz():
    """(ffi, harfbuzz, harfbuzz-subset): the libraries WeasyPrint uses, with the calls deriving fonts needs."""
    from cffi import FFI

    def dlopen(*names: str):
        for name in names:
            try:
                return ffi.dlopen(name)
            except OSError:
                continue
        raise LetterSubsetterMissing(f"cannot load {names[0]}; run scripts/setup (libharfbuzz-subset0)")

    ffi = FFI()
    ffi.cdef(_HB_CDEF)
    harfbuzz = dlopen("libharfbuzz.so.0", "libharfbuzz-0", "harfbuzz", "libharfbuzz.0.dylib", "libharfbuzz-0.dll")
    subset = dlopen("libharfbuzz-subset.so.0", "libharfbuzz-subset-0", "harfbuzz-subset",
                    "libharfbuzz-subset.0.dylib", "libharfbuzz-subset-0.dll")
    return ffi, harfbuzz, subset


def _harfbuzz_version() -> str:
    ffi, harfbuzz, _ = _harfbuzz()
    return ffi.string(harfbuzz.hb_version_string()).decode()


class _HarfBuzzFace:
    """A HarfBuzz face of a font in memory, with subset inputs for the letter faces (a context manager)."""

    def __init__(self, font: bytes):
        self.ffi, self.hb, self.hb_subset = _harfbuzz()
        self._buffer = self.ffi.from_buffer(font)  # the blob does not copy it: kept alive with the face
        blob = self.hb.hb_blob_create(self._buffer, len(font), 1, self.ffi.NULL, self.ffi.NULL)  # read-only
        self.face = self.hb.hb_face_create(blob, 0)
        self.hb.hb_blob_destroy(blob)  # the face holds a reference
        self._inputs: list[Any] = []

    def __enter__(self) -> _HarfBuzzFace:
        return self

    def __exit__(self, *exc: object) -> None:
        for spec in self._inputs:
            self.hb_subset.hb_subset_input_destroy(spec)
        self.hb.hb_face_destroy(self.face)

    def _add(self, hb_set, values) -> None:
        values = sorted(values)
        self.hb.hb_set_add_sorted_array(hb_set, self.ffi.new("hb_codepoint_t[]", values), len(values))

    def subset_input(self, codepoints) -> Any:
        """Keep ``codepoints`` with the kept layout features and name ids; drop _DROP_TABLES."""
        hb, hb_subset = self.hb, self.hb_subset
        spec = hb_subset.hb_subset_input_create_or_fail()
        if spec == self.ffi.NULL:
            raise LetterError("HarfBuzz cannot create a subset input")
        self._inputs.append(spec)
        self._add(hb_subset.hb_subset_input_set(spec, _HB_UNICODE), codepoints)
        self._add(hb_subset.hb_subset_input_set(spec, _HB_DROP_TABLE_TAG),
                  (hb.hb_tag_from_string(tag, -1) for tag in _DROP_TABLES))
        features = hb_subset.hb_subset_input_set(spec, _HB_LAYOUT_FEATURE_TAG)
        hb.hb_set_clear(features)
        self._add(features, (hb.hb_tag_from_string(tag, -1) for tag in _KEEP_FEATURES))
        hb.hb_set_add_range(hb_subset.hb_subset_input_set(spec, _HB_NAME_ID), 0, 14)  # up to the licence URL
        return spec

    def subset(self, codepoints) -> bytes:
        """The font restricted to ``codepoints`` (and the glyphs the kept layout features reach)."""
        ffi, hb = self.ffi, self.hb
        derived = self.hb_subset.hb_subset_or_fail(self.face, self.subset_input(codepoints))
        if derived == ffi.NULL:
            raise LetterError("HarfBuzz cannot subset the face")
        try:
            blob = hb.hb_face_reference_blob(derived)
            length = ffi.new("unsigned int *")
            data = hb.hb_blob_get_data(blob, length)
            result = ffi.unpack(data, length[0]) if data != ffi.NULL else b""
            hb.hb_blob_destroy(blob)
        finally:
            hb.hb_face_destroy(derived)
        if not result:
            raise LetterError("HarfBuzz returned an empty subset")
        return result

    def closure(self, codepoints) -> set[int]:
        """The glyph ids a subset to ``codepoints`` keeps (their glyphs and what layout features reach)."""
        plan = self.hb_subset.hb_subset_plan_create_or_fail(self.face, self.subset_input(codepoints))
        if plan == self.ffi.NULL:
            raise LetterError("HarfBuzz cannot plan a subset")
        try:
            mapping = self.hb_subset.hb_subset_plan_old_to_new_glyph_mapping(plan)
            count = self.hb.hb_face_get_glyph_count(self.face)
            return {gid for gid in range(count) if self.hb.hb_map_has(mapping, gid)}
        finally:
            self.hb_subset.hb_subset_plan_destroy(plan)


def _subset_face(font: bytes, codepoints: tuple[int, ...]) -> bytes:
    """A font restricted to ``codepoints`` (and the glyphs the kept layout features reach), by HarfBuzz."""
    with _HarfBuzzFace(font) as face:
        return face.subset(codepoints)


def _order_glyphs(font: bytes) -> bytes:
    """Number the glyphs of a letter face by frequency: first those the letters' own text reaches, then the
    most frequent hanzi, then the rest (each group in its former order; see _codepoint_tiers). WeasyPrint keeps
    glyph ids when it subsets, so its work follows the highest id a letter uses: about 4,300 instead of 7,800
    for the body face, a few hundred for the bold faces. A CID-keyed CFF font gets CID = glyph id again, as in
    Noto CJK (a PDF viewer maps the glyph ids WeasyPrint writes through the CFF charset)."""
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.reorderGlyphs import reorderGlyphs

    order: list[int] = []
    with _HarfBuzzFace(font) as face:
        seen: set[int] = set()
        wanted: set[int] = set()
        for tier in _codepoint_tiers():
            wanted |= tier
            reached = face.closure(wanted)
            order += sorted(reached - seen)
            seen |= reached
        order += [gid for gid in range(face.hb.hb_face_get_glyph_count(face.face)) if gid not in seen]
    if order[0] != 0:
        raise LetterError("the letter face lost its .notdef glyph")
    ttfont = TTFont(io.BytesIO(font), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    cff = ttfont["CFF "].cff.topDictIndex[0] if "CFF " in ttfont else None
    cid_keyed = cff is not None and "ROS" in cff.rawDict
    if cid_keyed:
        # Name each glyph after its new id before the other tables are read: "cidNNNNN" is how fontTools
        # writes the CID of a glyph into the charset.
        position = {gid: new for new, gid in enumerate(order)}
        names = [".notdef"] + [f"cid{position[gid]:05d}" for gid in range(1, len(order))]
        ttfont.setGlyphOrder(names)
        cff.charset = names
        cff.CharStrings.charStrings = {name: gid for gid, name in enumerate(names)}
        fd_select = list(cff.FDSelect.gidArray)  # by former glyph id
    old_names = ttfont.getGlyphOrder()
    reorderGlyphs(ttfont, [old_names[gid] for gid in order])
    if cid_keyed:
        cff.FDSelect.gidArray = [fd_select[gid] for gid in order]  # reorderGlyphs leaves FDSelect as it was
    out = io.BytesIO()
    ttfont.save(out, reorderTables=False)
    return out.getvalue()


@lru_cache(maxsize=1)
def _check_subsetter() -> None:
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    if harfbuzz_subset is None or not harfbuzz.hb_version_atleast(4, 1, 0):
        raise LetterSubsetterMissing(
            "WeasyPrint cannot load HarfBuzz-Subset >= 4.1 (libharfbuzz-subset0); it would subset the CJK "
            "fonts with fontTools, 25-40x slower. Run scripts/setup, which installs libharfbuzz-subset0."
        )


@lru_cache(maxsize=1)
def _font_config() -> FontConfiguration:
    return FontConfiguration()


def _stylesheet_text(faces: tuple[LetterFace, ...]) -> str:
    """letter.css followed by the letter faces (@font-face) and the families naming them, each followed by
    its installed family for the characters the letter faces lack."""
    rules = [(LETTERS_DIR / "letter.css").read_text(encoding="utf-8"), "/* Letter faces (workflow/pdf.py) */"]
    for face in faces:
        url = face.path.relative_to(LETTERS_DIR).as_posix()  # letters, digits, "-", "." and "/" (_face_path)
        rules.append(f"@font-face {{ font-family: {_filter_css_string(face.css_family)}; "
                     f'src: url("{url}"); font-weight: {face.weight}; font-style: normal; }}')
    selectors = {"serif": "html", "sans": "h2, .seal-block .org, thead th"}
    generic = {"serif": "serif", "sans": "sans-serif"}
    for role in dict.fromkeys(face.role for face in faces):
        face = next(f for f in faces if f.role == role)
        rules.append(f"{selectors[role]} {{ font-family: {_filter_css_string(face.css_family)}, "
                     f"{_filter_css_string(face.family)}, {generic[role]}; }}")
    return "\n".join(rules) + "\n"


_STYLESHEETS: dict[tuple[Any, ...], weasyprint.CSS] = {}


def _stylesheet() -> weasyprint.CSS:
    """The parsed stylesheet of the letters, bound to the process's font configuration (call it under the
    render lock); parsed again when letter.css is edited."""
    faces = check_letter_fonts()
    key = ((LETTERS_DIR / "letter.css").stat().st_mtime_ns, faces)
    sheet = _STYLESHEETS.get(key)
    if sheet is None:
        sheet = weasyprint.CSS(string=_stylesheet_text(faces), base_url=_base_url(),
                               url_fetcher=LetterURLFetcher(), font_config=_font_config())
        _STYLESHEETS.clear()
        _STYLESHEETS[key] = sheet
    return sheet


# ---------------------------------------------------------------------------------------------------------
# Rendering


_RENDER_LOCK = threading.Lock()


def _base_url() -> str:
    return LETTERS_DIR.as_uri() + "/"


def _write_pdf(html: str) -> bytes:
    try:
        with _RENDER_LOCK:
            sheet = _stylesheet()
            document = weasyprint.HTML(string=html, base_url=_base_url(), url_fetcher=LetterURLFetcher())
            return document.write_pdf(stylesheets=[sheet], font_config=_font_config())
    except FatalURLFetchingError as exc:  # a BaseException: turn it into an ordinary error
        cause = exc.__cause__
        if isinstance(cause, LetterURLRefused):
            raise LetterURLRefused(str(cause)) from cause
        raise LetterURLRefused(f"{exc}: {cause}") from cause


class LetterURLFetcher(URLFetcher):
    """WeasyPrint URL fetcher serving files under templates/letters/ only; anything else (http, data:,
    other paths) raises LetterURLRefused. Never touches the network."""

    def __init__(self, root: Path = LETTERS_DIR):
        # fail_on_errors: a refused or missing resource stops the rendering instead of a logged warning.
        super().__init__(allowed_protocols={"file"}, allow_redirects=False, fail_on_errors=True)
        self.root = root.resolve()

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        """Return the file ``url`` names if it lies under the root; raises LetterURLRefused."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            raise LetterURLRefused(f"letters may only use their own files, not {url[:200]!r}")
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self.root):
            raise LetterURLRefused(f"letters may only use files under {self.root}, not {url[:200]!r}")
        if not path.is_file():
            raise LetterURLRefused(f"no such letter asset: {url[:200]!r}")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if mime.startswith("text/"):
            mime += "; charset=utf-8"
        return URLFetcherResponse(path.as_uri(), body=path.read_bytes(), headers={"Content-Type": mime})


# ---------------------------------------------------------------------------------------------------------
# Templates, labels, filters


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
                       css_string=_filter_css_string)
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


def _filter_css_string(value: str) -> Markup:
    """A CSS string literal, safe inside a <style> element."""
    escaped = "".join(c if c.isalnum() or c in " -_.,:;!?()" or ord(c) > 127 else f"\\{ord(c):x} " for c in value)
    return Markup(f'"{escaped}"')


# ---------------------------------------------------------------------------------------------------------
# Validation and normalisation: the templates get complete dicts of dates, Decimals and label keys.


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def get(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> Any:
        if not isinstance(obj, Mapping):
            self.fail(path, "expected a dict")
            return None
        if key not in obj or obj[key] is None:
            if required:
                self.fail(f"{path}.{key}".lstrip("."), "missing")
            return None
        return obj[key]

    def text(self, obj, key, path="", required=True) -> str | None:
        value = self.get(obj, key, path, required)
        if value is None:
            return None if not required else ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(f"{path}.{key}".lstrip("."), f"expected a non-empty text, got {value!r}")
            return ""
        return value

    def date(self, obj, key, path="", required=True, allow_text=False) -> dt.date | str | None:
        value = self.get(obj, key, path, required)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                if allow_text and value.strip():
                    return value
        self.fail(f"{path}.{key}".lstrip("."), f"expected a date, got {value!r}")
        return None

    def decimal(self, obj, key, path="", required=True) -> Decimal | None:
        value = self.get(obj, key, path, required)
        if value is None:
            return None
        if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
            self.fail(f"{path}.{key}".lstrip("."), f"expected a Decimal, an int or a numeric text, got {value!r}")
            return Decimal(0)
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            self.fail(f"{path}.{key}".lstrip("."), f"not a number: {value!r}")
            return Decimal(0)
        return number

    def choice(self, obj, key, choices, path="", required=True) -> str | None:
        value = self.get(obj, key, path, required)
        if value is None:
            return None
        if value not in choices:
            self.fail(f"{path}.{key}".lstrip("."), f"expected one of {', '.join(choices)}, got {value!r}")
            return choices[0]
        return value

    def items(self, obj, key, path="", required=True, non_empty=False) -> list:
        value = self.get(obj, key, path, required)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.fail(f"{path}.{key}".lstrip("."), "expected a list")
            return []
        if non_empty and not value:
            self.fail(f"{path}.{key}".lstrip("."), "must not be empty")
        return list(value)

    def texts(self, obj, key, path="", required=True, non_empty=False) -> list[str]:
        values = self.items(obj, key, path, required, non_empty)
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v.strip():
                self.fail(f"{path}.{key}[{i}]".lstrip("."), f"expected a non-empty text, got {v!r}")
        return [v for v in values if isinstance(v, str)]

    def stages(self, obj, key, path="") -> list[str]:
        codes = self.texts(obj, key, path, non_empty=True)
        for i, code in enumerate(codes):
            if code not in STAGES:
                self.fail(f"{path}.{key}[{i}]".lstrip("."), f"unknown stage {code!r}; expected one of {', '.join(STAGES)}")
        return [c for c in codes if c in STAGES]


def _normalise(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise LetterDataError(f"letter data must be a dict, got {type(data).__name__}")
    c = _Checker()
    d = _common(c, data, decided_at_required=kind != "appeal_record")
    {"determination": _determination, "appeal_record": _appeal_record,
     "appeal_decision": _appeal_decision, "case_summary": _case_summary}[kind](c, data, d)
    _check_dates(c, d)
    if c.problems:
        raise LetterDataError(f"{kind} letter data: " + "; ".join(c.problems))
    return d


def _check_dates(c: _Checker, d: dict[str, Any]) -> None:
    """Dates must follow the procedure: filed <= decided <= issued <= appeal deadline."""
    issued, decided = d["issued_at"], d["committee"]["decided_at"]
    filed = d.get("filed_at")
    deadline = d.get("appeal", {}).get("deadline")
    if decided and issued < decided:
        c.fail("issued_at", f"{issued} is before the committee's decision ({decided})")
    if filed and decided and decided < filed:
        c.fail("committee.decided_at", f"{decided} is before the appeal was filed ({filed})")
    if filed and not decided and issued < filed:
        c.fail("issued_at", f"{issued} is before the appeal was filed ({filed})")
    if deadline and deadline < issued:
        c.fail("appeal.deadline", f"{deadline} is before the letter is issued ({issued})")


def _common(c: _Checker, data, decided_at_required: bool) -> dict[str, Any]:
    committee = c.get(data, "committee", "") or {}
    version = data.get("version")
    version = 1 if version is None else version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        c.fail("version", f"expected a positive int, got {version!r}")
        version = 1
    supersedes = c.text(data, "supersedes", required=False)
    if supersedes and version < 2:
        c.fail("version", "a letter that supersedes another must have version >= 2")
    if data.get("correction") and not supersedes:
        c.fail("correction", "a correction reason needs the doc number of the letter it supersedes")
    return {
        "bank": c.text(data, "bank"),
        "branch": c.text(data, "branch"),
        "doc_number": c.text(data, "doc_number"),
        "issued_at": c.date(data, "issued_at") or dt.date(1970, 1, 1),
        "committee": {
            "name": c.text(committee, "name", "committee"),
            "decided_at": c.date(committee, "decided_at", "committee", required=decided_at_required),
        },
        "version": version,
        "supersedes": supersedes,
        "correction": c.text(data, "correction", required=False),
        "case_no": c.text(data, "case_no", required=False),
    }


def _respondent(c: _Checker, obj, path: str, with_stages: bool = False) -> dict[str, Any]:
    r = {
        "name": c.text(obj, "name", path),
        "employee_no": c.text(obj, "employee_no", path),
        "branch": c.text(obj, "branch", path),
    }
    if with_stages:
        r["stages"] = c.stages(obj, "stages", path)
    return r


def _loans(c: _Checker, data) -> list[dict[str, Any]]:
    loans = []
    for i, loan in enumerate(c.items(data, "loans", non_empty=True)):
        p = f"loans[{i}]"
        loans.append({
            "loan_no": c.text(loan, "loan_no", p),
            "enterprise": c.text(loan, "enterprise", p),
            "amount": c.decimal(loan, "amount", p) or Decimal(0),
            "balance": c.decimal(loan, "balance", p) or Decimal(0),
        })
    return loans


def _reasons(c: _Checker, data, non_empty: bool = True) -> list[dict[str, Any]]:
    reasons = []
    for i, r in enumerate(c.items(data, "reasons", non_empty=non_empty)):
        p = f"reasons[{i}]"
        reasons.append({
            "code": c.text(r, "code", p, required=False),
            "text": c.text(r, "text", p),
            "source": c.text(r, "source", p, required=False),
        })
    return reasons


def _tolerance(c: _Checker, data) -> dict[str, Any] | None:
    tol = c.get(data, "tolerance", "", required=False)
    if tol is None:
        return None
    p = "tolerance"
    within = c.get(tol, "within", p)
    if within is not None and not isinstance(within, bool):
        c.fail("tolerance.within", f"expected true or false, got {within!r}")
    return {
        "branch": c.text(tol, "branch", p),
        "period": c.date(tol, "period", p, allow_text=True),
        "sme_ratio": c.decimal(tol, "sme_ratio", p, required=False),
        "all_ratio": c.decimal(tol, "all_ratio", p, required=False),
        "gap_pp": c.decimal(tol, "gap_pp", p, required=False),
        "within": bool(within),
    }


def _paragraphs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _determination(c: _Checker, data, d: dict[str, Any]) -> None:
    d["respondent"] = _respondent(c, c.get(data, "respondent", "") or {}, "respondent")
    d["respondent"]["stages"] = c.stages(data, "stages")
    d["loans"] = _loans(c, data)
    d["outcome"] = c.choice(data, "outcome", OUTCOMES)
    d["liability_kind"] = c.choice(data, "liability_kind", LIABILITY_KINDS)
    d["sanctions"] = c.texts(data, "sanctions", required=False)
    d["reasons"] = _reasons(c, data)
    if "tolerance" not in data:
        c.fail("tolerance", "missing (give None when no tolerance figure applies)")
    d["tolerance"] = _tolerance(c, data)
    deviation = c.get(data, "deviation", "", required=False)
    if deviation is not None:
        p = "deviation"
        deviation = {
            "recommended": c.choice(deviation, "recommended", OUTCOMES, p),
            "decided": c.choice(deviation, "decided", OUTCOMES, p),
            "reason": c.text(deviation, "reason", p),
        }
        if deviation["decided"] != d["outcome"]:
            c.fail("deviation.decided", f"{deviation['decided']!r} differs from outcome {d['outcome']!r}")
    d["deviation"] = deviation
    appeal = c.get(data, "appeal", "") or {}
    d["appeal"] = {
        "deadline": c.date(appeal, "deadline", "appeal"),
        "body": c.text(appeal, "body", "appeal"),
        "channel": c.text(appeal, "channel", "appeal", required=False),
    }


def _appeal_record(c: _Checker, data, d: dict[str, Any]) -> None:
    d["respondent"] = _respondent(c, c.get(data, "respondent", "") or {}, "respondent")
    d["respondent"]["stages"] = []
    d["appealed_doc_number"] = c.text(data, "appealed_doc_number")
    d["appealed_outcome"] = c.choice(data, "appealed_outcome", OUTCOMES)
    d["filed_at"] = c.date(data, "filed_at")
    grounds = c.get(data, "grounds", "")
    d["grounds"] = _paragraphs(grounds) if isinstance(grounds, str | list | tuple) else []
    if grounds is not None and not d["grounds"]:
        c.fail("grounds", "expected a non-empty text or list of paragraphs")
    d["evidence"] = c.texts(data, "evidence", required=False)


def _appeal_decision(c: _Checker, data, d: dict[str, Any]) -> None:
    d["respondent"] = _respondent(c, c.get(data, "respondent", "") or {}, "respondent")
    d["respondent"]["stages"] = []
    d["appealed_doc_number"] = c.text(data, "appealed_doc_number")
    appealed = d["appealed_outcome"] = c.choice(data, "appealed_outcome", OUTCOMES)
    decision = d["decision"] = c.choice(data, "decision", DECISIONS)
    new = c.choice(data, "new_outcome", OUTCOMES, required=decision == "altered")
    if decision == "upheld":
        if new is not None and new != appealed:
            c.fail("new_outcome", f"an upheld determination keeps {appealed!r}, got {new!r}")
        new = appealed
    elif new is not None and appealed is not None:
        if new == appealed:
            c.fail("new_outcome", "an altered determination must change the outcome")
        elif OUTCOMES.index(new) > OUTCOMES.index(appealed):
            c.fail("new_outcome", f"an appeal may never worsen the outcome ({appealed!r} -> {new!r}; 金规〔2024〕11号)")
    d["new_outcome"] = new
    d["liability_kind"] = c.choice(data, "liability_kind", LIABILITY_KINDS, required=False)
    d["filed_at"] = c.date(data, "filed_at", required=False)
    d["reasons"] = _reasons(c, data)
    d["reviewers"] = c.texts(data, "reviewers", non_empty=True)


def _case_summary(c: _Checker, data, d: dict[str, Any]) -> None:
    d["case_no"] = c.text(data, "case_no")
    d["enterprise"] = c.text(data, "enterprise")
    d["loans"] = _loans(c, data)
    respondents = []
    for i, r in enumerate(c.items(data, "respondents", non_empty=True)):
        p = f"respondents[{i}]"
        row = _respondent(c, r, p, with_stages=True)
        row["outcome"] = c.choice(r, "outcome", OUTCOMES, p)
        row["liability_kind"] = c.choice(r, "liability_kind", LIABILITY_KINDS, p, required=False)
        row["doc_number"] = c.text(r, "doc_number", p, required=False)
        respondents.append(row)
    d["respondents"] = respondents
    d["counts"] = {o: sum(1 for r in respondents if r["outcome"] == o) for o in OUTCOMES}
    d["tolerance"] = _tolerance(c, data)
    events = []
    for i, e in enumerate(c.items(data, "events", required=False)):
        p = f"events[{i}]"
        events.append({"at": c.date(e, "at", p), "text": c.text(e, "text", p)})
    d["events"] = events
