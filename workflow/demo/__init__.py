"""The realistic demo bank: branches, staff, a loan book and cases in every state, driven through the services.

`load(engine, seed=…)` fills an empty database deterministically (one `random.Random(seed)`; dates are laid
out backwards from `today`, so deadlines fall where a user expects them):

- head office 总行 → 4 tier-1 branches 分行 → 8 sub-branches 支行 → 16 outlets 网点;
- 66 staff across every role, all with the password `mianze-demo` (see DEMO_USERS for the usernames);
- ~2,000 borrowers (small and micro enterprises, owners, individual businesses and corporate borrowers) with
  valid-looking unified social credit codes;
- ≥ 200 non-performing inclusive SME loans over ≥ 60 enterprises, each with who performed its credit stages,
  beside a performing book (inclusive SME and corporate) sized so that two tier-1 branches are within NPL
  tolerance and two are outside it (and their sub-branches vary around that);
- 31 cases in every lifecycle state, each built by the real service verbs (so every step is in the audit
  chain): merged consideration, a return for investigation, a committee deviation with its reason, a
  reopened case, an appeal altered to a less severe outcome, a referral, a legal hold, withdrawals.

The staff and the loan book are master data a bank imports from its HR and core-banking systems: they are
inserted directly, and the import is recorded as one audit event. Everything that happens to a case goes
through the service layer, one unit of work per user action.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from ..config import INSTANCE
from ..db import read_session, unit_of_work
from ..domain import hearing
from ..domain.calendar import WorkingCalendar
from ..domain.errors import ValidationFailed
from ..domain.states import STATE_CODES
from ..models import (
    ROLES,
    AuditEvent,
    Branch,
    Case,
    Enterprise,
    Letter,
    Loan,
    LoanStage,
    Respondent,
    User,
    replaying_at,
)
from ..services import accounts, audit, cases, document_form, investigation, letters, rulesets, tolerance

DEMO_PASSWORD = "mianze-demo"
DEFAULT_SEED = 20261125
MASTER_DATA_AGE = 90  # working days before today when the staff and the loan book were imported

# --- the organisation ------------------------------------------------------------------------------------
# Tier-1 branches with their sub-branches (code suffix, name, English, district, region code) and outlets,
# and the tolerance profile the performing book is sized to: the branch's inclusive SME NPL ratio and its
# all-loans NPL ratio (Zhengzhou and Jiyuan are within the 3 pp margin, Luoyang clearly outside it, Xinxiang
# just outside, so some of its sub-branches fall within).
TIER1 = [
    {"code": "ZZ", "name": "郑州分行", "en": "Zhengzhou Branch", "city": "郑州", "sme": "0.042", "all": "0.021",
     "subs": [("JS", "金水支行", "Jinshui", "金水区", "410105", [("花园路", "Huayuan Road"), ("经三路", "Jingsan Road")]),
              ("EQ", "二七支行", "Erqi", "二七区", "410103", [("大学路", "Daxue Road"), ("航海路", "Hanghai Road")])]},
    {"code": "LY", "name": "洛阳分行", "en": "Luoyang Branch", "city": "洛阳", "sme": "0.078", "all": "0.026",
     "subs": [("XG", "西工支行", "Xigong", "西工区", "410303", [("中州路", "Zhongzhou Road"), ("王城大道", "Wangcheng Avenue")]),
              ("JX", "涧西支行", "Jianxi", "涧西区", "410305", [("南昌路", "Nanchang Road"), ("长安路", "Chang'an Road")])]},
    {"code": "XX", "name": "新乡分行", "en": "Xinxiang Branch", "city": "新乡", "sme": "0.055", "all": "0.0205",
     "subs": [("MY", "牧野支行", "Muye", "牧野区", "410711", [("和平路", "Heping Road"), ("东明大道", "Dongming Avenue")]),
              ("HQ", "红旗支行", "Hongqi", "红旗区", "410702", [("新中大道", "Xinzhong Avenue"), ("向阳路", "Xiangyang Road")])]},
    {"code": "JY", "name": "济源分行", "en": "Jiyuan Branch", "city": "济源", "sme": "0.036", "all": "0.012",
     "subs": [("QY", "沁园支行", "Qinyuan", "沁园街道", "419001", [("济水大街", "Jishui Street"), ("宣化街", "Xuanhua Street")]),
              ("TT", "天坛支行", "Tiantan", "天坛街道", "419001", [("天坛路", "Tiantan Road"), ("愚公路", "Yugong Road")])]},
]

# username pattern → (role, where, 中文 post). `n` numbers each pattern from 1 across the bank.
DEMO_USERS = [
    ("admin", "admin", "head office", "系统管理员"),
    ("auditor{n}", "auditor", "head office", "内审部审计员"),
    ("appeal{n}", "appeal_reviewer", "head office", "总行申诉复核委员会委员（appeal1 兼主任: appeal_chair）"),
    ("chair{n}", "committee_chair", "tier-1 branch", "分行尽职免责评议委员会主任"),
    ("member{n}", "committee_member", "tier-1 branch", "分行尽职免责评议委员会委员"),
    ("investigator{n}", "investigator", "tier-1 branch", "分行尽职调查人员"),
    ("approver{n}", "credit_officer", "tier-1 branch", "分行授信审批人（审批）"),
    ("reviewer{n}", "credit_officer", "sub-branch", "支行授信审查岗（审查）"),
    ("disburser{n}", "credit_officer", "sub-branch", "支行放款审核岗（放款审核）"),
    ("officer{n}", "credit_officer", "outlet", "网点客户经理（贷前调查、贷后管理）"),
]

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
            "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万严武戴孔汤")
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英",
         "霞", "平", "刚", "桂英", "建国", "志强", "建华", "丽娟", "海燕", "晓东", "鹏飞", "文斌", "红梅", "春燕", "志刚",
         "玉兰", "俊杰", "晓明", "雪梅", "国庆", "卫东", "振华", "佳琪", "思远", "子涵", "宇航", "晨曦", "欣怡", "浩然",
         "海涛", "建军", "永强", "丽华", "金凤", "秀兰", "玉梅", "新民", "立新", "红霞", "婷婷", "晓燕", "凤英", "志远")
TRADE_A = "恒瑞鑫华宏金豫嘉天隆永聚万博富众汇新兴长福德锦昌宝裕顺泰安和广佳康润祥信远正卓盛"
TRADE_B = "达丰源盛远鼎原禾益兴通康诚鑫亚业青瑞润程泰隆和信美航阳越辉发"
INDUSTRIES = [
    ("机械配件", "制造业"), ("商贸", "批发和零售业"), ("农业科技", "农、林、牧、渔业"), ("食品", "制造业"),
    ("建材", "批发和零售业"), ("物流", "交通运输、仓储和邮政业"), ("纺织", "制造业"),
    ("电子科技", "信息传输、软件和信息技术服务业"), ("餐饮管理", "住宿和餐饮业"), ("印务", "制造业"),
    ("耐火材料", "制造业"), ("汽车配件", "制造业"), ("装饰工程", "建筑业"), ("家具", "制造业"),
    ("养殖", "农、林、牧、渔业"), ("钢结构", "建筑业"),
]
SHOPS = [("副食店", "批发和零售业"), ("五金店", "批发和零售业"), ("面馆", "住宿和餐饮业"), ("汽修部", "居民服务业"),
         ("建材门市部", "批发和零售业"), ("服装店", "批发和零售业"), ("农资店", "批发和零售业"), ("烩面馆", "住宿和餐饮业")]
CORPORATE = [("重工", "制造业"), ("能源", "电力、热力、燃气及水生产和供应业"), ("建设", "建筑业"), ("置业", "房地产业"),
             ("化工", "制造业"), ("交通投资", "交通运输、仓储和邮政业"), ("铝业", "制造业"), ("医药", "制造业")]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def uscc(rng: random.Random, region: str, individual_business: bool = False) -> str:
    """A valid-looking 统一社会信用代码 (GB 32100-2015): both check characters are correct."""
    body = "MA" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(6))
    value = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
    org_check = 11 - sum(value[c] * w for c, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    org = body + {10: "X", 11: "0"}.get(org_check, str(org_check))
    head = ("92" if individual_business else "91") + region + org
    check = (31 - sum(_USCC_CHARS.index(c) * w for c, w in zip(head, _USCC_WEIGHTS, strict=True)) % 31) % 31
    return head + _USCC_CHARS[check]


def id_number(rng: random.Random, region: str) -> str:
    """A valid-looking 18-digit resident identity number (GB 11643 check digit)."""
    born = date(1965, 1, 1) + timedelta(days=rng.randrange(365 * 33))
    head = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return head + "10X98765432"[sum(int(c) * w for c, w in zip(head, _ID_WEIGHTS, strict=True)) % 11]


def _phone(rng: random.Random) -> str:
    return rng.choice(("138", "139", "137", "150", "151", "158", "186", "187", "135")) + f"{rng.randrange(10**8):08d}"


def _yuan(value: int) -> Decimal:
    return Decimal(value)


# --- the fact patterns an investigation establishes (per stage of the case's first loan) -------------------

def _facts(**kw) -> dict:
    out = {"positive": [], "mitigating": [], "negative": [], "violation": False, "unperformed": [],
           "dissented": False}
    out.update(kw)
    return out


PROFILES: dict[str, dict[str, dict]] = {
    "clean": {},
    # A non-causal lapse: reduced outside tolerance, exempt within it (tolerance presumption).
    "minor": {"pre_loan": _facts(unperformed=[{"duty": "PL02", "causal": False}])},
    # A causal lapse with no violation: liable outside tolerance, exempt within it.
    "causal": {"pre_loan": _facts(unperformed=[{"duty": "PL03", "causal": True}])},
    "liable": {"pre_loan": _facts(violation=True, unperformed=[{"duty": "PL03", "causal": True}])},
    "negative": {"post_loan": _facts(negative=["N07"], unperformed=[{"duty": "PO03", "causal": True}])},
    "force_majeure": {"post_loan": _facts(positive=["P02"], unperformed=[{"duty": "PO01", "causal": True}])},
    "mitigated": {"post_loan": _facts(mitigating=["M02"], unperformed=[{"duty": "PO02", "causal": True}])},
    "dissent": {"approval": _facts(dissented=True, unperformed=[{"duty": "AP02", "causal": True}]),
                "review": _facts(unperformed=[{"duty": "RV02", "causal": True}])},
}

EVIDENCE_TEXT = {
    "PL02": "征信查询记录：贷前未留存企业主个人征信报告查询结果。",
    "PL03": "银行流水与纳税记录核对表：申报经营收入与对公流水差异约 46%，未见核实记录。",
    "PO01": "贷后检查台账：第二、三季度现场检查记录缺失。",
    "PO02": "资金流向明细：贷款发放后三日内 60% 资金转入关联个人账户。",
    "PO03": "风险预警系统日志：预警信号出现后 47 天未上报。",
    "AP02": "审批意见书：审查提出的追加保证人条件未列入审批条件。",
    "RV02": "审查报告：未对第一还款来源作出量化分析。",
}


DEMO_BANK_NAME = "中原示范商业银行股份有限公司"

# The investigator's written findings (查明事实) of what each fact pattern establishes, per code.
FINDINGS_TEXT = {
    "PL02": "经调阅贷前调查档案，被评议人未留存企业主个人征信报告的查询结果，但企业征信报告已查询并记录。",
    "PL03": "经核对银行流水与纳税记录，借款人申报经营收入与对公流水差异约46%，被评议人未作核实即按申报收入测算还款能力。",
    "PO01": "经查贷后检查台账，第二、三季度现场检查记录缺失，被评议人称因借款人停产未能入场。",
    "PO02": "经查资金流向明细，贷款发放后三日内60%的资金转入关联个人账户，被评议人未监测到该偏离。",
    "PO03": "经查风险预警系统日志，预警信号出现后47天被评议人方才上报。",
    "AP02": "经查审批意见书，审查提出的追加保证人条件未列入审批条件。",
    "RV02": "经查审查报告，被评议人未对第一还款来源作出量化分析。",
    "P02": "借款人所在园区于贷后第七个月遭受暴雨洪涝灾害被迫停产，被评议人于灾后次日报告风险并申请了财产保全。",
    "N07": "风险预警信号出现后，被评议人既未按规定上报，也未采取催收和保全措施，致使借款人转移资产、损失扩大。",
    "M02": "被评议人的资金用途监测迟延，但借款人系以虚假交易合同挪用资金，按时监测亦难以发现。",
    "dissent": "审批会议记录显示，被评议人对该笔授信投了反对票，并书面说明第一还款来源不足的理由，后被证明正确。",
    "violation": "被评议人明知借款人申报收入与流水严重不符，仍按申报收入发放贷款，违反了监管关于贷款“三查”的规定。",
}


def _findings(stage_zh: str, facts: dict) -> str:
    """The written findings of one stage's facts (a clean stage: what was checked and that nothing was wrong)."""
    lines = [FINDINGS_TEXT[c] for c in (*facts["positive"], *facts["mitigating"], *facts["negative"])]
    lines += [FINDINGS_TEXT[u["duty"]] for u in facts["unperformed"]]
    if facts["dissented"]:
        lines.append(FINDINGS_TEXT["dissent"])
    if facts["violation"]:
        lines.append(FINDINGS_TEXT["violation"])
    if not lines:
        lines = [f"经调阅本笔贷款{stage_zh}环节的业务档案并询问经办人员，被评议人按规定履行了{stage_zh}职责，"
                 "未发现违规或未履职情形。"]
    return "\n".join(lines)


