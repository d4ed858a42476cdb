"""`audit verify`: the chain against its signed external checkpoints, and the business tables against the chain.

Someone with write access to the database can edit a row of the business tables without touching the
chain, or rewrite the whole chain consistently and move its head. The first shows as a difference between
a table and what the events say happened (the decisive fields are re-derived from the events: each
respondent's decided and final outcome, every valid vote, every appeal panel vote and decision, every stage's facts and
every document's SHA-256 against the event that issued it and the stored PDF); the second as a chain that no
longer matches the last checkpoint signed with the bank's key (kept outside the database). Every
disagreement names the event (seq) or the row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session

from ..chain import GENESIS, ChainBroken, verify_stored
from ..models import (
    Appeal,
    AppealVote,
    AuditEvent,
    AuditHead,
    Case,
    Letter,
    Respondent,
    StageFact,
    User,
    Vote,
)
from . import anchor as anchors
from .audit import _stored_rows


@dataclass
class Findings:
    """What verification found: problems (any fails it), notes, and what was checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    checkpoint: dict | None = None  # the latest valid checkpoint
    rows: int = 0  # business rows compared with the events

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, anchor: anchors.Anchor | None) -> Findings:
    """Verify the chain (links, head, signed checkpoints) and re-derive the business tables from it."""
    found = Findings()
    checkpoints = _checkpoints(anchor, found)
    _chain(session, checkpoints, found)
    _tables(session, found)
    return found


def _checkpoints(anchor: anchors.Anchor | None, found: Findings) -> list[dict]:
    if anchor is None:
        found.notes.append("no audit checkpoints are configured (AUDIT_SIGNING_KEY, AUDIT_CHECKPOINT_DIR): the "
                           "chain is checked against its head in the database only")
        return []
    valid = []
    for name, lineno, cp in anchor.read():
        where = f"checkpoint {anchor.directory / name} line {lineno}"
        if cp is None:
            found.problems.append(f"{where}: not a checkpoint (not a JSON object): the file was altered")
        elif not anchor.valid(cp):
            found.problems.append(f"{where} (seq {cp.get('seq')}): the signature does not verify with the bank's "
                                  "key: the checkpoint was forged or altered")
        elif not isinstance(cp.get("seq"), int) or not isinstance(cp.get("hash"), str):
            found.problems.append(f"{where}: no seq or hash")
        else:
            valid.append(cp)
    if not valid:
        found.notes.append(f"no signed checkpoint in {anchor.directory} yet: the chain is checked against its "
                           "head in the database only")
        return []
    found.checkpoint = max(valid, key=lambda c: c["seq"])
    if found.checkpoint.get("demo"):
        found.notes.append("the checkpoints are signed with the DEMONSTRATION key made by set-up: they prove "
                           "nothing outside a demo; configure the bank's own key (AUDIT_SIGNING_KEY)")
    return valid


def _chain(session: Session, checkpoints: list[dict], found: Findings) -> None:
    head = session.get(AuditHead, 1)
    head_dict = {"seq": head.seq, "hash": head.hash} if head else {"seq": 0, "hash": GENESIS}
    wanted = {cp["seq"]: cp for cp in checkpoints}
    seen: dict[int, str] = {}

    def rows():
        for row in _stored_rows(session):
            if row[0] in wanted:
                seen[row[0]] = row[9]
            yield row

    try:
        found.events = verify_stored(rows(), head_dict)
    except ChainBroken as exc:
        found.problems.append(f"audit chain broken at seq {exc.seq}: {exc.reason}")
        return
    for seq in sorted(wanted):
        cp = wanted[seq]
        if seq == 0:
            continue
        if seq not in seen:
            found.problems.append(
                f"audit chain broken at seq {found.events + 1}: the checkpoint signed at {cp.get('at')} records seq {seq} "
                f"but the chain ends at seq {found.events}: events at the end were deleted (the tail truncated)")
            return
        if seen[seq] != cp["hash"]:
            found.problems.append(
                f"audit chain broken at seq {seq}: its hash {seen[seq][:16]}… differs from the checkpoint signed at "
                f"{cp.get('at')} ({cp['hash'][:16]}…): the chain was rewritten up to there and its head moved")
            return


_DECISIVE = ("determine", "votes_invalidated", "record_vote", "file_appeal", "appeal_vote", "decide_appeal",
             "record_facts", "issue_letter")


