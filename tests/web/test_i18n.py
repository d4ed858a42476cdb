"""Translations: complete catalogues for zh_CN and en that cover every page, and pages in both languages."""

from __future__ import annotations

import re
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


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _translated(string) -> bool:
    """A message has a translation: every plural form too."""
    return all(string) if isinstance(string, tuple) else bool(string)


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_message_of_the_ui_is_translated_and_compiled(tmp_path, locale):
    wanted = _extracted(tmp_path)
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as f:
        catalog = [m for m in read_po(f) if m.id]
    po = {m.id: m.string for m in catalog}
    with (folder / "messages.mo").open("rb") as f:
        mo = {_hashable(m.id): _hashable(m.string) for m in read_mo(f) if m.id}
    assert sorted(map(str, wanted - {k for k, v in po.items() if _translated(v)})) == []
    assert sorted(str(m.id) for m in catalog if m.fuzzy) == []
    assert {k: v for k, v in po.items() if k in wanted} == {k: v for k, v in mo.items() if k in wanted}


def _extraction_patterns() -> list[tuple[str, str]]:
    """(method, pattern) of each section of babel.cfg."""
    import configparser

    cfg = configparser.RawConfigParser()
    cfg.read(ROOT / "babel.cfg", encoding="utf-8")
    return [tuple(part.strip() for part in section.split(":", 1)) for section in cfg.sections()]


def test_every_page_template_and_every_module_using_babel_is_extracted():
    from babel.util import pathmatch

    patterns = _extraction_patterns()
    templates = [p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.html")
                 if "letters" not in p.parts]  # letters have their own labels (templates/letters/labels.json)
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "workflow").rglob("*.py")
               if "flask_babel import" in p.read_text(encoding="utf-8")
               and "gettext" in p.read_text(encoding="utf-8")]
    assert "workflow/web/audit.py" in modules and "workflow/web/dashboard.py" in modules
    assert [t for t in templates if not any(m == "jinja2" and pathmatch(p, t) for m, p in patterns)] == []
    assert [m for m in modules if not any(k == "python" and pathmatch(p, m) for k, p in patterns)] == []


def test_no_page_translates_through_a_helper_of_its_own():
    from workflow.web import audit as web_audit
    from workflow.web import dashboard as web_dashboard

    assert not hasattr(web_audit, "t") and not hasattr(web_dashboard, "t")
    for page in (ROOT / "templates").rglob("*.html"):
        if "letters" in page.parts:  # letters take their labels from templates/letters/labels.json
            continue
        assert not re.search(r"\bt\(\s*['\"]", page.read_text(encoding="utf-8")), page


def test_every_guard_message_of_the_state_machine_has_a_translation():
    from workflow.domain.states import GUARDS, Detailed
    from workflow.web.messages import KNOWN

    heads = [m.head if isinstance(m, Detailed) else m for _, m in GUARDS.values()]
    assert sorted(m for m in heads if m not in KNOWN) == []


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
    assert "Respondents" in en and "Timeline" in en and "CNY 1,000,000.00" in en and "1,000,000.00 元" not in en
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


def test_people_in_different_languages_see_their_own_on_the_same_server(bank, app_for):
    """Two users whose requests alternate on one server each read every text, fixed or with variables, in
    their own language."""
    set_passwords(bank.engine)
    case_id = drive(bank, "under_review")
    app = app_for(bank.engine)
    chinese, english = app.test_client(), app.test_client()
    login(chinese, "chair")
    login(english, "auditor")
    post(english, "/language", {"locale": "en"})
    for _ in range(2):
        zh = chinese.get(f"/cases/{case_id}").get_data(as_text=True)
        en = english.get(f"/cases/{case_id}").get_data(as_text=True)
        assert "被评议人" in zh and "Respondents" not in zh  # a fixed text
        assert "Respondents" in en and "被评议人" not in en
        number = zh.split("<title>", 1)[1].split(" ", 1)[0]
        assert f"案件 {number}" in zh and f"Case {number}" in en  # a text with a variable


