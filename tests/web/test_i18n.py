"""Translations: complete catalogues for zh_CN and en, and pages in both languages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.factories import drive
from tests.web.support import login, post, set_passwords

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "workflow" / "translations"


def _extracted(tmp_path) -> set[str]:
    pot = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F", str(ROOT / "babel.cfg"), "-k", "_l",
                    "--no-location", "-o", str(pot), str(ROOT)], check=True, capture_output=True, cwd=ROOT)
    with pot.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_message_of_the_ui_is_translated_and_compiled(tmp_path, locale):
    wanted = _extracted(tmp_path)
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with (folder / "messages.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert sorted(wanted - {k for k, v in po.items() if v}) == []
    assert {k: v for k, v in po.items() if k in wanted} == {k: v for k, v in mo.items() if k in wanted}


def test_every_guard_message_of_the_state_machine_has_a_translation():
    from workflow.domain.states import GUARDS
    from workflow.web.messages import KNOWN

    assert sorted(m for _, m in GUARDS.values() if m not in KNOWN) == []


@pytest.mark.parametrize("state", ["under_review", "final"])
def test_the_case_page_renders_in_chinese_by_default_and_in_english_when_chosen(bank, app_for, state):
    set_passwords(bank.engine)
    case_id = drive(bank, state)
    client = app_for(bank.engine).test_client()
    login(client, "chair")
    zh = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "被评议人" in zh and "办理记录" in zh and "1,000,000.00 元" in zh
    post(client, "/language", {"locale": "en", "next": f"/cases/{case_id}"})
    en = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Respondents" in en and "Timeline" in en and "1,000,000.00 元" in en
    assert "被评议人" not in en
    again = client.application.test_client()  # the choice is stored on the user, not in the session
    login(again, "chair")
    assert "Respondents" in again.get(f"/cases/{case_id}").get_data(as_text=True)


def test_dates_follow_the_users_language(bank, app_for):
    set_passwords(bank.engine)
    case_id = drive(bank, "registered")
    client = app_for(bank.engine).test_client()
    login(client, "chair")
    assert "年" in client.get(f"/cases/{case_id}").get_data(as_text=True)
    post(client, "/language", {"locale": "en"})
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert any(month in page for month in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                           "Nov", "Dec"))
