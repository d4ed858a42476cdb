"""The whole lifecycle of a case in Chromium, each step done by the person whose job it is."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, select
from werkzeug.serving import make_server

from tests.factories import TODAY, hear_all, make_bank
from tests.web.support import PASSWORD, make_app, set_passwords
from workflow.db import make_engine, unit_of_work
from workflow.models import Appeal, Case, Respondent
from workflow.services import cases, rulesets

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'browser.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    bank = make_bank(engine)
    set_passwords(engine)
    app = make_app(engine, tmp_path)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", bank
    httpd.shutdown()
    thread.join(timeout=5)
    app.extensions["mianze.engine"].dispose()
    engine.dispose()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's Chromium is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


class Person:
    """One member of staff in their own browser context."""

    def __init__(self, browser, base: str, username: str):
        self.base, self.username = base, username
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        self.page = self.context.new_page()
        self.page.goto(f"{base}/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("#sign-in")
        self.page.wait_for_url(f"{base}/inbox")

    def case(self, case_id: int):
        self.page.goto(f"{self.base}/cases/{case_id}")
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def _later(engine, case_id: int, verb, days: int) -> None:
    """Let time pass: the timer's service call with a date in the future."""
    with unit_of_work(engine) as s:
        verb(s, s.get(Case, case_id), None, today=TODAY + timedelta(days=days))


