"""`record_now`: one access-log entry in a transaction of its own; of many concurrent ones none is lost or doubled."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from workflow.domain.errors import ValidationFailed
from workflow.models import AccessLog
from workflow.services import access_log


def _people(n):
    return [SimpleNamespace(id=None, username=f"viewer{i}") for i in range(n)]


def test_concurrent_views_are_each_recorded_once_and_committed_before_returning(engine):
    people, start, seen_after = _people(24), threading.Barrier(8), []

    def view(chunk):
        start.wait()
        for person in chunk:
            access_log.record_now(engine, person, "view_case", target=f"MZ-{person.username}")
            with Session(engine) as s:  # committed: another connection reads it at once
                seen_after.append(s.exec(select(AccessLog).where(AccessLog.username == person.username)).one())

    threads = [threading.Thread(target=view, args=(people[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as s:
        names = sorted(e.username for e in s.exec(select(AccessLog)))
    assert names == sorted(p.username for p in people) and len(seen_after) == 24


def test_a_failed_commit_is_raised_and_an_unknown_action_writes_nothing(engine, monkeypatch):
    from workflow import db

    real, calls = db.unit_of_work, []

    def failing(eng):
        calls.append(1)
        raise RuntimeError("disk full")

    monkeypatch.setattr(access_log, "unit_of_work", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        access_log.record_now(engine, _people(1)[0], "view_case", target="MZ-1")
    monkeypatch.setattr(access_log, "unit_of_work", real)
    with pytest.raises(ValidationFailed):
        access_log.record_now(engine, _people(1)[0], "no_such_action")
    with Session(engine) as s:
        assert s.exec(select(AccessLog)).all() == [] and calls == [1]
