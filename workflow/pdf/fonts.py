"""The letter faces: derived once per machine from the installed Noto CJK fonts, by fontTools.

The letters do not print with the installed faces directly but with faces derived from them into
``FONTS_DIR`` (by scripts/setup, or by the first rendering): the same outlines, metrics and layout, restricted
to GB 2312, ASCII, Latin-1, the punctuation blocks and every character of the templates (7,842 glyphs
instead of 65,535), numbered by frequency. WeasyPrint subsets the embedded fonts keeping glyph ids, so its
work and the PDF's size follow the highest glyph id used: a two-page letter takes less than half the CPU
time and a fifth of the bytes. Any other character (a rare name) falls back to the installed family, which
the stylesheet names next, and that face is then embedded as well.

Before anything is derived, fontconfig must report each configured family (``MIANZE_LETTER_FONT``,
``MIANZE_LETTER_SANS_FONT``) with a regular and a real bold face covering Chinese, or ``LetterFontMissing``
is raised: otherwise WeasyPrint would quietly draw empty boxes, or a regular face for the headings.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fontTools
from fontTools.subset import Options, Subsetter
from fontTools.ttLib import TTFont
from fontTools.ttLib.reorderGlyphs import reorderGlyphs

from .errors import LetterError, LetterFontMissing
from .templates import LETTERS_DIR

#: Installed font families the letter faces are derived from (regular and bold); overridable with
#: MIANZE_LETTER_FONT / MIANZE_LETTER_SANS_FONT.
LETTER_FONT = "Noto Serif CJK SC"
LETTER_SANS_FONT = "Noto Sans CJK SC"
#: Where the letter faces are derived to (not in Git; the URL fetcher serves them).
FONTS_DIR = LETTERS_DIR / "fonts"
#: The faces the letters use: (role, CSS weight). The headings are bold; a sans regular face is not used.
LETTER_FACES = (("serif", 400), ("serif", 700), ("sans", 700))


@dataclass(frozen=True)
class LetterFace:
    """A face the letters print with, derived from an installed face into FONTS_DIR (see derive_face)."""

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


def letter_fonts() -> tuple[str, str]:
    """The installed (serif, sans) font families the letter faces come from, after the environment
    overrides."""
    return (
        os.environ.get("MIANZE_LETTER_FONT") or LETTER_FONT,
        os.environ.get("MIANZE_LETTER_SANS_FONT") or LETTER_SANS_FONT,
    )


def check_letter_fonts() -> tuple[LetterFace, ...]:
    """Check that the letter fonts are installed and return their letter faces, deriving any missing one
    (cached per process); raises LetterFontMissing. scripts/setup calls it once."""
    return _letter_faces(*letter_fonts())


# ---------------------------------------------------------------------------------------------------------
# The installed fonts


_FC_ESCAPE = re.compile(r"([\\\-:,=])")
_FONT_HINT = ("Run scripts/setup, which installs the Debian package fonts-noto-cjk, or set MIANZE_LETTER_FONT / "
              "MIANZE_LETTER_SANS_FONT to an installed CJK font with a bold face.")


@dataclass(frozen=True)
class InstalledFace:
    weight: int  # fontconfig weight: regular 80, medium 100, bold 200
    file: str
    index: int


@lru_cache(maxsize=16)
def installed_faces(family: str) -> dict[int, InstalledFace]:
    """Ask fontconfig for ``family`` with Chinese coverage; return its regular and bold faces by CSS weight.
    Raises LetterFontMissing."""
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
    faces: list[InstalledFace] = []
    for line in out.splitlines():
        weights, index, file = (line.split("\t", 2) + ["", ""])[:3]
        if not file:
            continue
        for w in re.findall(r"\d+(?:\.\d+)?", weights):
            faces.append(InstalledFace(int(float(w)), file, int(index or 0)))
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
    installed = {family: installed_faces(family) for family in families.values()}  # both checked first
    faces = []
    for role, weight in LETTER_FACES:
        family = families[role]
        face = installed[family][weight]
        path = face_path(family, weight, face)
        if not path.is_file():
            derive_face(face, family, weight, path)
        faces.append(LetterFace(role, family, weight, face.file, face.index, path))
    return tuple(faces)


# ---------------------------------------------------------------------------------------------------------
# Deriving a letter face


#: Changes whenever derive_face would write different bytes for the same source (3: by fontTools).
_DERIVE_VERSION = 3
#: OpenType layout features kept in the letter faces: those HarfBuzz applies to horizontal text by default.
#: The vertical, width and ruby features are left out: the letters do not use them.
_KEEP_FEATURES = ("ccmp", "locl", "liga", "clig", "calt", "rlig", "rclt", "rvrn", "kern", "mark", "mkmk", "curs",
                  "dist", "frac", "numr", "dnom")
#: Language systems kept besides each script's default: simplified Chinese (html lang="zh-CN"; the English
#: letters use the defaults). Noto CJK's "locl" gives Chinese text its own digits and punctuation; the
#: Japanese, Korean and traditional ones would bring 5,500 more glyphs.
_KEEP_LANGSYS = ("ZHS ",)
#: Tables left out: vertical metrics and baselines (the letters are set horizontally), the signature.
_DROP_TABLES = ("VORG", "vhea", "vmtx", "BASE", "DSIG")
#: Variation selectors: with them requested, the variation sequences of the kept characters (cmap format
#: 14) and their glyphs are kept too.
_VARIATION_SELECTORS = (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))


def face_path(family: str, weight: int, face: InstalledFace) -> Path:
    """Where the letter face derived from ``face`` lives: its name changes with anything its bytes depend on."""
    stat = os.stat(face.file)
    tiers = hashlib.sha256(repr([sorted(tier) for tier in _codepoint_tiers()]).encode()).hexdigest()
    key = json.dumps([_DERIVE_VERSION, family, weight, face.file, face.index, stat.st_size, stat.st_mtime_ns,
                      tiers, fontTools.version])
    slug = re.sub(r"[^A-Za-z0-9]+", "-", family).strip("-") or "font"
    return FONTS_DIR / f"{slug}-{weight}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.otf"


def derive_face(face: InstalledFace, family: str, weight: int, path: Path) -> None:
    """Write the letter face of an installed face to ``path``, deterministically, and remove stale letter
    faces of the same family and weight; raises LetterFontMissing."""
    try:
        data = _letter_face(face.file, face.index, f"{family} Letters", bold=weight >= 600)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: a concurrent process derives the same bytes
        for stale in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.otf"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - fontTools raises many kinds; all mean "no letter face"
        raise LetterFontMissing(
            f'cannot derive the letter face of "{family}" ({weight}) from {face.file} into {path.parent} '
            f"({type(exc).__name__}: {exc}). Run scripts/setup, and make sure {path.parent} is writable."
        ) from exc


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


def _subset_options(**overrides) -> Options:
    """fontTools' subsetter set to do what HarfBuzz's did before (for the same glyphs and tables)."""
    options = Options(
        layout_features=list(_KEEP_FEATURES),
        name_IDs=list(range(15)),  # up to the licence URL
        notdef_outline=True,
        bidi_closure=False,  # no mirrored forms (∋ for ∈): the letters are left to right
        prune_codepage_ranges=False,
        harfbuzz_repacker=False,  # the same bytes whether uharfbuzz is installed or not
        **overrides,
    )
    options.drop_tables += _DROP_TABLES
    return options


def _letter_face(file: str, index: int, family: str, bold: bool) -> bytes:
    """Face ``index`` of ``file`` renamed to ``family`` (so that fontconfig never takes it for the installed
    face), with the language systems of _KEEP_LANGSYS only, restricted to the letter characters (and the
    glyphs the kept layout features reach from them), its glyphs numbered by frequency."""
    font = TTFont(file, fontNumber=index, lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    try:
        _rename(font, family, bold)
        for tag in ("GSUB", "GPOS"):
            if tag in font and font[tag].table.ScriptList:
                for record in font[tag].table.ScriptList.ScriptRecord:
                    kept = [r for r in record.Script.LangSysRecord if r.LangSysTag in _KEEP_LANGSYS]
                    record.Script.LangSysRecord = kept
                    record.Script.LangSysCount = len(kept)
        subsetter = Subsetter(_subset_options())
        subsetter.populate(unicodes=[*frozenset().union(*_codepoint_tiers()), *_VARIATION_SELECTORS])
        subsetter.subset(font)
        return _order_glyphs(_save(font))
    finally:
        font.close()


def _rename(font: TTFont, family: str, bold: bool) -> None:
    """Name ids 1-4 and 6 set to ``family``, the typographic names 16 and 17 removed."""
    style = "Bold" if bold else "Regular"
    postscript = re.sub(r"[^A-Za-z0-9]", "", family) + "-" + style
    table = font["name"]
    table.names = [record for record in table.names if record.nameID not in (1, 2, 3, 4, 6, 16, 17)]
    for name_id, value in ((1, family), (2, style), (3, postscript), (4, f"{family} {style}"), (6, postscript)):
        table.setName(value, name_id, 3, 1, 0x409)


def _reached(font: bytes, codepoints: frozenset[int]) -> set[str]:
    """The glyphs a subset of ``font`` to ``codepoints`` keeps: their own and what the kept layout features
    reach (the outlines are left out: a CID-keyed font has no composite glyphs)."""
    ttfont = TTFont(io.BytesIO(font), lazy=True)
    ttfont.getGlyphOrder()  # the names, from the CFF charset, before that table is dropped
    outlines = [tag.strip() for tag in ttfont.keys() if tag not in ("GlyphOrder", "cmap", "GSUB", "GDEF")]
    subsetter = Subsetter(_subset_options(drop_tables=outlines))
    subsetter.populate(unicodes=[*codepoints, *_VARIATION_SELECTORS])
    subsetter.subset(ttfont)
    return set(ttfont.getGlyphOrder())


def _order_glyphs(font: bytes) -> bytes:
    """Number the glyphs of a letter face by frequency: first those the letters' own text reaches, then the
    most frequent hanzi, then the rest (each group in its former order; see _codepoint_tiers). WeasyPrint keeps
    glyph ids when it subsets, so its work follows the highest id a letter uses: about 4,300 instead of 7,800
    for the body face, a few hundred for the bold faces. A CID-keyed CFF font gets CID = glyph id again, as in
    Noto CJK (a PDF viewer maps the glyph ids WeasyPrint writes through the CFF charset)."""
    ttfont = TTFont(io.BytesIO(font), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    glyphs = ttfont.getGlyphOrder()
    order: list[int] = []
    seen: set[str] = set()
    wanted: frozenset[int] = frozenset()
    for tier in _codepoint_tiers():
        wanted |= tier
        reached = _reached(font, wanted) - seen
        order += [gid for gid, name in enumerate(glyphs) if name in reached]
        seen |= reached
    order += [gid for gid, name in enumerate(glyphs) if name not in seen]
    if order[0] != 0:
        raise LetterError("the letter face lost its .notdef glyph")
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
    return _save(ttfont)


def _save(font: TTFont) -> bytes:
    out = io.BytesIO()
    font.save(out, reorderTables=False)
    return out.getvalue()
