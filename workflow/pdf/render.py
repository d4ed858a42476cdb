"""Letter HTML to PDF by WeasyPrint: one FontConfiguration, one parsed stylesheet, a locked-down URL fetcher.

- Resources: the URL fetcher serves only files under templates/letters/ (the stylesheet, the letter faces);
  any other URL (http, data:, other paths) stops the rendering with ``LetterURLRefused``.
- Subsetting: WeasyPrint must have loaded HarfBuzz-Subset (Debian's libharfbuzz-subset0); without it,
  it subsets the embedded CJK faces with fontTools, 25-40x slower, with only a log message, so
  ``LetterSubsetterMissing`` is raised instead.
- Concurrency: the font configuration and the parsed stylesheet are shared per process, and renders in one
  process are serialised by a lock (WeasyPrint's Pango/fontconfig objects are not thread-safe and cffi
  releases the GIL). For throughput, render in several processes.
"""

from __future__ import annotations

import io
import mimetypes
import threading
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import weasyprint
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from .errors import LetterSubsetterMissing, LetterURLRefused
from .fonts import LetterFace, check_letter_fonts
from .templates import LETTERS_DIR, css_string

BASE_URL = LETTERS_DIR.as_uri() + "/"

_RENDER_LOCK = threading.Lock()


PDF_VARIANT = "pdf/a-3b"  # PDF/A-3, level B: archival, and it may carry the letter's data as an attached file
DATA_FILE = "letter-data.json"  # the name of that attached file


def write_pdf(html: str, data_json: bytes | None = None, dated: datetime | None = None) -> bytes:
    """The PDF/A-3b file of a letter's HTML, with ``data_json`` attached as ``letter-data.json`` (its
    relationship "Data", its dates ``dated``, so that the bytes stay reproducible); raises LetterURLRefused."""
    attachments = []
    if data_json is not None:
        attachments.append(weasyprint.Attachment(
            string=data_json, name=DATA_FILE, description="letter data (JSON)", relationship="Data",
            created=dated, modified=dated, url_fetcher=LetterURLFetcher()))
    try:
        with _RENDER_LOCK:
            sheet = _stylesheet()
            document = weasyprint.HTML(string=html, base_url=BASE_URL, url_fetcher=LetterURLFetcher())
            return document.write_pdf(stylesheets=[sheet], font_config=_font_config(), pdf_variant=PDF_VARIANT,
                                      attachments=attachments, output_intent=_OUTPUT_INTENT,
                                      color_profiles={_OUTPUT_INTENT: _srgb_profile()})
    except FatalURLFetchingError as exc:  # a BaseException: turn it into an ordinary error
        cause = exc.__cause__
        if isinstance(cause, LetterURLRefused):
            raise LetterURLRefused(str(cause)) from cause
        raise LetterURLRefused(f"{exc}: {cause}") from cause


def write_pdf_bare(html: str) -> bytes:
    """The PDF of the HTML rendered the plain WeasyPrint way, for benchmarks: default URL fetcher, a fresh
    font configuration and the letter stylesheet parsed anew."""
    font_config = FontConfiguration()
    sheet = weasyprint.CSS(string=stylesheet_text(check_letter_fonts()), base_url=BASE_URL,
                           font_config=font_config)
    return weasyprint.HTML(string=html, base_url=BASE_URL).write_pdf(stylesheets=[sheet], font_config=font_config)


@lru_cache(maxsize=1)
def check_subsetter() -> None:
    """Raise LetterSubsetterMissing unless WeasyPrint has loaded HarfBuzz-Subset >= 4.1."""
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    if harfbuzz_subset is None or not harfbuzz.hb_version_atleast(4, 1, 0):
        raise LetterSubsetterMissing(
            "WeasyPrint cannot load HarfBuzz-Subset >= 4.1 (libharfbuzz-subset0); it would subset the CJK "
            "fonts with fontTools, 25-40x slower. Run scripts/setup, which installs libharfbuzz-subset0."
        )


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


def stylesheet_text(faces: tuple[LetterFace, ...]) -> str:
    """letter.css followed by the letter faces (@font-face) and the families naming them, each followed by
    its installed family for the characters the letter faces lack."""
    rules = [(LETTERS_DIR / "letter.css").read_text(encoding="utf-8"), "/* Letter faces (workflow/pdf/fonts.py) */"]
    for face in faces:
        url = face.path.relative_to(LETTERS_DIR).as_posix()  # letters, digits, "-", "." and "/" (face_path)
        rules.append(f"@font-face {{ font-family: {css_string(face.css_family)}; "
                     f'src: url("{url}"); font-weight: {face.weight}; font-style: normal; }}')
    selectors = {"serif": "html", "sans": "h2, .seal-block .org, thead th"}
    generic = {"serif": "serif", "sans": "sans-serif"}
    for role in dict.fromkeys(face.role for face in faces):
        face = next(f for f in faces if f.role == role)
        rules.append(f"{selectors[role]} {{ font-family: {css_string(face.css_family)}, "
                     f"{css_string(face.family)}, {generic[role]}; }}")
    return "\n".join(rules) + "\n"


_OUTPUT_INTENT = "letter-srgb"


@lru_cache(maxsize=1)
def _srgb_profile():
    """WeasyPrint's own sRGB profile as the PDF/A output intent, read once per process (WeasyPrint's default
    "srgb" intent opens the profile's file anew for every document and never closes it)."""
    from importlib.resources import files

    from weasyprint.css import ColorProfile

    icc = (files("weasyprint.pdf") / "sRGB2014.icc").read_bytes()
    return ColorProfile(io.BytesIO(icc), "sRGB2014.icc", "relative-colorimetric", (["r"], ["g"], ["b"]))


@lru_cache(maxsize=1)
def _font_config() -> FontConfiguration:
    return FontConfiguration()


_STYLESHEETS: dict[tuple[Any, ...], weasyprint.CSS] = {}


def _stylesheet() -> weasyprint.CSS:
    """The parsed stylesheet of the letters, bound to the process's font configuration (call it under the
    render lock); parsed again when letter.css is edited."""
    faces = check_letter_fonts()
    key = ((LETTERS_DIR / "letter.css").stat().st_mtime_ns, faces)
    sheet = _STYLESHEETS.get(key)
    if sheet is None:
        sheet = weasyprint.CSS(string=stylesheet_text(faces), base_url=BASE_URL,
                               url_fetcher=LetterURLFetcher(), font_config=_font_config())
        _STYLESHEETS.clear()
        _STYLESHEETS[key] = sheet
    return sheet
