"""The case page says which committee decides the case and why (issue 19, point 8), in Chinese and English;
a registrar whose branch loses the case to a committee above is told where it went."""

from __future__ import annotations

from sqlmodel import Session, select

from tests.authority_support import HEAD_OFFICE_TIER, add_head_office_committee, publish_tiers
from tests.factories import open_case
from tests.web.support import login, post, set_passwords
from workflow.models import Case, User


def _client(bank, app_for, username):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, username)
    return client


def test_the_case_page_says_head_office_decides_and_why(bank, app_for):
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    case_id = open_case(bank)
    page = _client(bank, app_for, "ho_chair").get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="authority"' in page
    assert "总行评议委员会" in page
    assert "贷款总额超过150万元的案件由总行尽职免责评议委员会认定" in page and "HO15" in page
    assert "一网点" in page and "网点" in page and "2,000,000.00 元" in page
    assert "银行政策" in page


def test_in_english_the_case_page_gives_the_reason_in_english(bank, app_for):
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        user = s.exec(select(User).where(User.username == "ho_chair")).one()
        user.locale = "en"
        s.add(user)
        s.commit()
    page = _client(bank, app_for, "ho_chair").get(f"/cases/{case_id}").get_data(as_text=True)
    assert "The committee of HO" in page
    assert "decided by head office&#39;s committee" in page or "decided by head office's committee" in page
    assert "the loans are booked at OU (Outlet), total loan amount CNY 2,000,000.00" in page


def test_a_tier1_chair_who_registers_a_case_for_head_office_is_told_where_it_went(bank, app_for):
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    client = _client(bank, app_for, "chair")
    response = post(client, "/cases/new", {"loans": "L2024-0001 L2024-0002"})
    assert response.status_code == 302 and "/cases/" not in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "案件已登记至有认定权限的总行评议委员会" in page
    with Session(bank.engine) as s:
        assert s.exec(select(Case)).one().branch_id == bank.branches["HO"]


def test_a_case_registered_before_delegated_authority_shows_its_branch_without_a_reason(bank, app_for):
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        case.authority, case.origin_branch_id = None, None
        s.add(case)
        s.commit()
    page = _client(bank, app_for, "chair").get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="authority"' in page and "一分行" in page and "HO15" not in page


def test_the_rule_set_page_lists_the_authority_tiers(bank, app_for):
    publish_tiers(bank, HEAD_OFFICE_TIER)
    with Session(bank.engine) as s:
        from workflow.models import RuleSetVersion

        version = s.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())).first().version
    page = _client(bank, app_for, "admin").get(f"/admin/rulesets/{version}").get_data(as_text=True)
    assert 'id="authority"' in page and "认定权限" in page and "HO15" in page
    assert "超过 1,500,000.00 元" in page and "总行" in page and "银行政策" in page


def test_registering_from_the_intake_list_for_head_office_says_where_the_case_went(bank, app_for):
    add_head_office_committee(bank)
    publish_tiers(bank, HEAD_OFFICE_TIER)
    client = _client(bank, app_for, "chair")
    response = post(client, f"/intake/{bank.enterprise_id}/register")
    assert response.status_code == 302 and "/intake" in response.headers["Location"]
    assert "案件已登记至有认定权限的总行评议委员会" in client.get(response.headers["Location"]).get_data(as_text=True)
