"""Helpers of the delegated-authority and stand-in tests: a head-office committee and a rule set whose tier
sends cases above 1.5 million yuan of loans to it."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from tests.factories import Bank, hear_all, record_all_facts
from workflow.db import unit_of_work
from workflow.models import Case, Respondent, RuleSetVersion, User
from workflow.services import cases, rulesets

HEAD_OFFICE_TIER = {"code": "HO15", "branch_levels": [1, 2, 3], "over_amount": "1500000", "committee_level": 0,
                    "zh": "贷款总额超过150万元的案件由总行尽职免责评议委员会认定",
                    "en": "Cases whose loans total more than 1.5 million yuan are decided by head office's committee"}
HEAD_OFFICE_COMMITTEE = (("ho_member1", "总委甲", "committee_member"), ("ho_member2", "总委乙", "committee_member"),
                         ("ho_chair", "总主任", "committee_chair"))


def add_head_office_committee(bank: Bank) -> None:
    """Two members and a chair of head office's committee (the factory bank has none)."""
    with unit_of_work(bank.engine) as s:
        for n, (username, name, role) in enumerate(HEAD_OFFICE_COMMITTEE):
            u = User(username=username, name=name, employee_no=f"H{2000 + n}", branch_id=bank.branches["HO"],
                     roles=role)
            s.add(u)
            s.flush()
            bank.users[username] = u.id


def publish_tiers(bank: Bank, *tiers: dict, effective_from: date = date(2025, 1, 1)) -> None:
    """Publish a rule-set version like the one in force with these authority tiers."""
    with unit_of_work(bank.engine) as s:
        current = s.exec(select(RuleSetVersion).order_by(RuleSetVersion.version.desc())).first()
        data = {**current.data, "version": "tiers-test"}
        data["authority"] = {**rulesets.parsed(current).authority_rules.model_dump(mode="json"), "tiers": list(tiers)}
        rulesets.publish(s, bank.user(s, "admin"), data, effective_from, note="authority tiers")


def to_review(bank: Bank, case_id: int, assigner: str = "chair") -> None:
    """Assign the investigator (by `assigner`), record clean facts and submit the investigation."""
    with unit_of_work(bank.engine) as s:
        cases.assign_investigator(s, s.get(Case, case_id), bank.user(s, assigner), bank.users["investigator"])
    record_all_facts(bank, case_id)
    hear_all(bank, case_id)
    with unit_of_work(bank.engine) as s:
        cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"))


def respondent_ids(s, case_id: int) -> list[int]:
    return list(s.exec(select(Respondent.id).where(Respondent.case_id == case_id).order_by(Respondent.id)))


def add_deputy(bank: Bank, username: str = "deputy", name: str = "许代", branch: str = "T1", roles: str = "") -> int:
    """A member of staff of a branch with no committee seat: a stand-in to be."""
    with unit_of_work(bank.engine) as s:
        u = User(username=username, name=name, employee_no=f"D{3000 + len(bank.users)}",
                 branch_id=bank.branches[branch], roles=roles)
        s.add(u)
        s.flush()
        bank.users[username] = u.id
        return u.id