def test_translated_texts_escape_their_variables(sqlite_url, app_for):
    """`_('…%(x)s', x=…)` in an autoescaped template (Jinja's new-style gettext): the variable is escaped into
    the translation, and a fixed text is translated."""
    from jinja2 import DictLoader
    from sqlmodel import create_engine

    app = app_for(create_engine(sqlite_url))
    env = app.jinja_env.overlay(loader=DictLoader({"t.html": "{{ _('Case %(number)s', number=n) }}|{{ _('Loans') }}"}))
    with app.test_request_context():  # nobody signed in: Chinese
        assert env.get_template("t.html").render(n="<b>&") == "案件 &lt;b&gt;&amp;|贷款"


def test_a_fixed_text_with_a_percent_sign_reads_as_one(bank, app_for):
    """`_('SME NPL ratio (%%)')` is formatted like any gettext text, so the page shows one "%"."""
    client = _signed_in(bank, app_for, "admin")
    zh = client.get("/admin/tolerance").get_data(as_text=True)
    post(client, "/language", {"locale": "en"})
    en = client.get("/admin/tolerance").get_data(as_text=True)
    assert "普惠型小微企业贷款不良率（%）" in zh and "SME NPL ratio (%)" in en and "%%" not in zh + en


# --- audit and dashboard pages ----------------------------------------------------------------------------

def _signed_in(bank, app_for, username: str):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, username).status_code == 302
    return client


def test_the_audit_pages_render_in_chinese_by_default_and_in_english_when_chosen(bank, app_for):
    drive(bank, "registered")
    client = _signed_in(bank, app_for, "auditor")
    zh = client.get("/audit/").get_data(as_text=True)
    assert [text for text in ("内部审计", "导出记录", "案件及相关记录", "证据包", "生成并下载", "导出完整身份证号和电话号码",
                                       "立案起始日", "调查中", "不予免责") if text not in zh] == []
    log = client.get("/audit/access-log").get_data(as_text=True)
    assert "访问日志" in log and re.search(r'id="access-log-total">共 \d+ 条<', log) and "登录" in log and "筛选" in log
    post(client, "/language", {"locale": "en"})
    en = client.get("/audit/").get_data(as_text=True)
    assert [text for text in ("Internal audit", "Export records", "Cases and related records",
                                       "Evidence bundle", "Build and download", "Opened from", "Investigating",
                                       "Liable") if text not in en] == []
    assert [text for text in ("导出记录", "证据包", "生成并下载", "调查中") if text in en] == []
    log = client.get("/audit/access-log").get_data(as_text=True)
    assert "Access log" in log and "Signed in" in log and "Filter" in log and "访问日志" not in log
    assert re.search(r'id="access-log-total">Entries: \d+<', log)
    bad = client.get("/audit/access-log?case_id=x")
    assert bad.status_code == 400 and "whole numbers" in bad.get_data(as_text=True)


def test_every_access_log_action_has_a_label():
    from workflow.services import access_log
    from workflow.web.audit import ACTION_LABELS

    assert sorted(set(access_log.ACTIONS) - set(ACTION_LABELS)) == []


