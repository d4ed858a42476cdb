"""Reading import files (CSV and XLSX) row by row with bounded memory: shared by the loan import
(services/imports.py) and the HR staff import (services/staff.py).

- A file is read from a path, an open binary file (an upload's spooled temporary file) or bytes; it is
  never decoded or parsed whole. One pass first counts its bytes against the cap, computes its SHA-256
  and, for a CSV, finds its encoding: UTF-8 (with or without a byte order mark) or GB18030 (which includes
  GBK and GB 2312: what Excel writes on Chinese Windows).
- Rows are then yielded one at a time; more data rows than the cap is a clear refusal (ValidationFailed),
  raised while reading, so the caller's transaction writes nothing.
- XLSX: openpyxl's read-only (streaming) reader; the stored sheet dimension is ignored (reset_dimensions),
  so a dimension understating the rows reads every row and an overstated one costs nothing. The shared
  strings table is held in memory by openpyxl, so its unpacked size is capped too.
- ErrorReport keeps the first N row errors and a count per kind, so a file of a million bad rows gives a
  report of a few kilobytes.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from ..domain.errors import ValidationFailed

_READ = 1 << 20  # bytes read at a time
_MAX_REASON = 300  # characters of one error's reason (a hostile cell is not echoed whole)


@dataclass(frozen=True)
class Limits:
    """What one import file may hold (configuration: IMPORT_MAX_ROWS, IMPORT_MAX_BYTES, IMPORT_MAX_ERRORS,
    IMPORT_MAX_XLSX_STRINGS_BYTES). Uploads are further capped by MAX_CONTENT_LENGTH."""

    max_rows: int = 10_000_000
    max_bytes: int = 4 << 30
    max_errors: int = 100
    max_xlsx_strings_bytes: int = 64 << 20

    @classmethod
    def from_config(cls, config) -> Limits:
        default = cls()
        return cls(max_rows=int(config.get("IMPORT_MAX_ROWS") or default.max_rows),
                   max_bytes=int(config.get("IMPORT_MAX_BYTES") or default.max_bytes),
                   max_errors=int(config.get("IMPORT_MAX_ERRORS") or default.max_errors),
                   max_xlsx_strings_bytes=int(config.get("IMPORT_MAX_XLSX_STRINGS_BYTES")
                                              or default.max_xlsx_strings_bytes))


Source = bytes | str | os.PathLike | IO[bytes]


@contextmanager
def opened(source: Source) -> Iterator[IO[bytes]]:
    """A seekable binary file of the source, at its start (a file object given is not closed)."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield f
    else:
        source.seek(0)
        yield source


def spool(stream: IO[bytes], max_bytes: int) -> IO[bytes]:
    """A request body copied to a temporary file (in memory up to 1 MiB, on disk beyond), refused beyond
    `max_bytes`; the caller closes it."""
    out = tempfile.SpooledTemporaryFile(max_size=1 << 20)
    total = 0
    while chunk := stream.read(_READ):
        total += len(chunk)
        if total > max_bytes:
            out.close()
            raise too_large(max_bytes)
        out.write(chunk)
    out.seek(0)
    return out


def too_large(max_bytes: int) -> ValidationFailed:
    return ValidationFailed(f"the file is larger than an import accepts: at most {max_bytes:,} bytes", field="file")


def too_many_rows(max_rows: int) -> ValidationFailed:
    return ValidationFailed(f"the file has more rows than an import accepts: at most {max_rows:,} rows, "
                            "nothing was imported", field="file")


@dataclass
class Scan:
    """What one pass over the file found: its size, SHA-256 and (CSV) encoding."""

    size: int
    sha256: str
    encoding: str | None = None  # "UTF-8", "UTF-8 with BOM" or "GB18030"
    codec: str | None = None  # the Python codec reading it


def _decodes(f: IO[bytes], codec: str) -> int | None:
    """None when the whole file decodes in `codec`, else the offset of the first bad byte."""
    f.seek(0)
    decoder = codecs.getincrementaldecoder(codec)()
    offset = 0
    while True:
        chunk = f.read(_READ)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            return offset + max(exc.start, 0)
        if not chunk:
            return None
        offset += len(chunk)