STAGE_ZH = {"marketing": "营销", "acceptance": "受理", "pre_loan": "贷前调查", "review": "贷中审查", "approval": "审批",
            "disbursement": "放款审核", "post_loan": "贷后管理"}


# --- building blocks -------------------------------------------------------------------------------------

@dataclass
class _Org:
    head: int = 0
    tier1: list[dict] = field(default_factory=list)  # {"code","id","sme","all","subs":[{"id","code","outlets":[…]}]}
    users: dict[str, int] = field(default_factory=dict)
    regions: dict[int, str] = field(default_factory=dict)  # branch id → region code


@dataclass
class _Npl:
    enterprise_id: int
    tier1: str
    loan_ids: list[int]


def _add_branch(s: Session, code: str, name: str, name_en: str, level: int, parent: Branch | None) -> Branch:
    b = Branch(code=code, name=name, name_en=name_en, level=level, parent_id=parent.id if parent else None)
    s.add(b)
    s.flush()
    b.path = (parent.path if parent else "/") + f"{b.id}/"
    s.add(b)
    return b


class _Names:
    """Unique Chinese names for people and borrowers, drawn from one random stream."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.people: set[str] = set()
        self.firms: set[str] = set()

    def person(self) -> str:
        while True:
            name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
            if name not in self.people:
                self.people.add(name)
                return name

    def trade(self) -> str:
        while True:
            a, b = self.rng.choice(TRADE_A), self.rng.choice(TRADE_B)
            if a != b:
                return a + b

    def firm(self, city: str, district: str, kind: str) -> tuple[str, str, str]:
        """(name, owner, industry) of a borrower of `kind`."""
        while True:
            owner = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
            if kind == "individual_business":
                shop, industry = self.rng.choice(SHOPS)
                name = f"{city}市{district}{owner[0]}记{shop}" if self.rng.random() < 0.5 else \
                    f"{city}市{district}{self.trade()}{shop}"
            elif kind == "other":
                suffix, industry = self.rng.choice(CORPORATE)
                name = f"河南{self.trade()}{suffix}{self.rng.choice(('集团有限公司', '股份有限公司'))}"
            else:
                trade, industry = self.rng.choice(INDUSTRIES)
                name = f"{city}市{self.trade()}{trade}有限公司"
                if kind == "owner":
                    name = f"{owner}（{name}实际控制人）"
            if name not in self.firms:
                self.firms.add(name)
                return name, owner, industry


def _build_org(s: Session, rng: random.Random, names: _Names, password_hash: str) -> _Org:
    org = _Org()
    head = _add_branch(s, "HO", "总行", "Head Office", 0, None)
    org.head = head.id
    org.regions[head.id] = "410105"
    counters: dict[str, int] = {}
    employee = iter(range(1, 10_000))

    def person(pattern: str, roles: str, branch: Branch, region: str, locale: str = "zh") -> None:
        counters[pattern] = counters.get(pattern, 0) + 1
        username = pattern.format(n=counters[pattern])
        n = next(employee)
        u = User(username=username, name=names.person(), employee_no=f"E{2008 + n % 15}{n:04d}",
                 branch_id=branch.id, roles=roles, password_hash=password_hash, locale=locale,
                 id_number=id_number(rng, region), phone=_phone(rng))
        s.add(u)
        s.flush()
        org.users[username] = u.id

    person("admin", "admin", head, "410105")
    person("auditor{n}", "auditor", head, "410105")
    person("auditor{n}", "auditor", head, "410105", locale="en")
    # Head office's appeal committee: appeal1 chairs it (and votes), appeal2 and appeal3 sit on it.
    for n in range(3):
        person("appeal{n}", "appeal_reviewer appeal_chair" if n == 0 else "appeal_reviewer", head, "410105")
    for t in TIER1:
        t1 = _add_branch(s, t["code"], t["name"], t["en"], 1, head)
        region = t["subs"][0][4]
        org.regions[t1.id] = region
        entry = {"code": t["code"], "id": t1.id, "city": t["city"], "sme": Decimal(t["sme"]),
                 "all": Decimal(t["all"]), "subs": []}
        person("chair{n}", "committee_chair", t1, region)
        for _ in range(3):
            person("member{n}", "committee_member", t1, region)
        for _ in range(2):
            person("investigator{n}", "investigator", t1, region)
        person("approver{n}", "credit_officer", t1, region)
        entry["chair"] = f"chair{counters['chair{n}']}"
        entry["members"] = [f"member{counters['member{n}'] - k}" for k in (2, 1, 0)]
        entry["investigators"] = [f"investigator{counters['investigator{n}'] - k}" for k in (1, 0)]
        entry["approver"] = f"approver{counters['approver{n}']}"
        for j, (_code, sub_name, sub_en, district, sub_region, outlets) in enumerate(t["subs"], start=1):
            sb = _add_branch(s, f"{t['code']}{j:02d}", f"{t['city']}{sub_name}", f"{t['en'].split()[0]} {sub_en} "
                             "Sub-branch", 2, t1)
            org.regions[sb.id] = sub_region
            person("reviewer{n}", "credit_officer", sb, sub_region)
            person("disburser{n}", "credit_officer", sb, sub_region)
            sub = {"id": sb.id, "code": sb.code, "district": district, "region": sub_region, "outlets": [],
                   "reviewer": f"reviewer{counters['reviewer{n}']}", "disburser": f"disburser{counters['disburser{n}']}"}
            for k, (street, street_en) in enumerate(outlets, start=1):
                ou = _add_branch(s, f"{sb.code}{k:02d}", f"{sub_name}{street}网点", f"{street_en} Outlet", 3, sb)
                org.regions[ou.id] = sub_region
                person("officer{n}", "credit_officer", ou, sub_region)
                sub["outlets"].append({"id": ou.id, "officer": f"officer{counters['officer{n}']}"})
            entry["subs"].append(sub)
        org.tier1.append(entry)
    s.flush()
    return org


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, 28))


class _Book:
    """Borrowers and loans, inserted in bulk (Core executemany), looked up again by their natural keys."""

    def __init__(self, s: Session, rng: random.Random, names: _Names, period: date):
        self.s, self.rng, self.names, self.period = s, rng, names, period
        self.enterprises: list[dict] = []
        self.loans: list[dict] = []
        self.stages: list[tuple[str, str, str, date]] = []  # (loan_no, stage, username, performed_on)
        self.codes: set[str] = set()
        self.seq = 0

    def enterprise(self, kind: str, city: str, district: str, region: str) -> str:
        name, owner, industry = self.names.firm(city, district, kind)
        while True:
            code = uscc(self.rng, region, individual_business=kind == "individual_business")
            if code not in self.codes:
                self.codes.add(code)
                break
        self.enterprises.append({"name": name, "uscc": code, "kind": kind, "owner_name": owner,
                                 "industry": industry})
        return code

    def loan(self, prefix: str, ent: str, branch_id: int, product: str, credit_total: int, amount: int,
             balance: Decimal, classification: str, start: date, months: int) -> str:
        self.seq += 1
        loan_no = f"{prefix}{start.year}{self.seq:06d}"
        self.loans.append({"loan_no": loan_no, "uscc": ent, "branch_id": branch_id, "product_class": product,
                           "credit_total": _yuan(credit_total), "amount": _yuan(amount), "balance": balance,
                           "start_date": start, "maturity_date": _add_months(start, months),
                           "classification": classification, "written_off": False})
        return loan_no

    def start_date(self, earliest_days: int, latest_days: int) -> date:
        return self.period - timedelta(days=self.rng.randint(latest_days, earliest_days))

    def write(self) -> tuple[dict[str, int], dict[str, int]]:
        ent_t, loan_t = Enterprise.__table__, Loan.__table__
        conn = self.s.connection()
        conn.execute(insert(ent_t), self.enterprises)
        ent_ids = dict(conn.execute(sa_select(ent_t.c.uscc, ent_t.c.id)).all())
        rows = [{**{k: v for k, v in lo.items() if k != "uscc"}, "enterprise_id": ent_ids[lo["uscc"]]}
                for lo in self.loans]
        conn.execute(insert(loan_t), rows)
        loan_ids = dict(conn.execute(sa_select(loan_t.c.loan_no, loan_t.c.id)).all())
        return ent_ids, loan_ids


def _build_book(s: Session, rng: random.Random, names: _Names, org: _Org, period: date) -> list[_Npl]:
    """The loan book: NPL enterprises with their stage records, then the performing book sized per sub-branch."""
    book = _Book(s, rng, names, period)
    npl_groups: list[tuple[str, str, list[str]]] = []  # (tier-1 code, uscc, loan numbers)
    kinds = ("small", "micro", "individual_business", "owner")
    for t in org.tier1:
        for n in range(20):
            sub = t["subs"][n % len(t["subs"])]
            outlet = rng.choice(sub["outlets"])
            kind = rng.choices(kinds, weights=(35, 35, 20, 10))[0]
            ent = book.enterprise(kind, t["city"], sub["district"], sub["region"])
            count = rng.choices((1, 2, 3, 4, 5), weights=(22, 30, 27, 13, 8))[0]
            if n < 3:
                count = max(count, 3)  # every branch has enterprises with several NPLs (merged consideration)
            credit_total = rng.randrange(60, 1001) * 10_000 if kind != "individual_business" \
                else rng.randrange(30, 301) * 10_000
            numbers = []
            share = credit_total // count
            for _ in range(count):
                amount = max(10_000, (share * rng.randint(60, 100) // 100) // 10_000 * 10_000)
                balance = (Decimal(amount) * Decimal(rng.randint(45, 100)) / 100).quantize(Decimal("0.01"))
                start = book.start_date(1100, 200)
                cls = rng.choices(("substandard", "doubtful", "loss"), weights=(55, 30, 15))[0]
                loan_no = book.loan(t["code"], ent, outlet["id"], "inclusive_sme", credit_total, amount, balance,
                                    cls, start, rng.choice((12, 24, 36)))
                numbers.append(loan_no)
                # Who performed each credit stage, and when: the pre-disbursement stages before the start
                # date, post-loan management in the months after it.
                book.stages += [
                    (loan_no, "pre_loan", outlet["officer"], start - timedelta(days=rng.randint(18, 30))),
                    (loan_no, "review", sub["reviewer"], start - timedelta(days=rng.randint(9, 15))),
                    (loan_no, "approval", t["approver"], start - timedelta(days=rng.randint(3, 7))),
                    (loan_no, "disbursement", sub["disburser"], start - timedelta(days=rng.randint(1, 2))),
                    (loan_no, "post_loan", outlet["officer"], start + timedelta(days=rng.randint(60, 150))),
                ]
            npl_groups.append((t["code"], ent, numbers))

    # The performing book, sized per sub-branch to land near the tier-1 branch's profile.
    npl_by_sub: dict[int, int] = {}
    outlet_sub = {o["id"]: sub["id"] for t in org.tier1 for sub in t["subs"] for o in sub["outlets"]}
    for lo in book.loans:
        sub_id = outlet_sub[lo["branch_id"]]
        npl_by_sub[sub_id] = npl_by_sub.get(sub_id, 0) + int(lo["balance"])
    # The first sub-branch of each tier-1 branch runs a worse SME book than the second, so that a branch
    # just outside tolerance (Xinxiang) has one sub-branch outside and one within.
    spread = ((Decimal("1.12"), Decimal("0.95")), (Decimal("0.90"), Decimal("1.05")))
    for t in org.tier1:
        for sub, (sme_factor, all_factor) in zip(t["subs"], spread, strict=True):
            sme_npl = npl_by_sub.get(sub["id"], 0)
            sme_ratio = t["sme"] * sme_factor
            all_ratio = t["all"] * all_factor
            sme_total = int(sme_npl / sme_ratio)
            remaining = sme_total - sme_npl
            while remaining > 0:
                kind = rng.choices(kinds, weights=(40, 35, 15, 10))[0]
                ent = book.enterprise(kind, t["city"], sub["district"], sub["region"])
                outlet = rng.choice(sub["outlets"])
                credit_total = rng.randrange(50, 1001) * 10_000
                for _ in range(rng.choice((1, 1, 2))):
                    amount = max(100_000, (credit_total * rng.randint(30, 60) // 100) // 10_000 * 10_000)
                    balance = min(remaining, amount * rng.randint(40, 100) // 100)
                    if balance <= 0:
                        break
                    remaining -= balance
                    cls = "special_mention" if rng.random() < 0.06 else "normal"
                    book.loan(t["code"], ent, outlet["id"], "inclusive_sme", credit_total, amount, _yuan(balance),
                              cls, book.start_date(700, 10), rng.choice((12, 24, 36)))
            # Corporate loans about three times the SME book; their NPLs bring the all-loans ratio to the profile.
            corp_total = sme_total * rng.randint(25, 35) // 10
            corp_npl = max(0, int(all_ratio * (sme_total + corp_total)) - sme_npl)
            booked = 0
            while booked < corp_total - corp_npl:
                ent = book.enterprise("other", t["city"], sub["district"], sub["region"])
                amount = rng.randrange(20, 151) * 1_000_000
                balance = min(corp_total - corp_npl - booked, amount * rng.randint(50, 100) // 100)
                booked += balance
                cls = "special_mention" if rng.random() < 0.05 else "normal"
                book.loan(t["code"], ent, sub["id"], "corporate", amount * 2, amount, _yuan(balance), cls,
                          book.start_date(900, 10), rng.choice((36, 60)))
            pieces = rng.randint(1, 3) if corp_npl else 0
            for i in range(pieces):
                ent = book.enterprise("other", t["city"], sub["district"], sub["region"])
                balance = corp_npl // pieces + (corp_npl % pieces if i == 0 else 0)
                amount = (balance * 12 // 10) // 1_000_000 * 1_000_000 + 1_000_000
                book.loan(t["code"], ent, sub["id"], "corporate", amount, amount, _yuan(balance),
                          rng.choice(("substandard", "doubtful")), book.start_date(1000, 300), 36)

    ent_ids, loan_ids = book.write()
    user_ids = org.users
    s.connection().execute(insert(LoanStage.__table__), [
        {"loan_id": loan_ids[no], "stage": stage, "user_id": user_ids[who], "performed_on": day}
        for no, stage, who, day in book.stages])
    return [_Npl(ent_ids[code], t1, [loan_ids[n] for n in numbers]) for t1, code, numbers in npl_groups]


# --- case stories ----------------------------------------------------------------------------------------

@dataclass
class _Story:
    """One case's history: actions spaced in working days, each in its own unit of work."""

    tier1: dict
    npl: _Npl
    profile: tuple[str, ...]
    steps: list[tuple[int, Callable]] = field(default_factory=list)
    case_id: int | None = None
    loan_ids: list[int] = field(default_factory=list)

    def then(self, gap: int, action: Callable) -> _Story:
        self.steps.append((gap, action))
        return self


