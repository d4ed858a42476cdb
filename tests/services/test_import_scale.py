"""Hostile import files at a bank's scale: each ends in a full, correct import or a clear refusal that wrote
nothing, with the importing process's peak memory bounded and a short error report.

Each import runs in a child Python process (the app's own import code on the test's database), which
reports its peak resident set size: resource.getrusage (an upper bound: Linux carries the forking test
runner's peak across exec) and the kernel's VmHWM of its own image.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from tests.api.test_imports import HEADER, counts, loan_record, to_csv
from workflow.commands.integration import Progress
from workflow.services import imports, tabular

MAX_RSS_MB = 500
MAX_REPORT_BYTES = 1 << 20

_CHILD = r"""
import json, resource, sys
from workflow.db import make_engine, unit_of_work
from workflow.domain.errors import DomainError
from workflow.services import imports, tabular

url, path, fmt, limits = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
limits = tabular.Limits(**limits)
engine = make_engine(url)
out = {}
try:
    rows = imports.read_file(path, fmt, limits)
    with unit_of_work(engine) as s:
        result = imports.import_loans(s, None, rows, limits=limits)
    out = {"outcome": "imported", "result": result.to_dict()}
except DomainError as exc:
    report = json.dumps({"message": exc.message, **exc.details}, ensure_ascii=False)
    out = {"outcome": "refused", "code": exc.code, "message": exc.message, "details": exc.details,
           "report_bytes": len(report.encode())}
out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:  # Linux keeps ru_maxrss across exec (the forked test runner's size counts): VmHWM is this image's own
    with open("/proc/self/status") as status:
        out["own_peak_mb"] = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
except OSError:
    out["own_peak_mb"] = out["max_rss_mb"]
