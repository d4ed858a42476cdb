"""Hostile and foreign import files: strict amounts, GBK CSV, an XLSX whose dimension understates its rows."""

from __future__ import annotations

import pytest
from openpyxl import Workbook

from tests.api.test_imports import HEADER, counts, loan_record, run_import, to_csv
from workflow.services import imports


@pytest.mark.parametrize("amount", ["1e5", "１２３", "1_000", "12,34", "-5", "5.001", "0x10", "٣"])
def test_an_amount_that_is_not_plain_digits_is_refused_with_its_line_and_nothing_is_written(bank, amount):
    records = [loan_record(n) for n in range(3)]
    records[1]["balance"] = amount
    before = counts(bank.engine)
    with pytest.raises(imports.ImportRejected) as rejected:
        run_import(bank.engine, to_csv(records))
    assert [e["line"] for e in rejected.value.details["errors"]] == [3]
    assert "balance" in rejected.value.details["errors"][0]["reason"]
    assert counts(bank.engine) == before


def test_thousands_separators_and_two_decimals_are_accepted(bank):
    records = [loan_record(n) for n in range(2)]
    records[0]["balance"] = "1,234,567.89"
    records[1]["amount"] = "1000000"
    run_import(bank.engine, to_csv(records))


def test_a_gbk_csv_as_excel_writes_it_on_chinese_windows_imports(bank):
    records = [loan_record(n) for n in range(5)]
    data = to_csv(records).decode("utf-8").encode("gbk")
    result = run_import(bank.engine, data)
    assert (result.created, result.encoding) == (5, "GB18030")
    assert list(imports.read_file(data, "csv"))[0][1]["enterprise"]["name"] == "企业0"


@pytest.mark.parametrize(("bom", "said"), [(b"", "UTF-8"), (b"\xef\xbb\xbf", "UTF-8 with BOM")])
def test_a_utf8_csv_with_or_without_a_bom_imports_and_says_which(sqlite_engine, bom, said):
    from tests.factories import make_bank

    bank = make_bank(sqlite_engine)
    result = run_import(bank.engine, bom + to_csv([loan_record(n) for n in range(2)]))
    assert (result.created, result.encoding) == (2, said)


@pytest.fixture
def runner(sqlite_url):
    from tests.factories import make_bank
    from workflow import create_app, engine_of
    from workflow.db import unit_of_work
    from workflow.migrate import upgrade
    from workflow.services import rulesets

    upgrade(sqlite_url)
    app = create_app({"DATABASE_URL": sqlite_url, "TESTING": True})
    with unit_of_work(engine_of(app)) as s:
        rulesets.ensure_default(s)
    make_bank(engine_of(app))
    yield app.test_cli_runner()
    engine_of(app).dispose()


def test_the_cli_says_which_encoding_it_read_a_gbk_csv_in(tmp_path, runner):
    path = tmp_path / "loans.csv"
    path.write_bytes(to_csv([loan_record(n) for n in range(3)]).decode("utf-8").encode("gbk"))
    out = runner.invoke(args=["import", "loans", str(path)])
    assert out.exit_code == 0, out.output
    assert "imported 3 rows: 3 created" in out.output and "read as GB18030 (which includes GBK)" in out.output


def test_a_csv_in_neither_utf8_nor_gb18030_is_refused():
    with pytest.raises(imports.ValidationFailed, match="neither UTF-8 nor GB18030"):
        imports.read_file(b"loan_no\n\x81\x20\xff\n", "csv")


def test_an_xlsx_whose_dimension_understates_its_rows_imports_every_row(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(10):
        ws.append([loan_record(n).get(c, "") for c in HEADER])
    path = tmp_path / "short.xlsx"
    wb.save(path)
    # Rewrite the stored dimension to claim 3 rows, as some producers write it.
    import zipfile
    src = zipfile.ZipFile(path)
    out_path = tmp_path / "understated.xlsx"
    with zipfile.ZipFile(out_path, "w") as out:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = body.decode()
                start = text.index('<dimension ref="')
                end = text.index('"', start + len('<dimension ref="'))
                body = (text[:start] + '<dimension ref="A1:T4' + text[end:]).encode()
            out.writestr(item, body)
    from openpyxl import load_workbook
    declared = load_workbook(out_path, read_only=True)
    assert declared.worksheets[0].max_row == 4  # what a reader trusting the dimension would stop at
    declared.close()
    rows = imports.read_file(out_path.read_bytes(), "xlsx")
    assert len(list(rows)) == 10