class _Loader:
    def __init__(self, engine, rng: random.Random, org: _Org, today: date, evidence_dir: Path, cal: WorkingCalendar):
        self.engine, self.rng, self.org, self.today, self.evidence_dir, self.cal = \
            engine, rng, org, today, evidence_dir, cal

    # helpers
    def user(self, s: Session, username: str) -> User:
        return s.get(User, self.org.users[username])

    def handler(self, s: Session, story: _Story, stage: str) -> User:
        """Who performed `stage` of the case's first loan."""
        row = s.exec(select(LoanStage).where(LoanStage.loan_id == story.loan_ids[0], LoanStage.stage == stage)).first()
        return s.get(User, row.user_id)

    def timeline(self, stories: list[tuple[_Story, int]]) -> list[tuple[date, int, int, _Story, Callable]]:
        """Every step of every story on its day, in the order things happened.

        Each story's last step falls `lag` working days before today; the steps of different stories
        interleave by day, so the audit chain and the document numbers follow the calendar.
        """
        out = []
        for i, (story, lag) in enumerate(stories):
            day = self.cal.add_working_days(self.today, -(sum(gap for gap, _ in story.steps) + lag))
            for j, (gap, action) in enumerate(story.steps):
                day = self.cal.add_working_days(day, gap)
                out.append((day, i, j, story, action))
        return sorted(out, key=lambda step: step[:3])

    def run(self, day: date, story: _Story, action: Callable, moment: datetime) -> None:
        """One user action of a story, in its own unit of work, replayed at `moment` of `day`."""
        with replaying_at(moment), unit_of_work(self.engine) as s:
            case = s.get(Case, story.case_id) if story.case_id else None
            action(s, story, case, day)

    # actions: each takes (session, story, case, day)
    def open(self, loans: int | None = None, batch: bool = False):
        def act(s, story, case, day):
            ids = story.npl.loan_ids if loans is None else story.npl.loan_ids[:loans]
            case = cases.open_case(s, self.user(s, "admin"), ids, batch_report=batch, today=day)
            story.case_id, story.loan_ids = case.id, sorted(ids)
        return act

    def statement(self, stage: str, text: str):
        def act(s, story, case, day):
            cases.file_statement(s, case, self.handler(s, story, stage), text)
        return act

    def assign(self, which: int = 0):
        def act(s, story, case, day):
            cases.assign_investigator(s, case, self.user(s, story.tier1["chair"]),
                                      self.org.users[story.tier1["investigators"][which]], today=day)
        return act

    def facts(self, profile: tuple[str, ...] | None = None, only: str | None = None):
        """The investigator records every respondent's facts (per loan and stage), with evidence for lapses."""
        def act(s, story, case, day):
            wanted = profile or story.profile
            patterns: dict[str, dict] = {}
            for name in wanted:
                patterns.update(PROFILES[name])
            investigator = s.get(User, case.investigator_id)
            for r in cases.respondents_of(s, case.id):
                rows = s.exec(select(LoanStage).where(LoanStage.user_id == r.user_id,
                                                      LoanStage.loan_id.in_(story.loan_ids))
                              .order_by(LoanStage.loan_id, LoanStage.stage)).all()
                for a in rows:
                    if only and a.stage != only:
                        continue
                    facts = patterns.get(a.stage) if a.loan_id == story.loan_ids[0] else None
                    facts = _facts() if facts is None else {**facts, "unperformed": [dict(u) for u in facts["unperformed"]]}
                    for u in facts["unperformed"]:
                        u["evidence"] = [self.evidence(s, case, investigator, r.id, u["duty"]).id]
                    facts["findings"] = _findings(STAGE_ZH[a.stage], facts)
                    facts["findings_evidence"] = [e for u in facts["unperformed"] for e in u["evidence"]]
                    investigation.record_facts(s, case, investigator, r.id, a.loan_id, a.stage, facts)
        return act

    def evidence(self, s, case, actor, respondent_id: int, duty: str):
        text = f"{case.number}\n{EVIDENCE_TEXT[duty]}\n（演示数据）\n"
        return investigation.add_evidence(
            s, case, actor, filename=f"{EVIDENCE_TEXT[duty].split('：')[0]}.txt", content_type="text/plain",
            data=text.encode("utf-8"),
            storage_dir=str(self.evidence_dir), description=EVIDENCE_TEXT[duty][:60], respondent_id=respondent_id)

    def submit(self):
        """The investigator submits; a respondent whose statement deadline has not passed and who filed none
        declines first (the investigation may not be submitted while a statement is still awaited)."""
        def act(s, story, case, day):
            for r in cases.respondents_of(s, case.id):
                if hearing.position(r.statement_at, r.statement_declined_at, r.statement_due, day) == hearing.AWAITED:
                    cases.decline_statement(s, case, s.get(User, r.user_id), "本人对调查事实无异议，不另行陈述。")
            cases.submit_investigation(s, case, s.get(User, case.investigator_id), today=day)
        return act

    def votes(self, voters: int = 4, override: dict[str, str] | None = None):
        """Committee members (then the chair) vote; `override` maps a stage holder ("pre_loan") to an outcome."""
        def act(s, story, case, day):
            t = story.tier1
            people = (t["members"] + [t["chair"]])[:voters]
            changed = {self.handler(s, story, stage).id: outcome for stage, outcome in (override or {}).items()}
            for username in people:
                member = self.user(s, username)
                for r in cases.respondents_of(s, case.id):
                    outcome = changed.get(r.user_id, r.recommended_outcome)
                    reason = "同意调查结论和系统建议" if outcome == r.recommended_outcome else "被评议人主动清收，损失已大部分挽回"
                    cases.record_vote(s, case, member, r.id, outcome, reason)
        return act

    def determine(self, reasons: dict[str, str] | None = None):
        def act(s, story, case, day):
            deviations = {}
            for stage, reason in (reasons or {}).items():
                uid = self.handler(s, story, stage).id
                r = s.exec(select(Respondent).where(Respondent.case_id == case.id, Respondent.user_id == uid)).one()
                deviations[r.id] = reason
            cases.determine(s, case, self.user(s, story.tier1["chair"]), deviations, today=day)
        return act

    def publicity(self):
        def act(s, story, case, day):
            chair = self.user(s, story.tier1["chair"])
            letters.issue_determination_letters(s, case, chair, today=day)
            cases.start_publicity(s, case, chair, today=day)
        return act

    def correct_letters(self, reason: str):
        """After a re-determination, issue corrected letters where the outcome changed."""
        def act(s, story, case, day):
            chair = self.user(s, story.tier1["chair"])
            for r in cases.respondents_of(s, case.id):
                latest = s.exec(select(Letter).where(Letter.case_id == case.id, Letter.kind == "determination",
                                                     Letter.respondent_id == r.id)
                                .order_by(Letter.version.desc())).first()
                if latest is not None and latest.data.get("outcome") != r.decided_outcome:
                    letters.correct_letter(s, latest.id, chair, reason, today=day)
        return act

    def reopen(self, reason: str):
        def act(s, story, case, day):
            cases.reopen(s, case, self.user(s, story.tier1["chair"]), reason, today=day)
        return act

    def return_(self, reason: str):
        def act(s, story, case, day):
            cases.return_for_investigation(s, case, self.user(s, story.tier1["chair"]), reason, today=day)
        return act

    def end_publicity(self, acknowledged: tuple[str, ...] = ("pre_loan",)):
        """Publicity ends, and the letters are served: the holders of `acknowledged` stages acknowledge
        theirs in the app, the chair hands the others over in person."""
        def act(s, story, case, day):
            cases.end_publicity(s, case, None, today=day)
            chair = self.user(s, story.tier1["chair"])
            in_app = {self.handler(s, story, stage).id for stage in acknowledged}
            for r in cases.respondents_of(s, case.id):
                window = letters.appeal_windows(s, case)[r.id]
                if window.letter_id is None or window.service_id is not None:
                    continue
                if r.user_id in in_app:
                    letters.acknowledge(s, case, s.get(User, r.user_id), window.letter_id, today=day)
                else:
                    letters.record_service(s, case, chair, window.letter_id, "in_person", day,
                                           served_by=chair.name, today=day)
        return act

    def waive(self, stage: str, statement: str = "本人已收到认定书，对认定结论无异议，自愿放弃申诉。"):
        def act(s, story, case, day):
            cases.waive_appeal(s, case, self.handler(s, story, stage), statement, today=day)
        return act

    def appeal(self, stage: str, grounds: str):
        def act(s, story, case, day):
            cases.file_appeal(s, case, self.handler(s, story, stage), grounds, today=day)
        return act

    def close_window(self):
        def act(s, story, case, day):
            cases.close_appeal_window(s, case, None, today=day)
        return act

    def decide(self, stage: str, decision: str, new_outcome: str | None, reason: str):
        def act(s, story, case, day):
            from ..models import Appeal

            uid = self.handler(s, story, stage).id
            appeal = s.exec(select(Appeal).join(Respondent, Respondent.id == Appeal.respondent_id)
                            .where(Appeal.case_id == case.id, Respondent.user_id == uid)).one()
            # The panel votes (each member as the panel decided), then its chair signs what the votes carry.
            for member in ("appeal1", "appeal2", "appeal3"):
                cases.record_appeal_vote(s, case, self.user(s, member), appeal.id, decision, new_outcome, reason)
            cases.decide_appeal(s, case, self.user(s, "appeal1"), appeal.id, reason, today=day)
        return act

    def sanction(self, stage: str, points: int, kind: str, amount: str):
        """The head office's administrator records the accountability result HR applied (this month)."""
        def act(s, story, case, day):
            from ..domain.hr import month_of
            from ..services import hr

            r = s.exec(select(Respondent).where(Respondent.case_id == case.id,
                                                Respondent.user_id == self.handler(s, story, stage).id)).one()
            hr.record_sanction(s, case, self.user(s, "admin"), r.id, points=points, sanction_type=kind, amount=amount,
                               month=month_of(day), note="人力资源部问责处理决定")
        return act

    def conclude(self):
        def act(s, story, case, day):
            cases.conclude_appeals(s, case, self.user(s, "appeal1"), today=day)
        return act

    def refer(self):
        def act(s, story, case, day):
            cases.refer_for_accountability(s, case, self.user(s, story.tier1["chair"]), today=day)
        return act

    def close(self):
        def act(s, story, case, day):
            cases.close(s, case, self.user(s, story.tier1["chair"]), today=day)
        return act

    def withdraw(self, reason: str):
        def act(s, story, case, day):
            cases.withdraw(s, case, self.user(s, story.tier1["chair"]), reason, today=day)
        return act

    def hold(self, reason: str):
        def act(s, story, case, day):
            cases.set_legal_hold(s, case, self.user(s, "auditor1"), True, reason)
        return act