print(json.dumps(out, ensure_ascii=False))
"""


def _import_in_child(url: str, path: Path, fmt: str, **limits) -> dict:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CHILD, url, str(path), fmt, json.dumps(limits)],
                          capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{path.name}: {out['outcome']}, peak RSS {out['own_peak_mb']:.0f} MB "
          f"(getrusage, with the test runner's image: {out['max_rss_mb']:.0f} MB)")
    assert out["own_peak_mb"] <= MAX_RSS_MB, out  # the child's own peak (VmHWM): getrusage carries the forking worker's
    if out["outcome"] == "refused":
        assert out["report_bytes"] <= MAX_REPORT_BYTES
    return out


@pytest.fixture
def book(sqlite_url, sqlite_engine):
    """The test bank on a SQLite file the child process opens too."""
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    return sqlite_url, bank


def _sheet_xml(rows_xml, dimension: str):
    yield ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           f'<dimension ref="{dimension}"/><sheetData>')
    yield from rows_xml
    yield "</sheetData></worksheet>"


def _raw_xlsx(path: Path, rows_xml, dimension: str) -> None:
    """A minimal workbook written part by part (inline strings), so a sheet of a million rows is made in
    seconds without holding it in memory."""
    ns = "http://schemas.openxmlformats.org/"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="' + ns + 'package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
                   'officedocument.spreadsheetml.sheet.main+xml"/>'
                   '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
                   'officedocument.spreadsheetml.worksheet+xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' + ns +
                   'package/2006/relationships"><Relationship Id="rId1" Type="' + ns +
                   'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="' + ns +
                   'spreadsheetml/2006/main" xmlns:r="' + ns + 'officeDocument/2006/relationships"><sheets>'
                   '<sheet name="loans" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' +
                   ns + 'package/2006/relationships"><Relationship Id="rId1" Type="' + ns +
                   'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
        with z.open("xl/worksheets/sheet1.xml", "w") as sheet:
            buf = []
            for part in _sheet_xml(rows_xml, dimension):
                buf.append(part)
                if len(buf) >= 10_000:
                    sheet.write("".join(buf).encode())
                    buf.clear()
            sheet.write("".join(buf).encode())


def _header_xml() -> str:
    return '<row r="1">' + "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in HEADER) + "</row>"


def _bad_rows_xml(n: int):
    """Row 1 the header, then n rows whose loan has only a number: every one is a bad row."""
    yield _header_xml()
    for r in range(2, n + 2):
        yield f'<row r="{r}"><c t="inlineStr"><is><t>X{r}</t></is></c></row>'


def test_a_small_xlsx_of_one_and_a_half_million_rows_is_refused_at_the_row_cap_with_nothing_written(
        book, tmp_path):
    url, bank = book
    path = tmp_path / "huge.xlsx"
    _raw_xlsx(path, _bad_rows_xml(1_500_000), "A1:T1500001")
    assert path.stat().st_size < 8 << 20  # a few megabytes on the wire
    before = counts(bank.engine)
    out = _import_in_child(url, path, "xlsx", max_rows=100_000)
    assert out["outcome"] == "refused" and "more rows than an import accepts" in out["message"]
    assert "at most 100,000 rows" in out["message"]
    assert counts(bank.engine) == before


def test_a_file_of_many_bad_rows_reports_the_first_hundred_and_a_count_per_kind_in_a_short_report(
        book, tmp_path):
    url, bank = book
    path = tmp_path / "bad.xlsx"
    _raw_xlsx(path, _bad_rows_xml(30_000), "A1:T1500001")  # the dimension claims 1.5 M rows: not trusted
    before = counts(bank.engine)
    out = _import_in_child(url, path, "xlsx")
    assert out["outcome"] == "refused" and out["code"] == "import_rejected"
    details = out["details"]
    assert details["error_total"] == 30_000 and len(details["errors"]) == 100
    assert [e["line"] for e in details["errors"][:3]] == [2, 3, 4]
    assert sum(details["error_counts"].values()) == 30_000
    assert out["message"].startswith("30000 bad row(s), nothing was imported: line 2:")
    assert counts(bank.engine) == before


def test_an_xlsx_whose_dimension_understates_its_rows_imports_every_row_in_bounded_memory(book, tmp_path):
    url, bank = book
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(10):
        ws.append([loan_record(n).get(c, "") for c in HEADER])
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(buf)
    path = tmp_path / "understated.xlsx"
    with zipfile.ZipFile(path, "w") as out:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = body.decode()
                start = text.index('<dimension ref="')
                end = text.index('"', start + len('<dimension ref="'))
                body = (text[:start] + '<dimension ref="A1:T4' + text[end:]).encode()
            out.writestr(item, body)
    out = _import_in_child(url, path, "xlsx")
    assert out["outcome"] == "imported" and out["result"]["created"] == 10


def test_a_20_mb_csv_imports_in_full_with_bounded_memory(book, tmp_path):
    url, bank = book
    records = []
    for n in range(36_000):
        rec = loan_record(n)
        rec.update(owner_name="经营者" * 21, industry="批发和零售业" * 10)  # long text: about 600 bytes a row
        records.append(rec)
    path = tmp_path / "book.csv"
    path.write_bytes(to_csv(records))
    assert path.stat().st_size >= 20_000_000
    before = counts(bank.engine)
    out = _import_in_child(url, path, "csv")
    assert out["outcome"] == "imported", out
    assert (out["result"]["created"], out["result"]["handlers_added"]) == (36_000, 4 * 36_000)
    assert counts(bank.engine)[0] == before[0] + 36_000


def test_a_gbk_csv_imports_in_full_and_says_it_was_read_as_gb18030(book, tmp_path):
    url, bank = book
    path = tmp_path / "gbk.csv"
    path.write_bytes(to_csv([loan_record(n) for n in range(50)]).decode("utf-8").encode("gbk"))
    out = _import_in_child(url, path, "csv")
    assert out["outcome"] == "imported" and out["result"]["created"] == 50
    assert out["result"]["encoding"] == "GB18030"


@pytest.mark.parametrize("amount", ["1e5", "１２３", "1_000"])
def test_exponent_full_width_and_underscore_amounts_are_refused_by_row_and_column(book, tmp_path, amount):
    url, bank = book
    records = [loan_record(n) for n in range(20)]
    records[6]["amount"] = amount
    path = tmp_path / "amounts.csv"
    path.write_bytes(to_csv(records))
    before = counts(bank.engine)
    out = _import_in_child(url, path, "csv")
    assert out["outcome"] == "refused"
    [error] = out["details"]["errors"]
    assert error["line"] == 8 and error["reason"].startswith("amount: ") and amount in error["reason"]
    assert out["details"]["error_counts"] == {"amount": 1}
    assert counts(bank.engine) == before


def test_a_file_over_the_byte_cap_is_refused_before_anything_is_read(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(to_csv([loan_record(n) for n in range(100)]))
    with pytest.raises(imports.ValidationFailed, match="larger than an import accepts: at most 1,000 bytes"):
        imports.read_file(path, "csv", tabular.Limits(max_bytes=1000))


def test_a_workbook_whose_shared_strings_unpack_beyond_the_cap_is_refused(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(200):
        ws.append([loan_record(n).get(c, "") for c in HEADER])
    buf = io.BytesIO()
    wb.save(buf)
    path = tmp_path / "strings.xlsx"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            out.writestr(item, src.read(item.filename))
        out.writestr("xl/sharedStrings.xml", '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
                     'main">' + "<si><t>企业</t></si>" * 10_000 + "</sst>")  # 200 kB unpacked, 1 kB packed
    rows = imports.read_file(path, "xlsx", tabular.Limits(max_xlsx_strings_bytes=1000))
    with pytest.raises(imports.ValidationFailed, match="text cells are larger than an import accepts"):
        list(rows)


def test_progress_written_to_a_log_file_is_a_few_lines_not_one_per_update():
    log = io.StringIO()  # not a terminal
    with Progress("reading and checking", log, interval=60) as progress:
        for _ in range(100_000):
            progress.update(1000)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reading and checking: 100,000,000 rows in ")
