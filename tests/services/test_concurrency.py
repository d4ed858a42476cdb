"""Optimistic locking: 16 people acting on one case at once — exactly one wins."""

from __future__ import annotations

import threading

from sqlmodel import Session

from tests.factories import open_case
from workflow.db import unit_of_work
from workflow.domain.errors import ConflictError
from workflow.models import Case
from workflow.services import audit, cases


def test_sixteen_concurrent_transitions_on_one_case_one_wins_fifteen_conflict(bank):
    case_id = open_case(bank)
    with Session(bank.engine) as s:
        seen = s.get(Case, case_id).version
        seq_before = audit.verify(s)
    barrier = threading.Barrier(16)
    results: list[str] = []
    lock = threading.Lock()

    def act(n: int):
        barrier.wait()
        try:
            with unit_of_work(bank.engine) as s:
                case = s.get(Case, case_id)
                cases.withdraw(s, case, bank.user(s, "admin"), f"撤销理由 {n}", expected_version=seen)
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=act, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["conflict"] * 15 + ["ok"]
    with Session(bank.engine) as s:
        case = s.get(Case, case_id)
        assert case.state == "withdrawn"
        assert case.version > seen
        assert audit.verify(s) == seq_before + 1
        events = [e.event for e in cases.audit_events(s, case_id)]
        assert events.count("withdraw") == 1