def scan(f: IO[bytes], limits: Limits, *, text: bool) -> Scan:
    """Size (refused beyond the cap), SHA-256 and, when `text`, the encoding; NUL bytes refuse a text file."""
    f.seek(0)
    digest, size, head = hashlib.sha256(), 0, b""
    while chunk := f.read(_READ):
        size += len(chunk)
        if size > limits.max_bytes:
            raise too_large(limits.max_bytes)
        if not head:
            head = chunk[:3]
        if text and b"\x00" in chunk:
            raise ValidationFailed("the CSV file contains NUL characters", field="file")
        digest.update(chunk)
    if size == 0:
        raise ValidationFailed("the file is empty", field="file")
    result = Scan(size, digest.hexdigest())
    if text:
        bad = _decodes(f, "utf-8")
        if bad is None:
            result.codec = "utf-8-sig"
            result.encoding = "UTF-8 with BOM" if head.startswith(codecs.BOM_UTF8) else "UTF-8"
        elif _decodes(f, "gb18030") is None:  # GB18030 is a superset of GBK and GB 2312
            result.codec, result.encoding = "gb18030", "GB18030"
        else:
            raise ValidationFailed(f"the CSV file is neither UTF-8 nor GB18030/GBK: the byte at offset {bad} fits "
                                   "neither", field="file")
    f.seek(0)
    return result


def csv_rows(f: IO[bytes], codec: str, limits: Limits) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of a CSV file, the header first (line 1); blank lines skipped; the row cap enforced."""
    f.seek(0)
    text = io.TextIOWrapper(f, encoding=codec, newline="")
    reader = csv.reader(text)
    data_rows = 0
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise ValidationFailed("the file is empty", field="file") from None
        yield 1, [h.strip() for h in header]
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            data_rows += 1
            if data_rows > limits.max_rows:
                raise too_many_rows(limits.max_rows)
            yield reader.line_num, values
    except csv.Error as exc:
        raise ValidationFailed(f"line {reader.line_num}: the CSV file cannot be read: {exc}", field="file") from None
    finally:
        if not f.closed:
            text.detach()  # leave the caller's file open


def cell_text(value: Any, *, yes: str = "true", no: str = "false") -> str:
    """An XLSX cell's value as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes if value else no
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def _check_zip(f: IO[bytes], limits: Limits) -> None:
    """Refuse a workbook whose shared strings (held in memory by the reader) unpack beyond the cap. Python's
    zipfile never unpacks more than a member's declared size (it fails the member instead)."""
    try:
        with zipfile.ZipFile(f) as z:
            strings = sum(i.file_size for i in z.infolist() if i.filename.lower().endswith("sharedstrings.xml"))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ValidationFailed("the file is not a readable XLSX workbook (BadZipFile)", field="file") from None
    if strings > limits.max_xlsx_strings_bytes:
        raise ValidationFailed("the workbook's text cells are larger than an import accepts: at most "
                               f"{limits.max_xlsx_strings_bytes:,} bytes of shared strings; save it as CSV",
                               field="file")


def xlsx_rows(f: IO[bytes], limits: Limits, *, yes: str = "true", no: str = "false"
              ) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells as text) of the first worksheet, the header first (row 1, trailing empty cells
    dropped); empty rows skipped; the row cap enforced. The stored dimension is not trusted."""
    from openpyxl import load_workbook

    _check_zip(f, limits)
    f.seek(0)
    try:
        wb = load_workbook(f, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise ValidationFailed(f"the file is not a readable XLSX workbook ({type(exc).__name__})",
                               field="file") from None
    try:
        if not wb.worksheets:
            raise ValidationFailed("the file is empty", field="file")
        sheet = wb.worksheets[0]
        sheet.reset_dimensions()  # the stored dimension may understate (or overstate) the rows
        rows = sheet.iter_rows(values_only=True)
        try:
            header = [cell_text(h, yes=yes, no=no) for h in next(rows)]
        except StopIteration:
            raise ValidationFailed("the file is empty", field="file") from None
        while header and header[-1] == "":
            header.pop()
        yield 1, header
        data_rows = 0
        try:
            for n, values in enumerate(rows, start=2):
                if not values or all(v is None or v == "" for v in values):
                    continue
                data_rows += 1
                if data_rows > limits.max_rows:
                    raise too_many_rows(limits.max_rows)
                yield n, [cell_text(v, yes=yes, no=no) for v in values]
        except (zipfile.BadZipFile, OSError, SyntaxError, ValueError, KeyError) as exc:
            raise ValidationFailed(f"the worksheet cannot be read ({type(exc).__name__})", field="file") from None
    finally:
        wb.close()


class ErrorReport:
    """The row errors of one file: the first `keep` by line, the total and a count per kind."""

    def __init__(self, keep: int):
        self.keep = keep
        self.first: list[dict] = []
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, error: dict) -> None:
        self.counts[kind] += 1
        if len(error.get("reason", "")) > _MAX_REASON:
            error = {**error, "reason": error["reason"][:_MAX_REASON - 1] + "…"}
        self.first.append(error)
        if len(self.first) > 2 * self.keep:  # keep the list short even when errors arrive out of line order
            self._trim()

    def _trim(self) -> None:
        self.first.sort(key=lambda e: e["line"])
        del self.first[self.keep:]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def details(self) -> dict:
        self._trim()
        return {"errors": self.first, "error_total": self.total, "error_counts": dict(sorted(self.counts.items()))}
