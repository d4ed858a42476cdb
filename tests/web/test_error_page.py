"""An unexpected error: the product's own 500 page in the user's language, with a reference found in the log."""

from __future__ import annotations

import logging
import re

from tests.web.support import login, post, set_passwords

REFERENCE = re.compile(r'id="error-reference">[^<]*<code>([0-9a-f]{8})</code>')


def _app_with_a_broken_page(bank, app_for):
    app = app_for(bank.engine)

    @app.get("/broken")
    def broken():
        raise RuntimeError("the disk is on fire")

    @app.get("/api/broken")
    def broken_api():
        raise RuntimeError("the disk is on fire")

    return app


def _reference_in(response) -> str:
    assert response.status_code == 500 and response.mimetype == "text/html"
    match = REFERENCE.search(response.get_data(as_text=True))
    assert match, "the page shows a reference"
    return match.group(1)


def _logged_with_traceback(caplog, reference: str) -> logging.LogRecord:
    record = next(r for r in caplog.records if reference in r.getMessage())
    assert record.levelno == logging.ERROR and record.exc_info and record.exc_info[0] is RuntimeError
    return record


def test_an_unexpected_error_shows_the_500_page_in_the_users_language_with_the_reference_of_its_log_line(
        bank, app_for, caplog):
    set_passwords(bank.engine)
    client = _app_with_a_broken_page(bank, app_for).test_client()
    login(client, "chair")
    with caplog.at_level(logging.ERROR):
        zh = client.get("/broken")
        post(client, "/language", {"locale": "en"})
        en = client.get("/broken")
    html = zh.get_data(as_text=True)
    assert 'id="error-page" data-status="500"' in html and "出现错误" in html and "参考编号" in html
    assert "Something went wrong" in en.get_data(as_text=True)
    first, second = _reference_in(zh), _reference_in(en)
    assert first != second, "each error has its own reference"
    record = _logged_with_traceback(caplog, first)
    assert "GET /broken" in record.getMessage()
    _logged_with_traceback(caplog, second)


def test_a_visitor_who_is_not_signed_in_gets_the_same_page(bank, app_for, caplog):
    client = _app_with_a_broken_page(bank, app_for).test_client()
    with caplog.at_level(logging.ERROR):
        reference = _reference_in(client.get("/broken"))
    _logged_with_traceback(caplog, reference)


def test_an_unexpected_error_under_api_answers_in_the_error_shape_with_the_reference(bank, app_for, caplog):
    client = _app_with_a_broken_page(bank, app_for).test_client()
    with caplog.at_level(logging.ERROR):
        r = client.get("/api/broken")
    assert r.status_code == 500 and r.json["code"] == "internal_error"
    reference = r.json["details"]["reference"]
    assert reference in r.json["message"]
    _logged_with_traceback(caplog, reference)
