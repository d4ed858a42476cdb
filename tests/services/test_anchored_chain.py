"""An insider with write access to the database cannot change the record unnoticed: `flask audit verify`
checks the chain against checkpoints signed with the bank's key outside the database, and the business
tables against the events; every kind of tampering is detected and names the event or the row."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import select

from tests.factories import drive, liable_officer
from tests.letters_text import pdf_text, problems
from workflow import create_app, engine_of
from workflow.chain import link_hash
from workflow.db import read_session
from workflow.models import Letter, Respondent, StageFact, Vote
from workflow.services import anchor, audit


@pytest.fixture
def lifecycle(bank, db_url, tmp_path, audit_key):
    """A case driven to final (votes, facts, an appeal, every document) with checkpoints along the way."""
    anchor.attach(bank.engine, anchor.Anchor(audit_key, tmp_path / "audit_checkpoints"))
    case_id = drive(bank, "final", facts_for=liable_officer)
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    run(app, "audit", "checkpoint")  # what the timer does on every run
    yield bank.engine, app, case_id
    engine_of(app).dispose()


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def verify(app):
    return run(app, "audit", "verify")


def _events(engine):
    with read_session(engine) as s:
        return list(audit.iter_events(s))


def _rewrite_from(engine, events, first_index):
    """Recompute every link from events[first_index] on and move the head: a consistent forged chain."""
    prev = events[first_index - 1]["hash"] if first_index else "0" * 64
    with engine.begin() as c:
        for ev in events[first_index:]:
            ev["prev_hash"] = prev
            ev["hash"] = link_hash(ev)
            c.execute(text("UPDATE auditevent SET actor = :actor, prev_hash = :p, hash = :h WHERE seq = :s"),
                      {"actor": ev["actor"], "p": ev["prev_hash"], "h": ev["hash"], "s": ev["seq"]})
            prev = ev["hash"]
        last = events[-1]
        c.execute(text("UPDATE audithead SET seq = :s, hash = :h WHERE id = 1"), {"s": last["seq"], "h": last["hash"]})


def test_intact_lifecycle_verifies_against_the_signed_checkpoint(lifecycle):
    engine, app, _ = lifecycle
    code, out = verify(app)
    assert code == 0, out
    assert "intact" in out and "matching the signed checkpoint" in out and "business rows agree" in out


def test_every_document_prints_a_checkpoint_and_stays_chinese(lifecycle, tmp_path):
    engine, app, case_id = lifecycle
    written = [json.loads(line) for f in sorted((tmp_path / "audit_checkpoints").glob("*.jsonl"))
               for line in f.read_text().splitlines()]
    seqs = {cp["seq"] for cp in written}
    with read_session(engine) as s:
        docs = [(d.kind, d.pdf, d.data) for d in s.exec(select(Letter).where(Letter.case_id == case_id))]
    assert len(docs) >= 5
    for kind, pdf, data in docs:
        body = pdf_text(pdf)
        assert "审计链检查点" in body, kind
        assert data["checkpoint"]["seq"] in seqs  # the one it prints was written outside the database
        assert f"第 {data['checkpoint']['seq']} 号" in body
        assert problems(body) == [], (kind, problems(body))


def test_edited_event_is_named(lifecycle):
    engine, app, _ = lifecycle
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET actor = 'mallory' WHERE seq = 7"))
    code, out = verify(app)
    assert code == 1 and "seq 7" in out and "edited" in out


def test_deleted_event_is_named(lifecycle):
    engine, app, _ = lifecycle
    with engine.begin() as c:
        c.execute(text("DELETE FROM auditevent WHERE seq = 9"))
    code, out = verify(app)
    assert code == 1 and "seq 10" in out and "deleted" in out


def test_inserted_event_is_named(lifecycle):
    engine, app, _ = lifecycle
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET seq = seq + 100000 WHERE seq > 6"))
        prev = c.execute(text("SELECT hash FROM auditevent WHERE seq = 6")).scalar()
        forged = {"seq": 7, "case_id": 1, "actor_id": None, "actor": "mallory", "at": "2026-01-01T00:00:00.000000Z",
                  "event": "note", "from_state": None, "to_state": None, "payload": {}, "prev_hash": prev}
        forged["hash"] = link_hash(forged)
        c.execute(text("INSERT INTO auditevent (seq, case_id, actor_id, actor, at, event, from_state, to_state, "
                       "payload, prev_hash, hash) VALUES (:seq, :case_id, :actor_id, :actor, :at, :event, "
                       ":from_state, :to_state, '{}', :prev_hash, :hash)"), forged)
        c.execute(text("UPDATE auditevent SET seq = seq - 99999 WHERE seq > 100000"))
    code, out = verify(app)
    assert code == 1 and "seq 8" in out


def test_reordered_events_are_named(lifecycle):
    engine, app, _ = lifecycle
    with engine.begin() as c:
        c.execute(text("UPDATE auditevent SET seq = -1 WHERE seq = 11"))
        c.execute(text("UPDATE auditevent SET seq = 11 WHERE seq = 12"))
        c.execute(text("UPDATE auditevent SET seq = 12 WHERE seq = -1"))
    code, out = verify(app)
    assert code == 1 and "seq 11" in out


def test_a_whole_rewritten_chain_with_a_moved_head_fails_the_checkpoint(lifecycle):
    engine, app, _ = lifecycle
    events = _events(engine)
    events[4]["actor"] = "mallory"  # who did it, changed; every link after it recomputed, the head moved
    _rewrite_from(engine, events, 4)
    code, out = verify(app)
    assert code == 1, out
    assert "checkpoint" in out and "rewritten" in out


def test_a_truncated_tail_with_its_head_moved_back_fails_the_checkpoint(lifecycle):
    engine, app, _ = lifecycle
    events = _events(engine)
    keep = events[:-6]
    with engine.begin() as c:
        c.execute(text("DELETE FROM auditevent WHERE seq > :s"), {"s": keep[-1]["seq"]})
        c.execute(text("UPDATE audithead SET seq = :s, hash = :h WHERE id = 1"),
                  {"s": keep[-1]["seq"], "h": keep[-1]["hash"]})
    code, out = verify(app)
    assert code == 1, out
    assert f"seq {keep[-1]['seq'] + 1}" in out and "truncated" in out


def test_a_wiped_chain_fails(lifecycle):
    engine, app, _ = lifecycle
    with engine.begin() as c:
        c.execute(text("DELETE FROM auditevent"))
        c.execute(text("DELETE FROM audithead"))
    code, out = verify(app)
    assert code == 1 and "truncated" in out


def test_an_edited_outcome_is_named(lifecycle):
    engine, app, case_id = lifecycle
    with read_session(engine) as s:
        rid = s.exec(select(Respondent.id).where(Respondent.case_id == case_id,
                                                 Respondent.final_outcome == "liable")).first()
    with engine.begin() as c:
        c.execute(text("UPDATE respondent SET final_outcome = 'exempt' WHERE id = :i"), {"i": rid})
    code, out = verify(app)
    assert code == 1 and f"respondent {rid}" in out and "final outcome 'exempt'" in out


def test_an_edited_vote_is_named(lifecycle):
    engine, app, case_id = lifecycle
    with read_session(engine) as s:
        vid = s.exec(select(Vote.id).where(Vote.case_id == case_id, Vote.outcome == "liable")).first()
    with engine.begin() as c:
        c.execute(text("UPDATE vote SET outcome = 'exempt' WHERE id = :i"), {"i": vid})
    code, out = verify(app)
    assert code == 1 and f"vote {vid}" in out and "'exempt' but the events say 'liable'" in out


def test_an_edited_appeal_panel_vote_is_named(lifecycle):
    from workflow.models import AppealVote

    engine, app, case_id = lifecycle
    with read_session(engine) as s:
        vid = s.exec(select(AppealVote.id).where(AppealVote.case_id == case_id)).first()
    with engine.begin() as c:
        c.execute(text("UPDATE appealvote SET decision = 'altered', outcome = 'exempt' WHERE id = :i"), {"i": vid})
    code, out = verify(app)
    assert code == 1 and f"appeal vote {vid}" in out and "but the events say 'upheld'" in out


def test_an_edited_fact_is_named(lifecycle):
    engine, app, _ = lifecycle
    with read_session(engine) as s:
        f = s.exec(select(StageFact).order_by(StageFact.id)).first()
        fid, facts = f.id, dict(f.facts, violation=not f.facts.get("violation"))
    with engine.begin() as c:
        c.execute(text("UPDATE stagefact SET facts = :f WHERE id = :i"),
                  {"f": json.dumps(facts, ensure_ascii=False), "i": fid})
    code, out = verify(app)
    assert code == 1 and f"stage facts {fid}" in out


def test_an_altered_stored_pdf_is_named(lifecycle):
    engine, app, case_id = lifecycle
    with read_session(engine) as s:
        doc = s.exec(select(Letter).where(Letter.case_id == case_id, Letter.kind == "determination")).first()
        lid, number, forged = doc.id, doc.doc_number, doc.pdf.replace(b"%%EOF", b"%%EOF ", 1)
    with engine.begin() as c:
        c.execute(text("UPDATE letter SET pdf = :p WHERE id = :i"), {"p": forged, "i": lid})
    code, out = verify(app)
    assert code == 1 and f"letter {lid} ({number})" in out and "PDF was altered" in out


def test_an_altered_pdf_with_its_recorded_hash_rewritten_is_named(lifecycle):
    engine, app, case_id = lifecycle
    import hashlib

    with read_session(engine) as s:
        doc = s.exec(select(Letter).where(Letter.case_id == case_id, Letter.kind == "minutes")).first()
        lid, forged = doc.id, doc.pdf + b"\n"
    with engine.begin() as c:
        c.execute(text("UPDATE letter SET pdf = :p, sha256 = :h WHERE id = :i"),
                  {"p": forged, "h": hashlib.sha256(forged).hexdigest(), "i": lid})
    code, out = verify(app)
    assert code == 1 and f"letter {lid}" in out and "differs from the one in event" in out


def test_a_forged_checkpoint_line_is_named(lifecycle, tmp_path):
    engine, app, _ = lifecycle
    path = sorted((tmp_path / "audit_checkpoints").glob("*.jsonl"))[-1]
    last = json.loads(path.read_text().splitlines()[-1])
    with path.open("a") as fh:
        fh.write(json.dumps({**last, "seq": last["seq"] + 5}) + "\n")  # signature of another content
    code, out = verify(app)
    assert code == 1 and "signature does not verify" in out and path.name in out


def test_the_timer_writes_a_checkpoint(lifecycle, tmp_path):
    engine, app, _ = lifecycle
    from workflow.services import jobs

    with engine.begin() as c:  # the chain moves on (a sign-in, say) after the last checkpoint
        c.execute(text("SELECT 1"))
    with read_session(engine) as s:
        head = s.exec(select(audit.AuditHead)).first()
        seq, digest = head.seq, head.hash
    summary = jobs.tick(engine)
    assert summary.checkpoint == seq
    latest = anchor.of(engine).latest()
    assert latest["seq"] == seq and latest["hash"] == digest and anchor.of(engine).valid(latest)


def test_exports_state_the_checkpoint_and_the_bundle_verifies_against_it(lifecycle, tmp_path):
    from openpyxl import load_workbook

    from workflow import verify as offline
    from workflow.services import jobs

    engine, app, _ = lifecycle
    latest = anchor.of(engine).latest()
    out = tmp_path / "cases.xlsx"
    jobs.run_export(engine, kind="cases", fmt="xlsx", out=str(out), username="auditor", filters={}, full=False,
                    reason="年度审计抽查")
    sheet = load_workbook(out)["审计链检查点"]
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [
        ["审计链检查点序号", latest["seq"]], ["审计链检查点哈希（SHA-256）", latest["hash"]]]

    zipped = tmp_path / "bundle.zip"
    manifest = jobs.run_bundle(engine, out=str(zipped), username="auditor", filters={}, full=False,
                               reason="年度审计抽查", evidence_dir=str(tmp_path / "evidence"))
    assert manifest["audit"]["checkpoint"]["seq"] == latest["seq"]
    assert anchor.of(engine).valid(manifest["audit"]["checkpoint"])
    report = offline.verify(zipped)
    assert report.ok, report.problems
    assert any("signed checkpoint" in n for n in report.notes)
