"""A case to print and keep, in Chromium: the case page printed to PDF (Chromium's print, the print
stylesheet: no navigation, no forms), and the case file downloaded from the page as one PDF."""

from __future__ import annotations

import io
import threading

import pytest
from pypdf import PdfReader
from sqlmodel import Session, SQLModel
from werkzeug.serving import make_server

from tests.browser.test_lifecycle import Person, browser  # noqa: F401  (the fixture)
from tests.factories import drive, liable_officer, make_bank
from tests.letters_text import pdf_text
from tests.web.support import make_app, set_passwords
from workflow.db import make_engine, unit_of_work
from workflow.models import Case
from workflow.services import rulesets


@pytest.fixture
def final_case(tmp_path):
    """A final case with an appeal (set up before the browser: signing runs an event loop of its own)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'file.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine)
    case_id = drive(bank, "final", facts_for=liable_officer)
    set_passwords(engine)
    app = make_app(engine, tmp_path)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with Session(engine) as s:
        number = s.get(Case, case_id).number
    yield f"http://127.0.0.1:{httpd.server_port}", case_id, number
    httpd.shutdown()
    app.extensions["mianze.engine"].dispose()
    engine.dispose()


@pytest.mark.browser
def test_the_case_page_prints_and_the_case_file_downloads_as_one_pdf(final_case, browser, tmp_path):  # noqa: F811
    base, case_id, number = final_case
    chair = Person(browser, base, "chair")
    page = chair.case(case_id)
    page.emulate_media(media="print")
    printed = page.pdf(format="A4")
    text = "".join(pdf_text(printed).split())
    assert number in text and "被评议人" in text and "办理记录" in text
    assert "我的待办" not in text and "退出" not in text  # the navigation is not printed
    assert "下载案件卷宗" not in text  # nor the page's own links and buttons
    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.click("#case-file")
    path = tmp_path / "file.pdf"
    download.value.save_as(path)
    body = path.read_bytes()
    assert len(PdfReader(io.BytesIO(body)).pages) >= 8
    flat = "".join(pdf_text(body).split())
    assert "案件卷宗" in flat and "卷内目录" in flat and "尽职免责认定书" in flat and "证据材料清单" in flat
    chair.close()
