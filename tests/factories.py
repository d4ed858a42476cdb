"""Small factories for tests: build a bank with overrides, and drive a case to any state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlmodel import Session, select

from workflow.db import unit_of_work
from workflow.models import Branch, Case, Enterprise, Loan, LoanStage, Respondent, User

TODAY = date.today()  # services stamp real UTC times, so test dates follow the clock


@dataclass
class Bank:
    engine: object
    branches: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    loans: list[int] = field(default_factory=list)
    enterprise_id: int | None = None

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def user(self, s: Session, name: str) -> User:
        return s.get(User, self.users[name])


def add_branch(s: Session, code: str, name: str, level: int, parent: Branch | None) -> Branch:
    b = Branch(code=code, name=name, name_en=code, level=level, parent_id=parent.id if parent else None)
    s.add(b)
    s.flush()
    b.path = (parent.path if parent else "/") + f"{b.id}/"
    s.add(b)
    s.flush()
    return b


def make_bank(engine, n_loans: int = 2, loans_per_enterprise: int | None = None) -> Bank:
    """Head office → tier-1 branch → sub-branch → outlet; staff of every role; enterprises with NPLs.

    All loans belong to one enterprise unless `loans_per_enterprise` says how many each enterprise has
    (an enterprise may have only one open case, so tests that open several cases give each its own).
    """
    bank = Bank(engine)
    with unit_of_work(engine) as s:
        ho = add_branch(s, "HO", "总行", 0, None)
        t1 = add_branch(s, "T1", "一分行", 1, ho)
        sb = add_branch(s, "SB", "一支行", 2, t1)
        ou = add_branch(s, "OU", "一网点", 3, sb)
        t2 = add_branch(s, "T2", "二分行", 1, ho)
        bank.branches = {"HO": ho.id, "T1": t1.id, "SB": sb.id, "OU": ou.id, "T2": t2.id}
        people = [
            ("officer", "张三", ou, "credit_officer"),
            ("reviewer", "李四", sb, "credit_officer"),
            ("approver", "王五", t1, "credit_officer"),
            ("investigator", "赵六", t1, "investigator"),
            ("member1", "钱七", t1, "committee_member"),
            ("member2", "孙八", t1, "committee_member"),
            ("chair", "周九", t1, "committee_chair"),
            ("appeal", "吴十", ho, "appeal_reviewer"),
            ("appeal2", "陈复", ho, "appeal_reviewer"),
            ("appeal_chair", "韩主任", ho, "appeal_chair"),
            ("auditor", "郑审", ho, "auditor"),
            ("admin", "管理员", ho, "admin"),
            ("other_member", "冯委", t2, "committee_member"),
        ]
        for i, (username, name, branch, roles) in enumerate(people):
            u = User(username=username, name=name, employee_no=f"E{1000 + i}", branch_id=branch.id, roles=roles,
                     id_number=f"11010119800101{1000 + i}", phone=f"1380000{1000 + i}")
            s.add(u)
            s.flush()
            bank.users[username] = u.id
        ent = Enterprise(name="示范小微制造有限公司", uscc="91110000MA0000001X", kind="small", owner_name="刘老板")
        s.add(ent)
        s.flush()
        bank.enterprise_id = ent.id
        for n in range(n_loans):
            if loans_per_enterprise and n and n % loans_per_enterprise == 0:
                ent = Enterprise(name=f"示范小微企业{n:04d}", uscc=f"91110000MB{n:07d}X", kind="small",
                                 owner_name="刘老板")
                s.add(ent)
                s.flush()
            lo = Loan(loan_no=f"L2024-{n + 1:04d}", enterprise_id=ent.id, branch_id=ou.id, product_class="inclusive_sme",
                      credit_total=Decimal("3000000"), amount=Decimal("1000000"), balance=Decimal("800000.50"),
                      start_date=date(2024, 9, 1), maturity_date=date(2025, 9, 1), classification="substandard")
            s.add(lo)
            s.flush()
            bank.loans.append(lo.id)
            for stage, who, day in (("pre_loan", "officer", 10), ("review", "reviewer", 15),
                                    ("approval", "approver", 20), ("post_loan", "officer", 60)):
                s.add(LoanStage(loan_id=lo.id, stage=stage, user_id=bank.users[who],
                                performed_on=date(2024, 8, 1) + timedelta(days=day)))
        s.flush()
    return bank


FINDINGS = "经查阅贷款档案并询问经办人员，本环节业务按规定办理，未发现违规或未履职情形。"


def clean_facts(stage: str) -> dict:
    """The facts of a stage where nothing is wrong, with their written findings (a stage is recorded only
    with findings)."""
    return {"positive": [], "mitigating": [], "negative": [], "violation": False, "unperformed": [],
            "dissented": False, "findings": FINDINGS}


def open_case(bank: Bank, today: date = TODAY, loan_ids: list[int] | None = None, batch: bool = False) -> int:
    """Register a case for `loan_ids` (default: every loan of the bank); `batch`: with a batch report."""
    from workflow.services import cases

    with unit_of_work(bank.engine) as s:
        case = cases.open_case(s, bank.user(s, "admin"), loan_ids or bank.loans, today=today, batch_report=batch)
        return case.id


def record_all_facts(bank: Bank, case_id: int, facts_for=None, today: date = TODAY,
                     loan_ids: list[int] | None = None) -> None:
    from workflow.services import investigation

    with unit_of_work(bank.engine) as s:
        inv = bank.user(s, "investigator")
        for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
            for a in s.exec(select(LoanStage).where(LoanStage.user_id == r.user_id,
                                                    LoanStage.loan_id.in_(loan_ids or bank.loans))):
                facts = (facts_for or (lambda r, a: clean_facts(a.stage)))(r, a)
                facts.setdefault("findings", FINDINGS)  # a stage is recorded only with its findings
                investigation.record_facts(s, s.get(Case, case_id), inv, r.id, a.loan_id, a.stage, facts)


def hear_all(bank: Bank, case_id: int) -> None:
    """Every respondent who has not filed a statement declines to (so that the investigation may be
    submitted before their deadline)."""
    from workflow.services import cases

    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)).all():
            if r.statement_at is None and r.statement_declined_at is None:
                cases.decline_statement(s, case, s.get(User, r.user_id))


def liable_officer(r, a) -> dict:
    """Facts that make the pre-loan officer liable (a violation and a causal unperformed duty)."""
    facts = clean_facts(a.stage)
    if a.stage == "pre_loan":
        facts.update(violation=True, unperformed=[{"duty": "PL03", "causal": True}],
                     findings="经查，经办人未对照纳税记录和银行流水核实借款用途，借款资金被挪用于民间借贷。")
    return facts


def serve_letters(bank: Bank, case_id: int, day: date = TODAY, method: str = "in_person") -> list[int]:
    """Record the service of every current, unserved determination letter of the case on `day` (the chair
    hands them over); returns the letter ids served."""
    from workflow.services import letters

    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        served = []
        for w in letters.appeal_windows(s, case).values():
            if w.letter_id is not None and w.service_id is None:
                letters.record_service(s, case, bank.user(s, "chair"), w.letter_id, method, day,
                                       served_by="周九", today=day)
                served.append(w.letter_id)
        return served


PANEL = ("appeal", "appeal2", "appeal_chair")


def decide_appeal_by_panel(bank: Bank, s: Session, case, appeal_id: int, decision: str, new_outcome: str | None,
                           reason: str, *, today: date | None = None, panel=PANEL):
    """The head-office appeal panel votes (each member the same way) and its chair signs what the votes carry."""
    from workflow.services import cases

    for member in panel:
        cases.record_appeal_vote(s, case, bank.user(s, member), appeal_id, decision, new_outcome, reason)
    return cases.decide_appeal(s, case, bank.user(s, "appeal_chair"), appeal_id, reason, today=today)


def drive(bank: Bank, target: str, today: date = TODAY, facts_for=None, appeal: bool = True,
          loan_ids: list[int] | None = None, existing: int | None = None) -> int:
    """Open a case for `loan_ids` (default: every loan), or take the `existing` registered case, and drive it
    through the services to `target`. Letters are served when publicity ends (the appeal windows run from
    that day)."""
    from workflow.services import cases

    if target == "referred" and facts_for is None:
        facts_for = liable_officer

    case_id = existing or open_case(bank, today, loan_ids)
    if target == "registered":
        return case_id

    with unit_of_work(bank.engine) as s:
        cases.assign_investigator(s, s.get(Case, case_id), bank.user(s, "chair"), bank.users["investigator"],
                                  today=today)
    if target == "investigating":
        return case_id
    record_all_facts(bank, case_id, facts_for, today, loan_ids)
    hear_all(bank, case_id)
    with unit_of_work(bank.engine) as s:
        cases.submit_investigation(s, s.get(Case, case_id), bank.user(s, "investigator"), today=today)
    if target == "under_review":
        return case_id
    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for member in ("member1", "member2", "chair"):
            for r in s.exec(select(Respondent).where(Respondent.case_id == case_id)):
                cases.record_vote(s, case, bank.user(s, member), r.id, r.recommended_outcome)
        cases.determine(s, case, bank.user(s, "chair"), today=today)
    if target == "determined":
        return case_id
    from workflow.services import letters

    with unit_of_work(bank.engine) as s:
        letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"), today=today)
        cases.start_publicity(s, s.get(Case, case_id), bank.user(s, "chair"), today=today)
    if target == "in_publicity":
        return case_id
    later = today + timedelta(days=14)
    with unit_of_work(bank.engine) as s:
        cases.end_publicity(s, s.get(Case, case_id), None, today=later)
    serve_letters(bank, case_id, later)  # each respondent's window runs from the service of their letter
    if target == "appeal_window":
        return case_id
    if appeal:
        with unit_of_work(bank.engine) as s:
            cases.file_appeal(s, s.get(Case, case_id), bank.user(s, "officer"), "我已尽职，证据见附件", today=later)
    with unit_of_work(bank.engine) as s:
        cases.close_appeal_window(s, s.get(Case, case_id), None, today=later + timedelta(days=14))
    if target in ("appeal_review", "final") and not appeal:
        return case_id
    if target == "appeal_review":
        return case_id
    from workflow.models import Appeal

    with unit_of_work(bank.engine) as s:
        case = s.get(Case, case_id)
        for a in s.exec(select(Appeal).where(Appeal.case_id == case_id)):
            decide_appeal_by_panel(bank, s, case, a.id, "upheld", None, "事实清楚，维持原认定")
        cases.conclude_appeals(s, case, bank.user(s, "appeal"), today=later + timedelta(days=20))
    if target == "final":
        return case_id
    if target in ("referred", "closed"):
        with unit_of_work(bank.engine) as s:
            verb = cases.refer_for_accountability if target == "referred" else cases.close
            verb(s, s.get(Case, case_id), bank.user(s, "chair"))
        return case_id
    if target == "withdrawn":
        raise ValueError("use cases.withdraw from registered/investigating/under_review")
    raise ValueError(target)
