"""A case view and its access-log entry are one unit of work: concurrent views are each recorded once."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from tests.factories import drive
from tests.web.support import login, set_passwords
from workflow.models import AccessLog


def test_concurrent_views_of_a_case_are_each_recorded_once(bank, app_for):
    case_id = drive(bank, "under_review")
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    clients = []
    for name in ("chair", "member1", "member2", "auditor"):
        client = app.test_client()
        assert login(client, name).status_code == 302
        clients.append(client)
    start, statuses = threading.Barrier(len(clients)), []

    def view(client):
        start.wait()
        for _ in range(5):
            statuses.append(client.get(f"/cases/{case_id}").status_code)

    threads = [threading.Thread(target=view, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    with Session(bank.engine) as s:
        entries = s.exec(select(AccessLog).where(AccessLog.action == "view_case", AccessLog.case_id == case_id)).all()
    assert sorted({e.username for e in entries}) == ["auditor", "chair", "member1", "member2"]
    assert len(entries) == 20


def test_a_view_that_fails_records_no_access(bank, app_for):
    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    assert login(client, "chair").status_code == 302
    assert client.get("/cases/999999").status_code == 404
    with Session(bank.engine) as s:
        assert s.exec(select(AccessLog).where(AccessLog.action == "view_case")).all() == []
