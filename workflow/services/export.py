"""Exports for internal audit: record types, filters, masking, and streaming writers (CSV, XLSX, JSON Lines).

Rows are read with Core selects in keyset-paginated batches and written as they arrive, so memory stays
flat however large the selection. Identity numbers and phone numbers are masked unless the auditor asks
for full values with a stated reason (`authorize`, which logs the request in the access log and, for full
values, in the audit chain).

Filters select cases (opening date in China Standard Time, branch subtree, state, outcome); every other
record type follows the selected cases. The audit trail without any filter is the whole chain; the access
log's period is the time of access.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy import BigInteger, Text, and_, cast, exists, func, literal, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from ..chain import canonical
from ..db import stream
from ..domain import policy
from ..domain.errors import PermissionDenied, ValidationFailed
from ..domain.states import STATE_CODES, STATE_LABELS
from ..models import (
    OUTCOMES,
    AccessLog,
    Appeal,
    AuditEvent,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Evidence,
    Letter,
    Loan,
    Respondent,
    RuleSetVersion,
    StageFact,
    User,
    Vote,
)
from . import access_log, anchor, audit

# The bank's time zone (China Standard Time): its calendar day for the period filter, and the exported times, with
# the offset where the format can hold it (CSV, JSON Lines); XLSX cells hold no zone, so the headings say it.
CST = timezone(timedelta(hours=8), "CST")
FORMATS = ("csv", "xlsx", "jsonl")
_CENT = Decimal("0.01")
BATCH = 2000
AUDITOR_ROLE = "auditor"

CASE_RECORDS = ("cases", "loans", "respondents", "facts", "recommendations", "votes", "determinations",
                "appeals", "letters", "evidence")
KINDS = {"cases": CASE_RECORDS, "audit": ("audit",), "access-log": ("access_log",)}


# --------------------------------------------------------------------------------------------------- masking

_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_id_number(value: str | None) -> str | None:
    """Keep the first 6 and last 4 characters of an identity number (110101********1234)."""
    if not value:
        return value
    if len(value) <= 10:
        return "*" * (len(value) - 2) + value[-2:]
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """Keep the first 3 and last 4 digits of a phone number (138****1234)."""
    if not value:
        return value
    if len(value) <= 7:
        return "*" * (len(value) - 2) + value[-2:]
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def scrub(value):
    """Mask identity numbers and mobile numbers appearing in free text (recursively in JSON values)."""
    if isinstance(value, str):
        if len(value) < 11:  # too short to hold a mobile or identity number
            return value
        return _PHONE_RE.sub(r"\1****\2", _ID_RE.sub(r"\1********\2", value))
    if isinstance(value, dict):
        return {k: v if v.__class__ in _PLAIN or (v.__class__ is str and len(v) < 11) else scrub(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def scrub_stored(text: str) -> str:
    """`scrub` for a JSON value given as its stored canonical text: decoded, masked and encoded again only when
    it holds a run of 11 digits (every mobile and identity number does), else returned as it is."""
    if _DIGITS11.search(text) is None:
        return text
    return canonical(scrub(json.loads(text))).decode("utf-8")


_DIGITS11 = re.compile(r"\d{11}")
_PLAIN = frozenset({int, bool, type(None), Decimal})
_MASKERS = {"id_number": mask_id_number, "phone": mask_phone, "text": scrub, "stored_text": scrub_stored}


# --------------------------------------------------------------------------------------------------- filters

@dataclass(frozen=True)
class ExportFilter:
    """Which cases an export covers; every field is optional."""

    date_from: date | None = None
    date_to: date | None = None
    branch: str | None = None  # a branch code: the branch and its whole subtree
    state: str | None = None
    outcome: str | None = None

    @classmethod
    def parse(cls, *, date_from=None, date_to=None, branch=None, state=None, outcome=None) -> ExportFilter:
        """Build a filter from user input (ISO date strings or dates). Raises ValidationFailed."""

        def as_date(value, name):
            if value in (None, ""):
                return None
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value))
            except ValueError:
                raise ValidationFailed(f"'{value}' is not a date (YYYY-MM-DD)", field=name) from None

        f = cls(as_date(date_from, "from"), as_date(date_to, "to"), branch or None, state or None, outcome or None)
        if f.date_from and f.date_to and f.date_from > f.date_to:
            raise ValidationFailed("the period ends before it starts", field="to")
        if f.state and f.state not in STATE_CODES:
            raise ValidationFailed(f"unknown state '{f.state}'", field="state")
        if f.outcome and f.outcome not in OUTCOMES:
            raise ValidationFailed(f"unknown outcome '{f.outcome}'", field="outcome")
        return f

    @property
    def empty(self) -> bool:
        return not (self.date_from or self.date_to or self.branch or self.state or self.outcome)

    def describe(self) -> dict:
        """The filter as plain JSON data (for the manifest and the access log)."""
        return {"from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None,
                "branch": self.branch, "state": self.state, "outcome": self.outcome,
                "period_basis": "case opened_at, China Standard Time, both ends inclusive"}


def _utc_bound(day: date) -> datetime:
    """The start of a CST calendar day, in UTC."""
    return datetime.combine(day, time(0), CST).astimezone(UTC)


def _branch_ids(session: Session, code: str):
    branch = session.execute(select(Branch.path).where(Branch.code == code)).first()
    if branch is None:
        raise ValidationFailed(f"unknown branch '{code}'", field="branch")
    return select(Branch.id).where(Branch.path.like(branch[0] + "%"))


def case_ids(session: Session, f: ExportFilter):
    """A select of the ids of the cases the filter covers (None when it covers every case)."""
    if f.empty:
        return None
    conds = []
    if f.date_from:
        conds.append(Case.opened_at >= _utc_bound(f.date_from))
    if f.date_to:
        conds.append(Case.opened_at < _utc_bound(f.date_to + timedelta(days=1)))
    if f.branch:
        conds.append(Case.branch_id.in_(_branch_ids(session, f.branch)))
    if f.state:
        conds.append(Case.state == f.state)
    if f.outcome:
        conds.append(exists().where(Respondent.case_id == Case.id,
                                    func.coalesce(Respondent.final_outcome, Respondent.decided_outcome) == f.outcome))
    return select(Case.id).where(and_(*conds))


# ----------------------------------------------------------------------------------------------- record types

# Codes shown as labels, in the exporter's locale (Chinese by default), each followed by its code in a column of
# its own. The texts are the UI's own (workflow/translations), as data here because the exports run without
# Flask (the command line, background jobs); a code without a label is shown as it is.
LOCALES = ("zh", "en")
_OUTCOMES = {"exempt": ("免责", "Exempt"), "reduced": ("减责", "Reduced liability"), "liable": ("不予免责", "Liable")}
_DECISIONS = {"upheld": ("维持", "Upheld"), "altered": ("变更", "Altered")}
_STAGES = {"marketing": ("营销", "Marketing"), "acceptance": ("受理", "Acceptance"),
           "pre_loan": ("贷前调查", "Pre-loan investigation"), "review": ("贷中审查", "Credit review"),
           "approval": ("审批", "Approval"), "disbursement": ("放款审核", "Disbursement check"),
           "post_loan": ("贷后管理", "Post-loan management")}
_LIABILITIES = {"compliance": ("合规责任", "Compliance liability"), "diligence": ("尽职责任", "Diligence liability"),
                "management": ("管理责任", "Management liability")}
_EVENTS = {
    "open_case": ("已立案", "Case registered"), "assign_investigator": ("已指派调查人", "Investigator assigned"),
    "file_statement": ("已提交陈述", "Statement filed"), "decline_statement": ("书面表示不提交陈述", "Declined to file a statement"),
    "record_facts": ("已记录事实", "Facts recorded"), "add_evidence": ("已添加证据", "Evidence added"),
    "submit_investigation": ("调查已提交", "Investigation submitted"),
    "recommendation": ("已生成建议结论", "Recommendation computed"),
    "return_for_investigation": ("已退回补充调查", "Returned for investigation"), "record_vote": ("已投票", "Vote cast"),
    "votes_invalidated": ("投票已作废", "Votes invalidated"), "determine": ("已认定", "Determined"),
    "issue_letter": ("已出具文书", "Letter issued"), "start_publicity": ("开始公示", "Publicity started"),
    "reopen": ("因异议重新评议", "Reopened after an objection"), "end_publicity": ("公示结束", "Publicity ended"),
    "file_appeal": ("已提出申诉", "Appeal filed"), "close_appeal_window": ("申诉期结束", "Appeal window closed"),
    "appeal_vote": ("申诉复核表决", "Appeal panel vote cast"), "decide_appeal": ("申诉已复核", "Appeal decided"),
    "conclude_appeals": ("申诉复核完毕", "Appeals concluded"),
    "refer_for_accountability": ("已移交问责", "Referred for accountability"), "close": ("已结案", "Closed"),
    "withdraw": ("已撤销", "Withdrawn"), "legal_hold": ("已设置法律保全", "Legal hold placed"),
    "legal_hold_lifted": ("已解除法律保全", "Legal hold lifted"), "serve_letter": ("文书已送达", "Letter served"),
    "waive_appeal": ("已放弃申诉", "Appeal waived"), "appeal_deadline_moved": ("申诉期限变更", "Appeal deadline moved"),
    "urge": ("督办", "Step urged"), "comment": ("已添加评论", "Comment added"),
    "one_year_limit": ("临近或超过一年办理时限", "One-year limit reached"), "deadline_missed": ("环节逾期", "Deadline missed"),
    "propose_precedent": ("推荐为引导案例", "Proposed as a precedent"), "edit_precedent": ("引导案例已修改", "Precedent edited"),
    "approve_precedent": ("引导案例已批准", "Precedent approved"), "reject_precedent": ("引导案例未予批准", "Precedent rejected"),
    "export_full_values": ("导出完整身份证号和电话号码", "Full identity and phone numbers exported"),
    "record_sanction": ("已录入问责结果", "Sanctions recorded"), "refund_due": ("应返还扣发", "Refund due"),
    "export_hr": ("导出人力资源清单", "HR list exported"),
}
_ACTIONS = {"view_case": ("查看案件", "Case viewed"), "download_letter": ("下载文书", "Letter downloaded"),
            "download_evidence": ("下载证据", "Evidence downloaded"), "preview_evidence": ("预览证据", "Evidence previewed"),
            "download_case_file": ("下载案件卷宗", "Case file downloaded"), "export": ("导出", "Export"),
            "api_read": ("API 读取", "API read"), "sign_in": ("登录", "Signed in"),
            "sign_in_failed": ("登录失败", "Sign-in failed"), "sign_out": ("退出登录", "Signed out")}
_SYSTEM = {"system": ("系统", "system")}
VOCABULARIES: dict[str, dict[str, tuple[str, str]]] = {
    "state": {code: (labels["zh"], labels["en"]) for code, labels in STATE_LABELS.items()},
    "outcome": _OUTCOMES, "decision": _DECISIONS, "stage": _STAGES, "liability": _LIABILITIES, "event": _EVENTS,
    "action": _ACTIONS, "actor": _SYSTEM,
}


def labels(vocab: str, locale: str = "zh") -> dict[str, str]:
    """The labels of one vocabulary in `locale` (zh or en; anything else reads as zh), code -> label."""
    i = 1 if locale == "en" else 0
    return {code: pair[i] for code, pair in VOCABULARIES[vocab].items()}


@dataclass(frozen=True)
class Column:
    """One exported column: name, header, kind (str|int|bool|date|datetime|money|json), PII marker, and the
    vocabulary whose label replaces the code in it."""

    name: str
    header: str
    kind: str = "str"
    pii: str | None = None  # id_number | phone | text
    width: int | None = None
    system: bool = False  # generated by the application (hashes, times, codes): no user text to guard
    vocab: str | None = None  # state | outcome | decision | stage | liability | event | action | actor
    stored: bool = False  # a JSON value read as the canonical text the database stores: exported as it is

    @property
    def xlsx_width(self) -> int:
        if self.width:
            return self.width
        base = {"int": 10, "bool": 8, "date": 12, "datetime": 20, "money": 16, "json": 50}.get(self.kind, 18)
        return max(base, min(60, len(self.header.encode("gbk", "replace")) + 2))


@dataclass
class RecordType:
    """A kind of exported record: its sheet title, columns and a streamed row source."""

    name: str
    title: str
    columns: tuple[Column, ...]
    source: Callable  # (session, ExportFilter, batch) -> iterator of tuples in column order
    count: Callable = field(default=None)  # (session, ExportFilter) -> int


def _streamed(session: Session, query, key, batch: int, transform=None) -> Iterator[tuple]:
    """Rows of `query` in `key` order, one streamed SELECT read `batch` rows at a time (db.stream)."""
    for part in stream(session.connection(), query.order_by(key), batch):
        if transform is None:
            yield from part
        else:
            for row in part:
                yield transform(row)


def _in_cases(col, session: Session, f: ExportFilter):
    ids = case_ids(session, f)
    return None if ids is None else col.in_(ids)


def _where(query, cond):
    return query if cond is None else query.where(cond)


def _count(session: Session, query) -> int:
    return session.connection().execute(select(func.count()).select_from(query.subquery())).scalar_one()


def _aware(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _person(user) -> object:
    """A member of staff as the exports name them: 姓名（工号）, e.g. 王伟（E1001）; NULL without one."""
    return user.name + literal("（") + user.employee_no + literal("）")


def _coded(name: str, zh: str, en: str, vocab: str, **kw) -> tuple[Column, Column]:
    """A code shown as its label, then the code itself (`<name>`) in the next column; the query selects the
    code twice (`_twice`)."""
    return (Column(f"{name}_label", f"{zh} {en}", vocab=vocab, system=True, **kw),
            Column(name, f"{zh}代码 {en} code", system=True))


def _twice(expr, name: str):
    return expr.label(f"{name}_label"), expr


C = Column
_CASES_COLS = (
    C("id", "ID", "int"), C("number", "案件编号 case no.", width=22), *_coded("state", "状态", "state", "state"),
    C("branch_code", "机构代码 branch"), C("branch_name", "机构 branch name"),
    C("enterprise", "企业 enterprise", width=30), C("uscc", "统一社会信用代码 USCC", width=22),
    C("opened_at", "立案时间 opened (北京时间 UTC+8)", "datetime"), C("opened_by", "立案人（工号） opened by", width=20),
    C("investigator", "调查人（工号） investigator", width=20), C("legal_hold", "法律保全 legal hold", "bool"),
    C("batch_report", "批量评议 batch", "bool"), C("loan_count", "贷款笔数 loans", "int"),
    C("balance", "贷款余额 balance (CNY)", "money"), C("submitted_at", "提交评议 submitted (北京时间 UTC+8)", "datetime"),
    C("determined_at", "认定时间 determined (北京时间 UTC+8)", "datetime"), C("final_at", "生效时间 final (北京时间 UTC+8)", "datetime"),
    C("closed_at", "结案时间 closed (北京时间 UTC+8)", "datetime"), C("due_date", "当前时限 due", "date"),
    C("rule_set_version", "规则版本 rule set", "int"),
)


def _cases_query(session, f):
    opener, inv = aliased(User), aliased(User)
    n_loans = select(func.count()).select_from(CaseLoan).where(CaseLoan.case_id == Case.id).scalar_subquery()
    balance = (select(func.coalesce(func.sum(Loan.balance), 0)).select_from(CaseLoan)
               .join(Loan, Loan.id == CaseLoan.loan_id).where(CaseLoan.case_id == Case.id).scalar_subquery())
    q = (select(Case.id, Case.number, *_twice(Case.state, "state"), Branch.code, Branch.name, Enterprise.name,
                Enterprise.uscc, Case.opened_at, _person(opener), _person(inv), Case.legal_hold, Case.batch_report,
                n_loans, balance, Case.submitted_at, Case.determined_at, Case.final_at, Case.closed_at, Case.due_date,
                RuleSetVersion.version)
         .join(Branch, Branch.id == Case.branch_id).join(Enterprise, Enterprise.id == Case.enterprise_id)
         .join(RuleSetVersion, RuleSetVersion.id == Case.rule_set_version_id)
         .outerjoin(opener, opener.id == Case.opened_by_id).outerjoin(inv, inv.id == Case.investigator_id))
    return _where(q, _in_cases(Case.id, session, f)), Case.id


_BALANCE = next(i for i, c in enumerate(_CASES_COLS) if c.name == "balance")


def _cases_rows(row):
    row = list(row)
    if isinstance(row[_BALANCE], int):  # a bare SUM of fen loses the Money type
        row[_BALANCE] = (Decimal(row[_BALANCE]) / 100).quantize(_CENT)
    return tuple(row)


_LOANS_COLS = (
    C("case_id", "案件ID case id", "int"), C("case_number", "案件编号 case no.", width=22),
    C("loan_no", "贷款编号 loan no.", width=20), C("enterprise", "企业 enterprise", width=30),
    C("product_class", "产品类别 product"), C("credit_total", "授信总额 credit total (CNY)", "money"),
    C("amount", "发放金额 amount (CNY)", "money"), C("balance", "余额 balance (CNY)", "money"),
    C("start_date", "发放日 start", "date"), C("maturity_date", "到期日 maturity", "date"),
    C("classification", "五级分类 classification"), C("written_off", "已核销 written off", "bool"),
    C("branch_code", "经办机构 branch"),
)


def _loans_query(session, f):
    key = CaseLoan.case_id.cast(BigInteger) * 1_000_000_000 + CaseLoan.loan_id
    q = (select(key.label("k"), Case.number, Loan.loan_no, Enterprise.name, Loan.product_class, Loan.credit_total,
                Loan.amount, Loan.balance, Loan.start_date, Loan.maturity_date, Loan.classification,
                Loan.written_off, Branch.code, CaseLoan.case_id)
         .select_from(CaseLoan).join(Case, Case.id == CaseLoan.case_id).join(Loan, Loan.id == CaseLoan.loan_id)
         .join(Enterprise, Enterprise.id == Loan.enterprise_id).join(Branch, Branch.id == Loan.branch_id))
    return _where(q, _in_cases(CaseLoan.case_id, session, f)), key


def _loans_rows(row):
    return (row[13], *row[1:13])


_RESPONDENT_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("username", "用户名 username"),
    C("name", "姓名 name"), C("employee_no", "工号 employee no."),
    C("id_number", "身份证号 identity no.", pii="id_number", width=22),
    C("phone", "电话 phone", pii="phone", width=15), C("branch", "所在机构 branch"),
    *_coded("liability_kind", "责任类型", "liability kind", "liability"),
    *_coded("recommended_outcome", "建议结果", "recommended", "outcome"),
    *_coded("decided_outcome", "认定结果", "decided", "outcome"), *_coded("final_outcome", "最终结果", "final", "outcome"),
    C("deviation_reason", "偏离理由 deviation reason", pii="text", width=40),
    C("statement", "陈述 statement", pii="text", width=50), C("statement_at", "陈述时间 statement (北京时间 UTC+8)", "datetime"),
)


def _respondents_query(session, f):
    q = (select(Respondent.id, Case.number, User.username, User.name, User.employee_no, User.id_number, User.phone,
                Branch.name, *_twice(Respondent.liability_kind, "liability_kind"),
                *_twice(Respondent.recommended_outcome, "recommended_outcome"),
                *_twice(Respondent.decided_outcome, "decided_outcome"), *_twice(Respondent.final_outcome, "final_outcome"),
                Respondent.deviation_reason, Respondent.statement, Respondent.statement_at)
         .join(Case, Case.id == Respondent.case_id).join(User, User.id == Respondent.user_id)
         .join(Branch, Branch.id == User.branch_id))
    return _where(q, _in_cases(Respondent.case_id, session, f)), Respondent.id


_FACT_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("respondent_id", "被评议人ID respondent", "int"),
    C("respondent", "被评议人（工号） respondent", width=20), C("loan_no", "贷款编号 loan no.", width=20),
    *_coded("stage", "环节", "stage", "stage"),
    C("violation", "违法违规 violation", "bool"), C("positive", "正面清单 positive", "json", width=24),
    C("mitigating", "减责情形 mitigating", "json", width=24), C("negative", "负面清单 negative", "json", width=24),
    C("unperformed", "未尽职事项 unperformed duties", "json", width=40),
    C("dissented", "有效异议 dissented", "bool"), C("facts", "全部事实 all facts", "json", pii="text"),
    C("rule_set_version", "规则版本 rule set", "int"), C("recorded_by", "记录人（工号） recorded by", width=20),
    C("recorded_at", "记录时间 recorded (北京时间 UTC+8)", "datetime"),
)


def _facts_query(session, f):
    rec = aliased(User)
    q = (select(StageFact.id, Case.number, StageFact.respondent_id, _person(User), Loan.loan_no,
                *_twice(StageFact.stage, "stage"), StageFact.facts, RuleSetVersion.version, _person(rec),
                StageFact.recorded_at)
         .join(Respondent, Respondent.id == StageFact.respondent_id).join(Case, Case.id == Respondent.case_id)
         .join(User, User.id == Respondent.user_id).join(Loan, Loan.id == StageFact.loan_id)
         .join(RuleSetVersion, RuleSetVersion.id == StageFact.rule_set_version_id)
         .outerjoin(rec, rec.id == StageFact.recorded_by_id))
    return _where(q, _in_cases(Respondent.case_id, session, f)), StageFact.id


def _facts_rows(row):
    facts = row[7] or {}
    return (*row[:7], bool(facts.get("violation")), facts.get("positive", []), facts.get("mitigating", []),
            facts.get("negative", []), facts.get("unperformed", []), bool(facts.get("dissented")), facts,
            *row[8:])


_RECOMMENDATION_COLS = (
    C("respondent_id", "被评议人ID respondent", "int"), C("case_number", "案件编号 case no.", width=22),
    C("respondent", "被评议人（工号） respondent", width=20),
    *_coded("recommended_outcome", "建议结果", "recommended", "outcome"),
    C("tolerance_within", "容忍度内 within tolerance", "bool"),
    C("explanation", "说明 explanation", "json", pii="text", width=80),
)


def _recommendations_query(session, f):
    q = (select(Respondent.id, Case.number, _person(User), *_twice(Respondent.recommended_outcome, "recommended_outcome"),
                Respondent.recommendation)
         .join(Case, Case.id == Respondent.case_id).join(User, User.id == Respondent.user_id)
         .where(Respondent.recommended_outcome.is_not(None)))
    return _where(q, _in_cases(Respondent.case_id, session, f)), Respondent.id


def _recommendations_rows(row):
    rec = row[5] or {}
    return (*row[:5], rec.get("tolerance_within"), rec)


_VOTE_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("respondent_id", "被评议人ID respondent", "int"),
    C("respondent", "被评议人（工号） respondent", width=20), C("member", "委员（工号） member", width=20),
    *_coded("outcome", "表决", "outcome", "outcome"), C("reason", "理由 reason", pii="text", width=40),
    C("cast_at", "表决时间 cast (北京时间 UTC+8)", "datetime"), C("invalidated_at", "作废时间 invalidated (北京时间 UTC+8)", "datetime"),
    C("valid", "有效 valid", "bool"),
)


def _votes_query(session, f):
    member = aliased(User)
    q = (select(Vote.id, Case.number, Vote.respondent_id, _person(User), _person(member), *_twice(Vote.outcome, "outcome"),
                Vote.reason, Vote.cast_at, Vote.invalidated_at)
         .join(Case, Case.id == Vote.case_id).join(Respondent, Respondent.id == Vote.respondent_id)
         .join(User, User.id == Respondent.user_id).join(member, member.id == Vote.member_id))
    return _where(q, _in_cases(Vote.case_id, session, f)), Vote.id


def _votes_rows(row):
    return (*row, row[-1] is None)


_DETERMINATION_COLS = (
    C("respondent_id", "被评议人ID respondent", "int"), C("case_number", "案件编号 case no.", width=22),
    C("respondent", "被评议人 respondent name"), C("employee_no", "工号 employee no."),
    *_coded("liability_kind", "责任类型", "liability kind", "liability"),
    *_coded("recommended_outcome", "建议结果", "recommended", "outcome"),
    *_coded("decided_outcome", "认定结果", "decided", "outcome"),
    C("deviation_reason", "偏离理由 deviation reason", pii="text", width=40),
    *_coded("final_outcome", "最终结果", "final", "outcome"), C("determined_at", "认定时间 determined (北京时间 UTC+8)", "datetime"),
    C("final_at", "生效时间 final (北京时间 UTC+8)", "datetime"), *_coded("case_state", "案件状态", "case state", "state"),
)


def _determinations_query(session, f):
    q = (select(Respondent.id, Case.number, User.name, User.employee_no, *_twice(Respondent.liability_kind, "liability_kind"),
                *_twice(Respondent.recommended_outcome, "recommended_outcome"),
                *_twice(Respondent.decided_outcome, "decided_outcome"), Respondent.deviation_reason,
                *_twice(Respondent.final_outcome, "final_outcome"), Case.determined_at, Case.final_at,
                *_twice(Case.state, "case_state"))
         .join(Case, Case.id == Respondent.case_id).join(User, User.id == Respondent.user_id)
         .where(Respondent.decided_outcome.is_not(None)))
    return _where(q, _in_cases(Respondent.case_id, session, f)), Respondent.id


_APPEAL_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("respondent_id", "被评议人ID respondent", "int"),
    C("respondent", "申诉人（工号） appellant", width=20), *_coded("appealed_outcome", "原认定", "appealed outcome", "outcome"),
    C("grounds", "申诉理由 grounds", pii="text", width=50), C("filed_at", "申诉时间 filed (北京时间 UTC+8)", "datetime"),
    *_coded("decision", "复核决定", "decision", "decision"), *_coded("new_outcome", "变更后结果", "new outcome", "outcome"),
    C("decision_reason", "复核理由 decision reason", pii="text", width=40), C("decided_by", "复核人（工号） decided by", width=20),
    C("decided_at", "复核时间 decided (北京时间 UTC+8)", "datetime"),
)


def _appeals_query(session, f):
    dec = aliased(User)
    q = (select(Appeal.id, Case.number, Appeal.respondent_id, _person(User), *_twice(Appeal.appealed_outcome, "appealed_outcome"),
                Appeal.grounds, Appeal.filed_at, *_twice(Appeal.decision, "decision"),
                *_twice(Appeal.new_outcome, "new_outcome"), Appeal.decision_reason, _person(dec), Appeal.decided_at)
         .join(Case, Case.id == Appeal.case_id).join(Respondent, Respondent.id == Appeal.respondent_id)
         .join(User, User.id == Respondent.user_id).outerjoin(dec, dec.id == Appeal.decided_by_id))
    return _where(q, _in_cases(Appeal.case_id, session, f)), Appeal.id


_LETTER_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("kind", "文书类型 kind"),
    C("doc_number", "文号 document no.", width=26), C("version", "版本 version", "int"),
    C("supersedes_id", "替代ID supersedes", "int"), C("respondent_id", "被评议人ID respondent", "int"),
    C("appeal_id", "申诉ID appeal", "int"), C("template", "模板 template"),
    C("template_version", "模板版本 template version"), C("locale", "语言 locale"),
    C("sha256", "SHA-256", width=66), C("pdf_bytes", "PDF字节 PDF bytes", "int"),
    C("issued_by", "签发人（工号） issued by", width=20), C("issued_at", "签发时间 issued (北京时间 UTC+8)", "datetime"),
)


def _letters_query(session, f):
    iss = aliased(User)
    q = (select(Letter.id, Case.number, Letter.kind, Letter.doc_number, Letter.version, Letter.supersedes_id,
                Letter.respondent_id, Letter.appeal_id, Letter.template, Letter.template_version, Letter.locale,
                Letter.sha256, func.length(Letter.pdf), _person(iss), Letter.issued_at)
         .join(Case, Case.id == Letter.case_id).outerjoin(iss, iss.id == Letter.issued_by_id))
    return _where(q, _in_cases(Letter.case_id, session, f)), Letter.id


_EVIDENCE_COLS = (
    C("id", "ID", "int"), C("case_number", "案件编号 case no.", width=22), C("respondent_id", "被评议人ID respondent", "int"),
    C("appeal_id", "申诉ID appeal", "int"), C("kind", "类型 kind"), C("filename", "文件名 file name", width=30),
    C("content_type", "文件类型 content type"), C("size", "字节 bytes", "int"), C("sha256", "SHA-256", width=66),
    C("description", "说明 description", pii="text", width=40), C("uploaded_by", "上传人（工号） uploaded by", width=20),
    C("uploaded_at", "上传时间 uploaded (北京时间 UTC+8)", "datetime"),
)


def _evidence_query(session, f):
    up = aliased(User)
    q = (select(Evidence.id, Case.number, Evidence.respondent_id, Evidence.appeal_id, Evidence.kind,
                Evidence.filename, Evidence.content_type, Evidence.size, Evidence.sha256, Evidence.description,
                _person(up), Evidence.uploaded_at)
         .join(Case, Case.id == Evidence.case_id).outerjoin(up, up.id == Evidence.uploaded_by_id))
    return _where(q, _in_cases(Evidence.case_id, session, f)), Evidence.id


# The audit trail keeps every field of the chain as it was hashed, under its own name (so its JSON Lines verify
# with workflow.chain as they are); the labels and the person are columns beside them.
_AUDIT_COLS = (
    C("seq", "序号 seq", "int"), C("case_id", "案件ID case id", "int"), C("actor_id", "操作人ID actor id", "int"),
    C("actor_name", "操作人（工号） actor", width=20, vocab="actor"), C("actor", "操作人用户名 actor username", system=True),
    C("at", "时间 at (UTC，审计链原值 as hashed)", width=28, system=True),
    C("event_label", "事件 event", width=22, vocab="event", system=True), C("event", "事件代码 event code", width=22, system=True),
    C("from_state_label", "原状态 from", vocab="state", system=True), C("from_state", "原状态代码 from code", system=True),
    C("to_state_label", "新状态 to", vocab="state", system=True), C("to_state", "新状态代码 to code", system=True),
    C("payload", "内容 payload", "json", pii="stored_text", stored=True),
    C("prev_hash", "前一哈希 prev hash", width=66, system=True), C("hash", "哈希 hash", width=66, system=True),
)


def _audit_query(session, f, upto: int | None = None):
    t = AuditEvent.__table__
    who = aliased(User)
    q = (select(t.c.seq, t.c.case_id, t.c.actor_id, func.coalesce(_person(who), t.c.actor), t.c.actor, t.c.at,
                *_twice(t.c.event, "event"), *_twice(t.c.from_state, "from_state"), *_twice(t.c.to_state, "to_state"),
                cast(t.c.payload, Text), t.c.prev_hash, t.c.hash)
         .select_from(t).outerjoin(who, who.id == t.c.actor_id))
    if upto is not None:
        q = q.where(t.c.seq <= upto)
    return _where(q, _in_cases(t.c.case_id, session, f)), t.c.seq


_ACCESS_COLS = (
    C("id", "ID", "int"), C("at", "时间 at (北京时间 UTC+8)", "datetime"), C("user_id", "用户ID user id", "int"),
    C("user", "用户（工号） user", width=20, vocab="actor"), C("username", "用户名 username", system=True),
    *_coded("action", "操作", "action", "action"), C("target", "对象 target", width=30),
    C("case_id", "案件ID case id", "int"), C("reason", "理由 reason", pii="text", width=40),
    C("details", "详情 details", "json", pii="text"),
)


def _access_query(session, f):
    who = aliased(User)
    q = (select(AccessLog.id, AccessLog.at, AccessLog.user_id, func.coalesce(_person(who), AccessLog.username),
                AccessLog.username, *_twice(AccessLog.action, "action"), AccessLog.target, AccessLog.case_id,
                AccessLog.details)
         .outerjoin(who, who.id == AccessLog.user_id))
    if f.date_from:
        q = q.where(AccessLog.at >= _utc_bound(f.date_from))
    if f.date_to:
        q = q.where(AccessLog.at < _utc_bound(f.date_to + timedelta(days=1)))
    if f.branch or f.state or f.outcome:
        case_filter = ExportFilter(branch=f.branch, state=f.state, outcome=f.outcome)
        q = q.where(AccessLog.case_id.in_(case_ids(session, case_filter)))
    return q, AccessLog.id


def _access_rows(row):
    details = row[9] if isinstance(row[9], dict) else {}
    return (*row[:9], details.get("reason"), row[9])


def _record(name, title, cols, query_fn, transform=None) -> RecordType:
    def source(session, f, batch=BATCH, **kw):
        query, key = query_fn(session, f, **kw)
        return _streamed(session, query, key, batch, transform)

    def count(session, f, **kw):
        return _count(session, query_fn(session, f, **kw)[0])

    return RecordType(name, title, cols, source, count)


RECORD_TYPES: dict[str, RecordType] = {rt.name: rt for rt in (
    _record("cases", "案件 cases", _CASES_COLS, _cases_query, _cases_rows),
    _record("loans", "贷款 loans", _LOANS_COLS, _loans_query, _loans_rows),
    _record("respondents", "被评议人 respondents", _RESPONDENT_COLS, _respondents_query),
    _record("facts", "事实 facts", _FACT_COLS, _facts_query, _facts_rows),
    _record("recommendations", "建议 recommendations", _RECOMMENDATION_COLS, _recommendations_query,
            _recommendations_rows),
    _record("votes", "表决 votes", _VOTE_COLS, _votes_query, _votes_rows),
    _record("determinations", "认定 determinations", _DETERMINATION_COLS, _determinations_query),
    _record("appeals", "申诉 appeals", _APPEAL_COLS, _appeals_query),
    _record("letters", "文书 letters", _LETTER_COLS, _letters_query),
    _record("evidence", "证据 evidence", _EVIDENCE_COLS, _evidence_query),
    _record("audit", "审计轨迹 audit trail", _AUDIT_COLS, _audit_query),
    _record("access_log", "访问日志 access log", _ACCESS_COLS, _access_query, _access_rows),
)}


def record_names(kind: str) -> tuple[str, ...]:
    """The record types of an export kind (cases, audit, access-log). Raises ValidationFailed."""
    if kind not in KINDS:
        raise ValidationFailed(f"unknown export '{kind}' (choose {', '.join(KINDS)})", field="kind")
    return KINDS[kind]


def rows(session: Session, name: str, f: ExportFilter, *, full: bool = False, batch: int = BATCH,
         locale: str = "zh", **kw) -> Iterator[tuple]:
    """The rows of one record type in column order (tuples or lists), streamed; codes shown as labels in `locale`
    (zh, en) beside their codes; PII masked unless `full`."""
    rt = RECORD_TYPES[name]
    named = [(i, labels(c.vocab, locale)) for i, c in enumerate(rt.columns) if c.vocab]
    masked = [] if full else [(i, _MASKERS[c.pii]) for i, c in enumerate(rt.columns) if c.pii]
    source = rt.source(session, f, batch, **kw)
    if not (named or masked):
        yield from source
        return
    for row in source:
        row = list(row)  # the writers take it as it is (a list of its own, theirs to convert in place)
        for i, table in named:
            value = row[i]
            if value is not None:
                row[i] = table.get(value, value)
        for i, mask in masked:
            if row[i] is not None:
                row[i] = mask(row[i])
        yield row


def count(session: Session, name: str, f: ExportFilter, **kw) -> int:
    """How many rows an export of one record type will have."""
    return RECORD_TYPES[name].count(session, f, **kw)


# ------------------------------------------------------------------------------------------------ writers

_FORMULA_CHARS = frozenset("=+-@\t\r")


def _csv_text(value):
    # A spreadsheet would run a cell starting with these as a formula (CSV injection): quote it.
    if value and value[0] in _FORMULA_CHARS:
        return "'" + value
    return value


def _csv_json(value):
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _csv_bool(value):
    return None if value is None else ("true" if value else "false")


def _csv_datetime(value):
    return None if value is None else _aware(value).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S%z")


def _csv_date(value):
    return None if value is None else value.isoformat()


def _csv_str(value):
    if value is None or value.__class__ is not str:
        return value
    return _csv_text(value)


# Per-kind cell converters; the csv module writes None as "" and numbers (int, Decimal) as they print.
_CSV_CONVERT = {"json": _csv_json, "bool": _csv_bool, "datetime": _csv_datetime, "date": _csv_date,
                "str": _csv_str}


def csv_chunks(name: str, row_iter: Iterable[tuple], *, progress=None, rows_per_chunk: int = 2000) -> Iterator[bytes]:
    """A CSV file (UTF-8 with BOM, so Excel reads Chinese) as byte chunks, one per `rows_per_chunk` rows."""
    cols = RECORD_TYPES[name].columns
    converters = [(i, _CSV_CONVERT[c.kind]) for i, c in enumerate(cols)
                  if c.kind in _CSV_CONVERT and not (c.system and c.kind == "str") and not c.stored]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in cols])
    yield "\ufeff".encode() + buf.getvalue().encode("utf-8")
    buf.seek(0)
    buf.truncate()
    batch: list = []
    for row in row_iter:
        if converters:
            if row.__class__ is not list:
                row = list(row)
            for i, convert in converters:
                row[i] = convert(row[i])
        batch.append(row)
        if len(batch) == rows_per_chunk:
            writer.writerows(batch)
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        writer.writerows(batch)
        yield buf.getvalue().encode("utf-8")
        if progress:
            progress(len(batch))


def _json_default(value):
    if isinstance(value, datetime):
        return _aware(value).astimezone(CST).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact: amounts are strings with two decimals
    raise TypeError(f"cannot export {type(value).__name__}")


def jsonl_chunks(name: str, row_iter: Iterable[tuple], *, progress=None,
                 rows_per_chunk: int = 2000) -> Iterator[bytes]:
    """JSON Lines (one object per record, UTF-8) as byte chunks; amounts are exact decimal strings. A JSON value
    read as its stored text (`Column.stored`) is spliced into its line as it is, not decoded and encoded again."""
    cols = RECORD_TYPES[name].columns
    names = [c.name for c in cols]
    stored = [(i, c.name, f'"{c.name}":"\\u0000"', f'"{c.name}":') for i, c in enumerate(cols) if c.stored]
    dumps = json.JSONEncoder(ensure_ascii=False, default=_json_default, separators=(",", ":")).encode
    lines: list[str] = []
    for row in row_iter:
        record = dict(zip(names, row, strict=True))
        if stored:
            for _, key, _, _ in stored:
                if record[key] is not None:
                    record[key] = "\x00"
            line = dumps(record)
            # the slot cannot occur inside an encoded string (its quotes would be escaped): the first is ours
            for i, _, slot, key in stored:
                if row[i] is not None:
                    line = line.replace(slot, key + row[i], 1)
            lines.append(line)
        else:
            lines.append(dumps(record))
        if len(lines) == rows_per_chunk:
            lines.append("")
            yield "\n".join(lines).encode("utf-8")
            if progress:
                progress(rows_per_chunk)
            lines = []
    if lines:
        lines.append("")
        yield "\n".join(lines).encode("utf-8")
        if progress:
            progress(len(lines) - 1)


_ILLEGAL_XLSX = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_XLSX_MAX_CELL = 32767


def write_xlsx(target, sheets: Iterable[tuple[str, Iterable[tuple]]], *, progress=None,
               checkpoint: dict | None = None) -> None:
    """An XLSX workbook (openpyxl write-only mode: rows go to the file as they come), one sheet per record type:
    header row frozen and bold with an auto filter over the rows, columns sized, dates as dates, amounts as
    exact numbers (Decimal, two places) formatted #,##0.00. A record type longer than a sheet's 1,048,576 rows
    goes on in sheets "<title> (2)", "(3)", …. `target` is a path or a binary file. With the audit chain's
    `checkpoint` a last sheet 审计链检查点 states it."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def new_sheet(rt: RecordType, part: int):
        # a sheet holds at most XLSX_MAX_ROWS rows: a longer record type goes on in "<title> (2)", …
        ws = wb.create_sheet(title=rt.title[:31] if part == 1 else f"{rt.title[:24]} ({part})")
        ws.freeze_panes = "A2"
        for i, col in enumerate(rt.columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = col.xlsx_width
        header = []
        for col in rt.columns:
            cell = WriteOnlyCell(ws, value=col.header)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        return ws

    def close_sheet(ws, rt: RecordType, written: int) -> None:
        # the filter is written at the end of the sheet (after its rows), so the row count is known by then
        ws.auto_filter.ref = f"A1:{get_column_letter(len(rt.columns))}{written + 1}"

    for name, row_iter in sheets:
        rt = RECORD_TYPES[name]
        part = 1
        ws = new_sheet(rt, part)
        kinds = [c.kind for c in rt.columns]
        stores = [c.stored for c in rt.columns]
        n = written = 0
        for row in row_iter:
            if written == XLSX_MAX_ROWS - 1:
                close_sheet(ws, rt, written)
                part += 1
                ws, written = new_sheet(rt, part), 0
            out = []
            for value, kind, stored in zip(row, kinds, stores, strict=True):
                if value is None:
                    out.append(None)
                elif kind == "money":
                    cell = WriteOnlyCell(ws, value=Decimal(value).quantize(_CENT))
                    cell.number_format = MONEY_FORMAT
                    out.append(cell)
                elif kind == "datetime":
                    cell = WriteOnlyCell(ws, value=_aware(value).astimezone(CST).replace(tzinfo=None))
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
                    out.append(cell)
                elif kind == "date":
                    cell = WriteOnlyCell(ws, value=value)
                    cell.number_format = "yyyy-mm-dd"
                    out.append(cell)
                elif kind == "json":
                    out.append(_xlsx_text(value if stored else json.dumps(value, ensure_ascii=False,
                                                                          sort_keys=True, default=str), ws))
                elif isinstance(value, str):
                    out.append(_xlsx_text(value, ws))
                else:
                    out.append(value)
            ws.append(out)
            written += 1
            n += 1
            if progress and n == 1000:
                progress(n)
                n = 0
        if progress and n:
            progress(n)
        close_sheet(ws, rt, written)
    if checkpoint:
        ws = wb.create_sheet(title=CHECKPOINT_TITLE)
        for label, value in checkpoint_lines(checkpoint):
            ws.append([label, value])
    wb.save(target)


CHECKPOINT_TITLE = "审计链检查点"
MONEY_FORMAT = "#,##0.00"
XLSX_MAX_ROWS = 1_048_576  # Excel's rows per sheet, the header included


def checkpoint_lines(checkpoint: dict) -> list[tuple[str, str | int]]:
    """The audit chain's checkpoint as an export states it (label, value)."""
    return [("审计链检查点序号", checkpoint["seq"]), ("审计链检查点哈希（SHA-256）", checkpoint["hash"])]


def _xlsx_text(value: str, ws):
    value = _ILLEGAL_XLSX.sub("", value)[:_XLSX_MAX_CELL]
    if value.startswith("="):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"  # text, never a formula
        return cell
    return value


def chunks(fmt: str, name: str, row_iter: Iterable[tuple], *, progress=None) -> Iterator[bytes]:
    """Byte chunks of a CSV or JSON Lines export (XLSX needs a file: use `write_xlsx`)."""
    if fmt == "csv":
        return csv_chunks(name, row_iter, progress=progress)
    if fmt == "jsonl":
        return jsonl_chunks(name, row_iter, progress=progress)
    raise ValidationFailed(f"'{fmt}' cannot be streamed in chunks", field="format")


# ------------------------------------------------------------------------------------------ authorisation

def require_auditor(actor) -> None:
    """Raise PermissionDenied unless the actor holds the auditor role."""
    if actor is None or AUDITOR_ROLE not in actor.role_set:
        raise PermissionDenied("only internal auditors may export records")


def _actor(session: Session, user) -> policy.Actor:
    # Imported here: queries imports the accounts service and with it zxcvbn, whose word lists take a process
    # ~80 MB at import; a command-line export or a job has no password to check and stays ~60 MB smaller.
    from .queries import actor_of

    return actor_of(session, user)


def branch_choices(session: Session, actor) -> list[dict]:
    """The branches an export may be filtered by: those in the actor's scope (`policy.sees_branch`), as
    {code, name, name_en, level} in the hierarchy's order (head office first, each branch before its subtree)."""
    who = _actor(session, actor)
    found = session.execute(select(Branch.code, Branch.name, Branch.name_en, Branch.level, Branch.path)
                            .where(Branch.active.is_(True)).order_by(Branch.path)).all()
    return [{"code": code, "name": name, "name_en": name_en, "level": level}
            for code, name, name_en, level, path in found if policy.sees_branch(who, path)]


def _check_branch(session: Session, actor, code: str) -> None:
    path = session.execute(select(Branch.path).where(Branch.code == code)).scalar_one_or_none()
    if path is None or not policy.sees_branch(_actor(session, actor), path):
        raise ValidationFailed("the branch is not one of those in your scope: choose it from the list", field="branch",
                               branch=code)


def require_reason(reason: str | None) -> str:
    """The stated reason of an export, stripped. Raises ValidationFailed when there is none."""
    return access_log.stated_reason(reason)


def check_request(session: Session, actor, *, kind: str, fmt: str, f: ExportFilter, reason: str | None,
                  records: Iterable[str] = ()) -> str:
    """Everything an export request must satisfy before it runs or is queued: the auditor role, a known kind,
    format and record types, a branch in the actor's scope and a stated reason. Returns the reason.

    Raises PermissionDenied, ValidationFailed.
    """
    require_auditor(actor)
    if kind != "bundle":
        names = record_names(kind)
        if fmt not in FORMATS:
            raise ValidationFailed(f"unknown format '{fmt}' (choose {', '.join(FORMATS)})", field="format")
        unknown = set(records or ()) - set(names)
        if unknown:
            raise ValidationFailed(f"unknown record type(s) {', '.join(sorted(unknown))} for '{kind}' "
                                   f"(choose from {', '.join(names)})", field="records")
    elif fmt != "zip":
        raise ValidationFailed(f"an evidence bundle is a ZIP, not '{fmt}'", field="format")
    if f.branch:
        _check_branch(session, actor, f.branch)
    return require_reason(reason)


def authorize(session: Session, actor, *, kind: str, fmt: str, f: ExportFilter, full: bool = False,
              reason: str | None = None, target: str | None = None, locale: str = "zh") -> dict:
    """Check and log an export before it runs (`check_request`): every export states its reason, which the
    access log records with the kind, format, filters and locale; full (unmasked) values are also recorded
    in the audit chain (`export_full_values`, with the reason).

    Returns the access-log details. Raises PermissionDenied, ValidationFailed.
    """
    reason = check_request(session, actor, kind=kind, fmt=fmt, f=f, reason=reason)
    details = {"kind": kind, "format": fmt, "filters": f.describe(), "full_values": bool(full), "reason": reason,
               "locale": "en" if locale == "en" else "zh"}
    if (checkpoint := anchor.for_letter(session)) is not None:
        details["checkpoint"] = checkpoint  # the export states it (anchored: the records are as of then)
    access_log.record(session, actor, "export", target or f"export:{kind}", None, details)
    if full:
        audit.record(session, event="export_full_values", actor=actor,
                     payload={"kind": kind, "format": fmt, "filters": f.describe(), "reason": reason})
    return details


def filename(kind: str, fmt: str, stamp: datetime | None = None) -> str:
    """A download file name such as mianze-cases-20260309T101500Z.xlsx."""
    stamp = (stamp or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"mianze-{kind}-{stamp}.{fmt}"