@pytest.mark.browser
def test_a_case_goes_from_registration_to_closing_with_an_appeal_in_the_browser(server, browser, tmp_path):
    base, bank = server
    engine = bank.engine

    admin = Person(browser, base, "admin")
    admin.page.goto(f"{base}/cases/new")
    admin.page.fill("#loans", "L2024-0001, L2024-0002")
    admin.page.click("#register")
    admin.page.wait_for_selector("#summary")
    case_id = int(admin.page.url.rstrip("/").split("/")[-1].split("#")[0])
    admin.close()

    chair = Person(browser, base, "chair")
    page = chair.case(case_id)
    page.click("#action-assign")
    page.select_option("#investigator_id", str(bank.users["investigator"]))
    page.click("#assign")
    assert "调查中" in page.inner_text("h1")

    officer = Person(browser, base, "officer")
    assert officer.page.inner_text("#nav-waiting") == "1"
    officer.page.click(f"a[href='/cases/{case_id}']")
    officer.page.click("#action-statement")
    officer.page.fill("#statement", "本人已按规定完成贷前调查和贷后检查，借款人因市场变化经营困难，请求免责。")
    officer.page.click("#file-statement")
    assert "本人已按规定完成贷前调查" in officer.page.inner_text("#respondents")
    officer.shot("01-officer-statement")

    investigator = Person(browser, base, "investigator")
    page = investigator.case(case_id)
    with Session(engine) as s:
        officer_rid = s.exec(select(Respondent.id).where(Respondent.case_id == case_id,
                                                         Respondent.user_id == bank.users["officer"])).one()
    links = [a.get_attribute("href") for a in page.query_selector_all("a[id^='facts-']")]
    assert len(links) == 8
    for href in links:
        page.goto(base + href)
        page.fill("#findings", "经调阅贷款档案并询问经办人员，本环节业务按规定办理。")
        if f"/facts/{officer_rid}/" in href and href.endswith("/pre_loan"):
            page.check("#duty-PL03-unperformed")
            page.check("#causal-PL03")
            page.check("#violation")
            page.fill("#findings", "经查，被评议人未对照纳税记录和银行流水核实借款用途。")
            investigator.shot("02-investigator-facts")
        page.click("#save-facts")
        page.wait_for_selector("#respondents")
    hear_all(bank, case_id)  # the other respondents decline to file a statement
    page.reload()
    page.click("#action-submit")
    assert "免责认定委员会" in page.inner_text("#confirm-told")  # what will happen, before anything does
    page.click("#confirm-step")
    assert "评议中" in page.inner_text("h1")
    assert "不予免责" in page.inner_text(f"#r{officer_rid}")

    for name in ("member1", "member2", "chair"):
        voter = chair if name == "chair" else Person(browser, base, name)
        page = voter.case(case_id)
        page.click("#action-vote")
        page.wait_for_selector("select[name^='outcome_']")
        selects = page.locator("select[name^='outcome_']")
        count = selects.count()
        assert count == 3
        # No anchoring: nothing is pre-selected, and a member sees no votes before voting.
        assert [selects.nth(i).input_value() for i in range(count)] == [""] * count
        if voter is not chair:
            assert page.locator("#tally-hidden").count() == 1
            assert "不予免责 1" not in page.inner_text("#tally")
        with Session(engine) as s:  # each member agrees with the recommendation, chosen by hand
            recommended = dict(s.exec(select(Respondent.id, Respondent.recommended_outcome)
                                      .where(Respondent.case_id == case_id)).all())
        for rid, recommended_outcome in recommended.items():
            page.select_option(f"#outcome_{rid}", recommended_outcome)
        page.click("#cast-votes")
        page.wait_for_selector("#votes")
        assert page.locator("#tally-hidden").count() == 0
        page.goto(f"{base}/cases/{case_id}/vote")  # after voting the member sees the tally
        assert page.locator("#tally-hidden").count() == 0
        assert "不予免责" in page.inner_text("#tally")
        if voter is not chair:
            voter.close()
    page = chair.case(case_id)
    page.click("#action-determine")
    page.click("#sign-determination")
    page.click("#confirm-step")
    assert "已认定" in page.inner_text("h1")
    page.click("#action-issue-letters")
    page.click("#confirm-step")
    # The investigation report, the minutes and three determination letters.
    assert page.locator("#letters a[href*='/letters/'][href$='.pdf']").count() == 5
    page.click("#action-start-publicity")
    page.click("#confirm-step")
    assert "公示中" in page.inner_text("h1")
    chair.shot("03-chair-publicity")

    _later(engine, case_id, cases.end_publicity, 14)

    page = officer.case(case_id)
    page.click("#acknowledge")  # 签收: the letter is served today, the officer's window runs from today
    assert "系统签收" in page.inner_text(f"#window-{officer_rid}")
    page.click("#action-appeal")
    page.fill("#grounds", "违规情节系系统故障所致，已补充材料，请求变更为减责。")
    evidence = tmp_path / "补充材料.pdf"
    evidence.write_bytes(b"%PDF-1.4\n% evidence for the appeal\n")
    page.set_input_files("#file", str(evidence))
    page.click("#file-appeal")
    assert "违规情节系系统故障所致" in page.inner_text("#appeals")
    officer.shot("04-officer-appeal")
    page = chair.case(case_id)  # the chair hands the other respondents their letters in person
    with Session(engine) as s:
        others = s.exec(select(Respondent.id).where(Respondent.case_id == case_id,
                                                    Respondent.id != officer_rid)).all()
    for rid in others:
        page.click(f"#serve-{rid}")
        page.wait_for_selector(f"#window-{rid}")
        assert "直接送达" in page.inner_text(f"#window-{rid}")

    _later(engine, case_id, cases.close_appeal_window, 30)

    with Session(engine) as s:
        appeal_id = s.exec(select(Appeal.id).where(Appeal.case_id == case_id)).one()
    for member in ("appeal", "appeal2", "appeal_chair"):  # the panel votes, each on its own page
        reviewer = Person(browser, base, member)
        page = reviewer.case(case_id)
        page.click(f"#appeal-vote-{appeal_id}")
        page.check("#altered")
        page.select_option("#new_outcome", "reduced")
        page.fill("#reason", "情节轻微")
        page.click("#vote")
        if member != "appeal_chair":
            reviewer.close()
    page.click(f"#decide-{appeal_id}")  # the chair signs what the votes carry
    page.fill("#reason", "违规系系统故障所致，情节轻微，变更为减责。")
    page.click("#decide")
    page.click("#action-conclude")
    assert "认定生效" in page.inner_text("h1")
    reviewer.close()

    page = chair.case(case_id)
    page.click("#action-refer")  # the accountability page's referral form
    page.fill("#reference", "郑分人〔2026〕7号")
    page.click("#refer-submit")
    page.click("#confirm-step")
    page.click("#action-close")
    page.click("#confirm-step")
    assert "已结案" in page.inner_text("h1")
    chair.close()

    auditor = Person(browser, base, "auditor")
    page = auditor.page
    page.goto(f"{base}/inbox?tab=all")
    page.fill("#q", "L2024-0002")
    page.click("#apply-filters")
    page.click(f"a[href='/cases/{case_id}']")
    assert "已结案" in page.inner_text("h1")
    timeline = page.inner_text("#timeline")
    for event in ("已立案", "已提交陈述", "已记录事实", "已认定", "已提出申诉", "申诉已复核", "已移交问责"):
        assert event in timeline
    auditor.shot("05-auditor-finds-case")
    with Session(engine) as s:
        r = s.get(Respondent, officer_rid)
        assert (r.decided_outcome, r.final_outcome) == ("liable", "reduced")
    auditor.close()
    officer.close()
    investigator.close()