def test_the_dashboard_renders_in_chinese_by_default_and_in_english_when_chosen(bank, app_for, monkeypatch):
    from workflow.domain.calendar import year_not_covered_warning
    from workflow.services import deadlines
    from workflow.web import dashboard as web_dashboard

    warning = deadlines._warning_dict(year_not_covered_warning(2031), 2)
    monkeypatch.setattr(web_dashboard.deadlines, "calendar_warnings", lambda s: [warning])
    drive(bank, "under_review")
    client = _signed_in(bank, app_for, "admin")
    zh = client.get("/dashboard/").get_data(as_text=True)
    assert [text for text in ("仪表盘", "主要指标", "免责比例", "各状态案件数", "评议中", "不良容忍度", "下载 Excel",
                                       "下辖机构逾期事项", "工作日历提醒", "（已设置 2 天）", "2031年：无官方节假日数据") if text not in zh] == []
    assert 'data-figure="Cases">1<' in zh and "<h1>仪表盘 · 总行</h1>" in zh
    post(client, "/language", {"locale": "en"})
    en = client.get("/dashboard/").get_data(as_text=True)
    assert [text for text in ("Dashboard", "Headline figures", "Exemption ratio", "Cases by state",
                                       "Under review", "NPL tolerance", "Download XLSX", "(days overridden: 2)",
                                       "2031: no official holiday data") if text not in en] == []
    assert 'data-figure="Cases">1<' in en and "<h1>Dashboard · HO</h1>" in en
    assert [text for text in ("主要指标", "免责比例", "评议中", "工作日历提醒") if text in en] == []
    bad = client.get("/dashboard/?start=2026-13-01")
    assert bad.status_code == 400 and "is not a date" in bad.get_data(as_text=True)


def test_the_headline_labels_in_chinese_are_those_of_the_xlsx_download(bank, app_for):
    from flask_babel import force_locale

    from workflow.services import metrics
    from workflow.web.dashboard import SUMMARY_LABELS, summary_label

    app = app_for(bank.engine)
    empty = {"cases": 0, "outcomes": dict.fromkeys(("respondents", "exempt", "reduced", "liable", "exemption_ratio",
                                                    "reduced_ratio"), 0),
             "determination_days": dict.fromkeys(("cases", "median", "p90"), 0),
             "within_one_year": dict.fromkeys(("counted", "within", "share"), 0),
             "appeals": dict.fromkeys(("filed", "decided", "altered", "altered_share"), 0),
             "deviations": dict.fromkeys(("deviated", "share"), 0)}
    rows = metrics.summary_rows(empty)
    assert sorted({en for _, en, _, _ in rows} - set(SUMMARY_LABELS)) == []
    with app.test_request_context(), force_locale("zh_CN"):
        assert [summary_label(en) for _, en, _, _ in rows] == [zh for zh, _, _, _ in rows]


def test_the_top_bar_names_the_users_branch_in_their_language(bank, app_for):
    client = _signed_in(bank, app_for, "chair")
    assert "周九 · 一分行" in client.get("/inbox").get_data(as_text=True)
    post(client, "/language", {"locale": "en"})
    page = client.get("/inbox").get_data(as_text=True)
    assert "周九 · T1" in page and "周九 · 一分行" not in page


@pytest.mark.parametrize("locale_name", ["zh_CN", "en"])
def test_moments_read_as_babel_formats_them_in_the_users_time_zone(monkeypatch, locale_name):
    import random
    from datetime import UTC, datetime, timedelta

    import pytz
    from babel import Locale
    from babel import dates as babel_dates

    from workflow.web import i18n

    locale, zone = Locale.parse(locale_name), pytz.timezone("Asia/Shanghai")
    monkeypatch.setattr(i18n, "_locale_and_zone", lambda: (locale, zone))
    rnd = random.Random(7)
    for _ in range(2000):  # the patterns are used directly: the text must be Babel's own
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rnd.randrange(3 * 365 * 86400))
        local = zone.normalize(moment.astimezone(zone))
        assert i18n.fmt_datetime(moment) == babel_dates.format_datetime(local, "medium", locale=locale)
        assert i18n.fmt_datetime(moment.replace(tzinfo=None)) == i18n.fmt_datetime(moment)  # naive is UTC
    # A case opened at 20:00 UTC was opened the next day in Beijing: lists show that day.
    evening = datetime(2026, 3, 4, 20, 0, tzinfo=UTC)
    assert i18n.fmt_date(evening) == i18n.fmt_date(evening.replace(tzinfo=None)) \
        == babel_dates.format_date(datetime(2026, 3, 5).date(), "medium", locale=locale)