def _decisive_events(session: Session, batch: int = 20000):
    t = AuditEvent.__table__
    query = sa_select(t.c.seq, t.c.case_id, t.c.actor_id, t.c.event, t.c.to_state, t.c.payload).where(
        or_(t.c.event.in_(_DECISIVE), t.c.to_state == "final"))
    last, conn = 0, session.connection()
    while True:
        rows = conn.execute(query.where(t.c.seq > last).order_by(t.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _canon(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _tables(session: Session, found: Findings) -> None:
    """Replay the decisive events and compare every business row with what they say."""
    conn = session.connection()
    r_t = Respondent.__table__
    respondents = {rid: (case_id, user_id, decided, final) for rid, case_id, user_id, decided, final in conn.execute(
        sa_select(r_t.c.id, r_t.c.case_id, r_t.c.user_id, r_t.c.decided_outcome, r_t.c.final_outcome))}
    by_case: dict[int, list[int]] = {}
    for rid, (case_id, *_rest) in respondents.items():
        by_case.setdefault(case_id, []).append(rid)
    numbers = dict(conn.execute(sa_select(Case.__table__.c.id, Case.__table__.c.number)).all())
    people = {uid: (name, emp) for uid, name, emp in conn.execute(
        sa_select(User.__table__.c.id, User.__table__.c.name, User.__table__.c.employee_no))}

    def who(user_id) -> str:
        name, emp = people.get(user_id, ("?", "?"))
        return f"{name} ({emp})"

    def resp(rid) -> str:
        case_id, user_id, *_ = respondents.get(rid, (None, None))
        return f"respondent {rid} (case {numbers.get(case_id, case_id)}, {who(user_id)})"

    decided: dict[int, tuple[str | None, int]] = {}
    final: dict[int, tuple[str | None, int]] = {}
    votes: dict[tuple[int, int, int], tuple[str, int]] = {}
    appeals: dict[int, dict] = {}
    panel: dict[tuple[int, int], tuple[str, str, int]] = {}  # (appeal, member) -> (decision, outcome, seq)
    facts: dict[tuple[int, int, str], tuple[str, int]] = {}
    issued: dict[int, tuple[str, int]] = {}
    for seq, case_id, actor_id, name, to_state, payload in _decisive_events(session):
        payload = json.loads(payload) if isinstance(payload, str) else (payload or {})
        if name == "determine":
            for rid, outcome in (payload.get("outcomes") or {}).items():
                decided[int(rid)] = (outcome, seq)
        elif name == "votes_invalidated":
            for key in [k for k in votes if k[0] == case_id]:
                del votes[key]
            for rid in by_case.get(case_id, []):
                decided[rid] = (None, seq)
        elif name == "record_vote":
            # keyed by the seat: a stand-in's vote fills (and replaces a vote of) the principal's
            votes[(case_id, payload.get("respondent_id"), payload.get("on_behalf_of_id") or actor_id)] = (
                payload.get("outcome"), seq)
        elif name == "file_appeal":
            appeals[payload.get("appeal_id")] = {"respondent_id": payload.get("respondent_id"), "decision": None,
                                                 "new_outcome": None, "seq": seq}
        elif name == "appeal_vote":  # a later vote of the same member replaces the earlier one
            panel[(payload.get("appeal_id"), actor_id)] = (payload.get("decision"), payload.get("outcome"), seq)
        elif name == "decide_appeal":
            a = appeals.setdefault(payload.get("appeal_id"), {"respondent_id": None})
            a.update(decision=payload.get("decision"), new_outcome=payload.get("new_outcome"), seq=seq)
        elif name == "record_facts":
            key = (payload.get("respondent_id"), payload.get("loan_id"), payload.get("stage"))
            facts[key] = (_canon(payload.get("facts")), seq)
        elif name == "issue_letter":
            issued[payload.get("letter_id")] = (payload.get("sha256"), seq)
        if to_state == "final":
            altered = {a["respondent_id"]: a["new_outcome"] for a in appeals.values()
                       if a.get("decision") == "altered"}
            for rid in by_case.get(case_id, []):
                final[rid] = (altered.get(rid, decided.get(rid, (None, 0))[0]), seq)

    # Outcomes.
    for rid, (_case_id, _user_id, d_row, f_row) in respondents.items():
        found.rows += 1
        d_ev, d_seq = decided.get(rid, (None, None))
        if d_row != d_ev:
            found.problems.append(f"{resp(rid)}: decided outcome {d_row!r} but the events say {d_ev!r}"
                                  + (f" (event seq={d_seq})" if d_seq else " (no determination event)"))
        f_ev, f_seq = final.get(rid, (None, None))
        if f_row != f_ev:
            found.problems.append(f"{resp(rid)}: final outcome {f_row!r} but the events say {f_ev!r}"
                                  + (f" (event seq={f_seq})" if f_seq else " (the case was never final)"))
    # Votes that count.
    v_t = Vote.__table__
    stored_votes = {}
    for vid, case_id, rid, member_id, outcome in conn.execute(
            sa_select(v_t.c.id, v_t.c.case_id, v_t.c.respondent_id,
                      func.coalesce(v_t.c.on_behalf_of_id, v_t.c.member_id), v_t.c.outcome)
            .where(v_t.c.invalidated_at.is_(None)).order_by(v_t.c.id)):
        found.rows += 1
        key = (case_id, rid, member_id)  # the seat (the principal's for a stand-in's vote)
        stored_votes[key] = vid
        ev = votes.get(key)
        where = f"vote {vid} (case {numbers.get(case_id, case_id)}, {resp(rid)}, member {who(member_id)})"
        if ev is None:
            found.problems.append(f"{where}: counts as {outcome!r} but no valid vote of this member is in the events")
        elif ev[0] != outcome:
            found.problems.append(f"{where}: {outcome!r} but the events say {ev[0]!r} (event seq={ev[1]})")
    for key, (outcome, seq) in votes.items():
        if key not in stored_votes:
            case_id, rid, member_id = key
            found.problems.append(f"case {numbers.get(case_id, case_id)}, {resp(rid)}: the vote of member "
                                  f"{who(member_id)} ({outcome!r}, event seq={seq}) is missing or was invalidated")
    # Appeal decisions.
    a_t = Appeal.__table__
    for aid, rid, decision, new_outcome in conn.execute(
            sa_select(a_t.c.id, a_t.c.respondent_id, a_t.c.decision, a_t.c.new_outcome)):
        found.rows += 1
        ev = appeals.get(aid)
        if ev is None:
            found.problems.append(f"appeal {aid} ({resp(rid)}): no event records it being filed")
        elif (decision, new_outcome) != (ev.get("decision"), ev.get("new_outcome")):
            found.problems.append(f"appeal {aid} ({resp(rid)}): decision {decision!r} / {new_outcome!r} but the "
                                  f"events say {ev.get('decision')!r} / {ev.get('new_outcome')!r} "
                                  f"(event seq={ev.get('seq')})")
    # The appeal panels' votes that count.
    p_t = AppealVote.__table__
    stored_panel = set()
    for vid, aid, member_id, decision, outcome in conn.execute(
            sa_select(p_t.c.id, p_t.c.appeal_id, p_t.c.member_id, p_t.c.decision, p_t.c.outcome)
            .where(p_t.c.invalidated_at.is_(None)).order_by(p_t.c.id)):
        found.rows += 1
        stored_panel.add((aid, member_id))
        ev = panel.get((aid, member_id))
        where = f"appeal vote {vid} (appeal {aid}, member {who(member_id)})"
        if ev is None:
            found.problems.append(f"{where}: counts as {decision!r} but no vote of this member is in the events")
        elif (decision, outcome) != ev[:2]:
            found.problems.append(f"{where}: {decision!r} / {outcome!r} but the events say {ev[0]!r} / {ev[1]!r} "
                                  f"(event seq={ev[2]})")
    for (aid, member_id), (decision, _outcome, seq) in panel.items():
        if (aid, member_id) not in stored_panel:
            found.problems.append(f"appeal {aid}: the vote of member {who(member_id)} ({decision!r}, event "
                                  f"seq={seq}) is missing or was invalidated")
    # Facts.
    f_t = StageFact.__table__
    for fid, rid, loan_id, stage, value in conn.execute(
            sa_select(f_t.c.id, f_t.c.respondent_id, f_t.c.loan_id, f_t.c.stage, f_t.c.facts)):
        found.rows += 1
        value = json.loads(value) if isinstance(value, str) else value
        ev = facts.get((rid, loan_id, stage))
        where = f"stage facts {fid} ({resp(rid)}, loan {loan_id}, stage {stage})"
        if ev is None:
            found.problems.append(f"{where}: no event records these facts")
        elif ev[0] != _canon(value):
            found.problems.append(f"{where}: differ from the facts recorded in event seq={ev[1]}")
    # Documents: the stored PDF, its recorded hash and the event that issued it.
    l_t = Letter.__table__
    last = 0
    while True:
        batch = conn.execute(sa_select(l_t.c.id, l_t.c.doc_number, l_t.c.sha256, l_t.c.pdf)
                             .where(l_t.c.id > last).order_by(l_t.c.id).limit(200)).all()
        if not batch:
            break
        for lid, doc_number, sha, pdf in batch:
            found.rows += 1
            where = f"letter {lid} ({doc_number})"
            ev = issued.get(lid)
            actual = hashlib.sha256(bytes(pdf or b"")).hexdigest()
            if ev is None:
                found.problems.append(f"{where}: no event records it being issued")
            elif ev[0] != sha:
                found.problems.append(f"{where}: recorded SHA-256 {sha[:16]}… differs from the one in event "
                                      f"seq={ev[1]} ({(ev[0] or '')[:16]}…)")
            if actual != sha:
                found.problems.append(f"{where}: the stored PDF's SHA-256 {actual[:16]}… differs from the one "
                                      f"recorded when it was issued ({sha[:16]}…): the PDF was altered")
        last = batch[-1][0]