def _stories(ld: _Loader, npls: list[_Npl]) -> list[tuple[_Story, int]]:
    """The demo cases: (story, lag in working days before today of its last action)."""
    rng = ld.rng
    t1 = {t["code"]: t for t in ld.org.tier1}
    free = {code: [n for n in npls if n.tier1 == code] for code in t1}
    for group in free.values():
        rng.shuffle(group)

    def npl(code: str, min_loans: int = 1) -> _Npl:
        group = free[code]
        pick = next(n for n in group if len(n.loan_ids) >= min_loans)
        group.remove(pick)
        return pick

    def story(code: str, *profile: str, min_loans: int = 1) -> _Story:
        return _Story(t1[code], npl(code, min_loans), profile or ("clean",))

    def to_review(st: _Story, statement: bool = False, loans: int | None = None) -> _Story:
        st.then(0, ld.open(loans))
        if statement:
            st.then(1, ld.statement("pre_loan", "本人已按规定完成贷前实地调查，企业经营恶化系原材料价格大幅上涨所致，"
                                                "恳请依据尽职免责规定予以免责。"))
        return st.then(1, ld.assign(rng.randrange(2))).then(5, ld.facts()).then(4, ld.submit())

    def to_determined(st: _Story, **kw) -> _Story:
        return to_review(st, **kw).then(3, ld.votes()).then(1, ld.determine())

    def to_publicity(st: _Story, **kw) -> _Story:
        return to_determined(st, **kw).then(1, ld.publicity())

    def to_window(st: _Story, **kw) -> _Story:
        return to_publicity(st, **kw).then(6, ld.end_publicity())

    out: list[tuple[_Story, int]] = []
    # registered
    out.append((story("ZZ").then(0, ld.open()), 1))
    out.append((story("LY").then(0, ld.open()), 3))
    out.append((story("XX", min_loans=3).then(0, ld.open()), 0))
    st = story("JY").then(0, ld.open())
    st.then(1, ld.statement("pre_loan", "该笔贷款贷前已实地核查经营场所并留存影像资料，请调查组调阅。"))
    out.append((st, 0))
    # investigating
    out.append((story("ZZ").then(0, ld.open()).then(1, ld.assign()), 2))
    st = story("LY", "liable").then(0, ld.open()).then(1, ld.assign())
    st.then(2, ld.hold("借款人涉嫌骗取贷款，公安机关已立案侦查，案卷依法保全。"))
    out.append((st, 1))
    # …overdue: the investigation started more than 20 working days ago and facts are still incomplete
    st = story("JY", "minor").then(0, ld.open()).then(1, ld.assign()).then(6, ld.facts(only="pre_loan"))
    out.append((st, 16))
    # merged consideration: a case opened for one loan is withdrawn and merged into one covering all the
    # enterprise's NPLs
    st = story("XX", "causal", min_loans=3).then(0, ld.open(loans=1))
    st.then(2, ld.withdraw("发现同一企业另有两笔不良贷款，撤销本案，并入该企业全部不良贷款的新案件统一合并考量"))
    out.append((st, 9))
    merged = _Story(st.tier1, st.npl, ("causal",))
    merged.then(0, ld.open()).then(1, ld.assign()).then(3, ld.facts(only="pre_loan"))
    out.append((merged, 2))
    # under_review
    out.append((to_review(story("ZZ", "causal", min_loans=2)), 1))
    st = to_review(story("LY", "liable"))
    st.then(2, ld.return_("违规事实认定依据不足，请补充调取借款人纳税记录后重新核实")).then(4, ld.facts(("minor",)))
    st.then(2, ld.submit()).then(1, ld.votes(voters=2))
    out.append((st, 1))
    out.append((to_review(story("XX", "dissent")).then(2, ld.votes()), 0))
    out.append((to_review(story("JY"), statement=True).then(1, ld.votes(voters=1)), 0))
    # determined: one with a committee deviation from the recommendation, with its reason
    st = to_review(story("LY", "minor", min_loans=2))
    st.then(3, ld.votes(override={"pre_loan": "exempt"}))
    st.then(1, ld.determine({"pre_loan": "被评议人的疏漏与损失无因果关系，且其主动清收已收回大部分本息，委员会一致认为可免除其责任"}))
    out.append((st, 1))
    out.append((to_determined(story("ZZ")), 0))
    # in_publicity
    out.append((to_publicity(story("XX", "mitigated")), 2))
    out.append((to_publicity(story("JY", "force_majeure", min_loans=2)), 1))
    # appeal_window: one appeal already filed
    out.append((to_window(story("LY", "liable")).then(1, ld.appeal("pre_loan", "违规认定所依据的流水差异系企业现金收入未入账所致，"
                                                                               "本人已按当时制度核实，请求复核。")), 0))
    out.append((to_window(story("ZZ")).then(1, ld.waive("review")), 1))
    # appeal_review: two appeals, one decided
    st = to_window(story("XX", "minor", "dissent"))
    st.then(1, ld.appeal("pre_loan", "征信报告已查询，仅系归档遗漏，不应认定为未履职。"))
    st.then(1, ld.appeal("review", "审查报告已提示第一还款来源风险，审批未采纳不应归责于审查岗。"))
    st.then(4, ld.close_window()).then(3, ld.decide("review", "upheld", None, "审查报告确未对还款来源作量化分析，维持原认定"))
    out.append((st, 1))
    st = to_window(story("LY", "causal")).then(2, ld.appeal("pre_loan", "贷款用途已通过实地走访核实，请求重新认定。"))
    out.append((st.then(4, ld.close_window()), 2))
    # final: an appeal altered to a less severe outcome
    st = to_window(story("XX", "liable", min_loans=2))
    st.then(1, ld.appeal("pre_loan", "本人对流水差异已书面报告支行负责人（附报告），不存在故意违规。"))
    st.then(5, ld.close_window()).then(1, ld.sanction("pre_loan", 4, "warning", "3000.00"))  # refunded in half
    st.then(4, ld.decide("pre_loan", "altered", "reduced", "新提交的书面报告证明被评议人曾提示风险，违规情节较轻，改为减责"))
    out.append((st.then(1, ld.conclude()), 3))
    # final: reopened after a substantiated objection in publicity, re-determined, letters corrected
    st = to_publicity(story("LY", "liable"))
    st.then(2, ld.reopen("公示期间被评议人提交借款人伪造纳税凭证的公安笔录，原违规认定事实有误，异议成立"))
    st.then(1, ld.return_("异议涉及的违规事实需重新调查核实")).then(2, ld.facts(("minor",))).then(1, ld.submit())
    st.then(2, ld.votes()).then(1, ld.determine())
    st.then(1, ld.correct_letters("公示期异议成立，重新评议后变更认定结论")).then(0, ld.publicity())
    st.then(6, ld.end_publicity()).then(6, ld.close_window())
    out.append((st, 2))
    out.append((to_window(story("JY", min_loans=2)).then(6, ld.close_window()), 4))
    # referred
    out.append((to_window(story("LY", "negative")).then(6, ld.close_window()).then(2, ld.refer()), 3))
    out.append((to_window(story("XX", "liable")).then(6, ld.close_window()).then(1, ld.refer())
                .then(3, ld.sanction("pre_loan", 6, "demerit", "5000.00")), 1))
    # closed
    out.append((to_window(story("ZZ", min_loans=2)).then(6, ld.close_window()).then(5, ld.close()), 8))
    out.append((to_window(story("JY", "negative")).then(6, ld.close_window()).then(2, ld.refer()).then(15, ld.close()),
                5))
    st = to_window(story("LY", "minor")).then(1, ld.appeal("pre_loan", "请求免责。"))
    st.then(5, ld.close_window()).then(4, ld.decide("pre_loan", "upheld", None, "事实清楚，维持减责认定"))
    st.then(1, ld.conclude()).then(2, ld.refer()).then(10, ld.close())
    out.append((st, 12))
    # withdrawn
    out.append((story("ZZ").then(0, ld.open()).then(3, ld.withdraw("借款人已全额归还贷款本息，不良贷款已收回")), 20))
    st = story("LY").then(0, ld.open()).then(1, ld.assign())
    st.then(4, ld.withdraw("借款人完成债务重组并正常还款六个月，贷款分类上调为关注类，不再属于不良贷款"))
    out.append((st, 15))
    return out


