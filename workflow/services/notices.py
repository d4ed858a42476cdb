"""Who each event of a case tells, and what (the respondents are named, and invited to file a statement, by
`cases.open_case` itself): the notifications of the case verbs (texts in Chinese and English,
an idempotency key each). Called by the verbs inside their unit of work, after the change they announce, so
the notification and its queued mail and 企业微信 posts commit with the event or not at all.

Keys carry the case version the event produced where an event can happen again (a second submission after a
return for investigation asks for a second vote), so each occurrence is told once and a rerun tells nobody.
"""

from __future__ import annotations

from sqlmodel import Session

from ..models import Appeal, Case
from . import notifications, queries, rulesets


def _chairs(agg: queries.CaseAggregate) -> list[int]:
    return [m.id for m in agg.committee if "committee_chair" in m.roles]


def _name(agg: queries.CaseAggregate, respondent_id: int) -> str:
    from ..models import User

    r = agg.respondent(respondent_id)
    user = agg.session.get(User, r.user_id)
    return user.name if user else str(r.user_id)


def investigator_assigned(session: Session, case: Case) -> int:
    """The investigator was assigned: they are told, with the investigation's deadline."""
    due = case.due_date.isoformat() if case.due_date else "—"
    return notifications.tell(
        session, [case.investigator_id], case_id=case.id, kind="investigator_assigned",
        key=f"assigned:{case.id}:{case.version}",
        zh=f"您被指派调查案件 {case.number}，调查期限至 {due}。",
        en=f"You are assigned to investigate case {case.number}; the investigation is due by {due}.")


def vote_needed(session: Session, case: Case) -> int:
    """The case is before the committee (submitted, or reopened): every member not recused votes."""
    agg = queries.aggregate(session, case)
    due = case.due_date.isoformat() if case.due_date else "—"
    return notifications.tell(
        session, [m.id for m in agg.eligible_voters()], case_id=case.id, kind="vote_needed",
        key=f"vote-needed:{case.id}:{case.version}",
        zh=f"案件 {case.number} 已提交尽职免责委员会评议，请于 {due} 前完成评议表决。",
        en=f"Case {case.number} is before the committee: please vote by {due}.")


def appeal_vote_needed(session: Session, case: Case) -> int:
    """The case entered appeal review: every member of the appeal panel not recused votes."""
    agg = queries.aggregate(session, case)
    due = case.due_date.isoformat() if case.due_date else "—"
    return notifications.tell(
        session, [m.id for m in agg.eligible_panel()], case_id=case.id, kind="vote_needed",
        key=f"appeal-vote-needed:{case.id}:{case.version}",
        zh=f"案件 {case.number} 进入申诉复核，请于 {due} 前完成复核表决。",
        en=f"Case {case.number} is in appeal review: please vote on its appeals by {due}.")


def determined(session: Session, case: Case) -> int:
    """The chair signed the determination: each respondent is told; their letter follows."""
    agg = queries.aggregate(session, case)
    return notifications.tell(
        session, [r.user_id for r in agg.respondents], case_id=case.id, kind="determined",
        key=f"determined:{case.id}:{case.version}",
        zh=f"案件 {case.number} 已作出尽职免责认定，认定书出具后将向您送达。",
        en=f"The determination of case {case.number} is made; your letter will be served on you.")


def appeal_window_open(session: Session, case: Case, windows: dict) -> int:
    """Publicity ended: each respondent who may still appeal is told until when (their window runs from the
    service of their letter: the date when it is served, else how long it will run)."""
    agg = queries.aggregate(session, case)
    days = rulesets.time_limit(agg.procedure, "appeal_window")
    told = 0
    for r in agg.respondents:
        w = windows.get(r.id)
        if w is None or w.appealed or w.waived or w.final:
            continue
        if w.deadline is not None:
            zh = f"案件 {case.number} 公示期已结束，进入申诉期：您可于 {w.deadline.isoformat()} 前提出申诉。"
            en = f"The publicity of case {case.number} has ended: you may appeal until {w.deadline.isoformat()}."
        else:
            zh = (f"案件 {case.number} 公示期已结束，进入申诉期：您的申诉期自认定书送达之日起 {days} 个工作日，"
                  "送达后将另行通知申诉期限。")
            en = (f"The publicity of case {case.number} has ended: your appeal window is {days} working days from "
                  "the service of your letter; you will be told its deadline once it is served.")
        told += notifications.tell(session, [r.user_id], case_id=case.id, kind="appeal_window",
                                   key=f"appeal-window:{case.id}:{case.version}", zh=zh, en=en)
    return told


def appeal_filed(session: Session, case: Case, appeal: Appeal) -> int:
    """A respondent appealed: the appeal panel (members not recused) and the deciding committee's chairs."""
    agg = queries.aggregate(session, case)
    name = _name(agg, appeal.respondent_id)
    return notifications.tell(
        session, [m.id for m in agg.eligible_panel()] + _chairs(agg), case_id=case.id, kind="appeal_filed",
        key=f"appeal-filed:{appeal.id}",
        zh=f"案件 {case.number} 收到 {name} 的申诉，待申诉复核委员会复核。",
        en=f"{name} appealed in case {case.number}; the appeal committee reviews it.")


_DECISIONS = {"upheld": ("维持原认定", "upheld"), "altered": ("变更认定结论", "altered")}


def appeal_decided(session: Session, case: Case, appeal: Appeal) -> int:
    """The appeal committee decided an appeal: the appellant and the deciding committee's chairs are told."""
    agg = queries.aggregate(session, case)
    zh_decision, en_decision = _DECISIONS.get(appeal.decision, (appeal.decision, appeal.decision))
    appellant = agg.respondent(appeal.respondent_id).user_id
    told = notifications.tell(
        session, [appellant], case_id=case.id, kind="appeal_decided", key=f"appeal-decided:{appeal.id}",
        zh=f"您对案件 {case.number} 的申诉已复核：{zh_decision}，复核决定书将向您送达。",
        en=f"Your appeal in case {case.number} is decided: {en_decision}; the decision letter will be served.")
    name = _name(agg, appeal.respondent_id)
    return told + notifications.tell(
        session, [u for u in _chairs(agg) if u != appellant], case_id=case.id, kind="appeal_decided",
        key=f"appeal-decided:{appeal.id}",
        zh=f"案件 {case.number} 中 {name} 的申诉已复核：{zh_decision}。",
        en=f"The appeal of {name} in case {case.number} is decided: {en_decision}.")