# --- the entry point -------------------------------------------------------------------------------------

def _default_evidence_dir() -> Path:
    # The same default as workflow.config (EVIDENCE_DIR), without reading the rest of the app configuration.
    return Path(os.environ.get("MIANZE_EVIDENCE_DIR", str(INSTANCE / "evidence")))


def _load_master_data(engine, rng: random.Random, seed: int, today: date, cal: WorkingCalendar):
    """Branches, staff and the loan book (in one unit of work, dated when they were imported)."""
    names = _Names(rng)
    # The staff and the loan book were imported well before the first case of the demo history.
    imported_at = datetime.combine(cal.add_working_days(today, -MASTER_DATA_AGE), dtime(1, 0), UTC)
    with replaying_at(imported_at), unit_of_work(engine) as s:
        if s.exec(select(func.count()).select_from(Branch)).one():
            raise ValidationFailed("the database already holds a bank; load the demo into an empty database")
        rs = rulesets.parsed(rulesets.ensure_default(s))
        period = tolerance.period_end(today, rs.tolerance.period_basis)
        # One hash serves every demo account: they share the documented password, and argon2 is slow on purpose.
        org = _build_org(s, rng, names, accounts.hash_password(DEMO_PASSWORD))
        npls = _build_book(s, rng, names, org, period)
        # The form of the bank's documents, as its head-office administrator set it up.
        admin = s.get(User, org.users["admin"])
        document_form.save_form(s, admin, bank_name=DEMO_BANK_NAME, cc="人力资源部、内控合规部")
        for t in org.tier1:
            branch = s.get(Branch, t["id"])
            document_form.save_organ(s, admin, branch.id, short_name=f"{branch.name[0]}分",
                                     committee_name=f"{branch.name}尽职免责评议委员会",
                                     appeal_committee_name=f"{branch.name}尽职免责申诉复核委员会",
                                     printed_by=f"{branch.name}办公室")
        document_form.save_organ(s, admin, org.head, short_name="总行",
                                 committee_name="总行尽职免责评议委员会",
                                 appeal_committee_name="总行尽职免责申诉复核委员会", printed_by="总行办公室")
        audit.record(s, event="import_master_data", actor=None, payload={
            "source": "demo", "seed": seed,
            "branches": s.exec(select(func.count()).select_from(Branch)).one(),
            "users": len(org.users),
            "enterprises": s.exec(select(func.count()).select_from(Enterprise)).one(),
            "loans": s.exec(select(func.count()).select_from(Loan)).one()})
    return org, npls, period


def load_book(engine, seed: int = DEFAULT_SEED, *, today: date | None = None) -> dict:
    """Load only the demo's branches, staff and loan book (no cases) into an empty database; a summary.

    The same master data as `load` with the same seed. Raises ValidationFailed when the database holds branches.
    """
    today = today or date.today()
    _, _, period = _load_master_data(engine, random.Random(seed), seed, today, WorkingCalendar())
    return summarise(engine, period)


def load(engine, seed: int = DEFAULT_SEED, progress: bool = True, *, today: date | None = None,
         evidence_dir: str | Path | None = None) -> dict:
    """Load the demo bank into an empty database; returns a summary of what was loaded.

    Deterministic for a seed and a day. Raises ValidationFailed when the database already holds branches.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    today = today or date.today()
    rng = random.Random(seed)
    evidence_dir = Path(evidence_dir) if evidence_dir is not None else _default_evidence_dir()
    cal = WorkingCalendar()
    org, npls, period = _load_master_data(engine, rng, seed, today, cal)
    loader = _Loader(engine, rng, org, today, evidence_dir, cal)
    steps = loader.timeline(_stories(loader, npls))
    per_day: dict[date, int] = {}
    with tqdm(total=len(steps), desc="demo case history", unit="step", disable=not progress) as bar:
        for day, _, _, story, action in steps:
            # Office hours in China (UTC+8): from 09:30, a few minutes apart, never later than now.
            n = per_day[day] = per_day.get(day, 0) + 1
            moment = min(datetime.combine(day, dtime(1, 30), UTC) + timedelta(minutes=6 * n),
                         datetime.now(UTC) - timedelta(seconds=1))
            loader.run(day, story, action, moment)
            bar.update()
    summary = summarise(engine, period)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["password"] = DEMO_PASSWORD
    return summary


def summarise(engine, period: date | None = None) -> dict:
    """Counts of what the database holds: branches, staff per role, borrowers, loans, cases per state."""
    with read_session(engine) as s:
        def count(model, *where):
            q = select(func.count()).select_from(model)
            for w in where:
                q = q.where(w)
            return s.exec(q).one()

        from ..models import NPL_CLASSES

        roles = {role: 0 for role in ROLES}
        for user_roles in s.exec(select(User.roles)):
            for role in user_roles.split():
                roles[role] = roles.get(role, 0) + 1
        states = dict(s.exec(select(Case.state, func.count()).group_by(Case.state)).all())
        npl = Loan.classification.in_(NPL_CLASSES)
        npl_sme = (npl, Loan.product_class == "inclusive_sme")
        out = {
            "branches": {level: count(Branch, Branch.level == n)
                         for n, level in enumerate(("head_office", "tier1_branch", "sub_branch", "outlet"))},
            "users": count(User), "users_by_role": roles,
            "enterprises": count(Enterprise),
            "npl_enterprises": s.exec(select(func.count(func.distinct(Loan.enterprise_id))).where(*npl_sme)).one(),
            "loans": count(Loan), "npl_sme_loans": count(Loan, *npl_sme),
            "loan_stages": count(LoanStage),
            "cases": {state: states.get(state, 0) for state in STATE_CODES},
            "letters": count(Letter), "audit_events": count(AuditEvent),
        }
        if period is not None:
            results = tolerance.all_branches(s, period)
            out["tolerance"] = {"period": period.isoformat(), "branches": {
                b.code: {"sme_ratio": results[b.id].display["sme_ratio"],
                         "all_ratio": results[b.id].display["all_ratio"],
                         "gap_pp": results[b.id].display["gap_pp"], "within": results[b.id].within}
                for b in s.exec(select(Branch).where(Branch.level <= 2).order_by(Branch.path))}}
    return out
