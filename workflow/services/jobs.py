"""Long jobs: the deadline timer, exports and evidence bundles.

Jobs are apart from the verbs: they run for a while, read in a snapshot of their own and report progress
through a callback; the command line and the web start them alike.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from contextlib import nullcontext
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ..db import read_session, unit_of_work
from ..domain import policy
from ..domain.errors import ConflictError, DomainError, NotFound, TransitionNotAllowed, ValidationFailed
from ..models import Case, TimerRun, User, utcnow
from . import anchor, bundle, cases, deadlines, export, queries

log = logging.getLogger(__name__)


def _actor(session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"unknown user '{username}'")
    return user


def run_export(engine, *, kind: str, fmt: str, out: str, username: str, filters: dict, full: bool,
               reason: str | None, records: tuple[str, ...] | None = None, progress=None,
               locale: str = "zh") -> dict:
    """Authorise and log an export, then stream it to `out`; returns {record: rows}. Raises DomainError."""
    f = export.ExportFilter.parse(**filters)
    names = export.record_names(kind)
    if records:
        unknown = set(records) - set(names)
        if unknown:
            raise ValidationFailed(f"unknown record type(s) {', '.join(sorted(unknown))} for '{kind}' "
                                   f"(choose from {', '.join(names)})", field="records")
        names = tuple(r for r in names if r in records)
    to_zip = fmt in ("csv", "jsonl") and len(names) > 1
    if to_zip and not out.endswith(".zip"):
        raise ValidationFailed(f"{fmt.upper()} holds one record type per file: give --out FILE.zip for "
                               f"{len(names)} record types, or choose one with --records", field="out")
    with unit_of_work(engine) as s:
        details = export.authorize(s, _actor(s, username), kind=kind, fmt=fmt, f=f, full=full, reason=reason,
                                   locale=locale)
    checkpoint = details.get("checkpoint")
    counts: dict[str, int] = {}
    with read_session(engine) as s:
        total = sum(export.count(s, n, f) for n in names) if progress is not None else None
        bar = progress(f"export {kind} ({fmt})", total, "row") if progress is not None else nullcontext()
        tick = getattr(bar, "update", None)

        def counted(name):
            counts[name] = 0
            for row in export.rows(s, name, f, full=full, locale=locale):
                counts[name] += 1
                yield row

        with bar:
            if fmt == "xlsx":
                export.write_xlsx(out, [(n, counted(n)) for n in names], progress=tick, checkpoint=checkpoint)
            elif to_zip:
                with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    if checkpoint:
                        zf.writestr("checkpoint.txt", "".join(f"{label}：{value}\r\n" for label, value
                                                             in export.checkpoint_lines(checkpoint)))
                    for n in names:
                        with zf.open(f"{n}.{fmt}", "w", force_zip64=True) as fh:
                            for chunk in export.chunks(fmt, n, counted(n), progress=tick):
                                fh.write(chunk)
            else:
                with open(out, "wb") as fh:
                    for chunk in export.chunks(fmt, names[0], counted(names[0]), progress=tick):
                        fh.write(chunk)
    return counts


def run_bundle(engine, *, out: str, username: str, filters: dict, full: bool, reason: str | None,
               evidence_dir: str, progress=None, locale: str = "zh") -> dict:
    """Authorise and log a bundle export, then write the ZIP to `out`; returns the manifest."""
    f = export.ExportFilter.parse(**filters)
    with unit_of_work(engine) as s:
        export.authorize(s, _actor(s, username), kind="bundle", fmt="zip", f=f, full=full, reason=reason,
                         target="bundle", locale=locale)
    with bundle.snapshot_session(engine) as s:
        actor = _actor(s, username)
        bar = progress("evidence bundle", None, "file") if progress is not None else nullcontext()
        with bar:
            return bundle.write_bundle(s, actor, out, f, evidence_dir=evidence_dir, full=full, reason=reason,
                                       progress=getattr(bar, "update", None), name=Path(out).name, locale=locale)


# --- the deadline timer ----------------------------------------------------------------------------------

def tick(engine, today: date | None = None, actor=None, *, started_by: str = "cron") -> deadlines.TickSummary:
    """Move cases whose publicity or appeal window ended, mark overdue steps and cases near or past their
    one-year limit, and notify who must act (the chairs and head office for the one-year limit).

    Each case is handled in its own unit of work as `actor` (None: the system actor). Safe to run twice
    at once: the case row lock, the state guards and the optimistic version check let only one run move a
    case; the other sees ConflictError or TransitionNotAllowed and counts the case as already moved.
    Notifications have unique keys, so a rerun adds none; their mail and 企业微信 posts are queued with them and
    delivered after the commit by the outbox's worker (`outbox.deliver`), not by the timer.
    Unexpected errors of one case are collected in `errors` and do not stop the others. Each run is recorded
    (`TimerRun`, started by `started_by`: "cron", "timer" or "admin") so that administrators see when it last ran.
    """
    started = utcnow()
    today = today or date.today()
    summary = deadlines.TickSummary(today=today)
    verbs = {"end_publicity": cases.end_publicity, "close_appeal_window": cases.close_appeal_window}
    with read_session(engine) as s:
        due = []
        for state, (trigger, column) in deadlines.AUTOMATIC_MOVES.items():
            ends = getattr(Case, column)
            due += [(case_id, number, trigger) for case_id, number in s.exec(
                select(Case.id, Case.number).where(Case.state == state, ends.is_not(None), ends < today))]
    for case_id, number, trigger in sorted(due):
        try:
            with unit_of_work(engine) as s:
                case = cases.get_case(s, case_id, for_update=True)
                verbs[trigger](s, case, _attached(s, actor), today=today)
            summary.moved[trigger] += 1
        except (ConflictError, TransitionNotAllowed):
            summary.already_moved += 1
        except DomainError as exc:
            summary.refused.append(f"{number}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others; reported
            summary.errors.append(f"{number}: {type(exc).__name__}: {exc}")

    with read_session(engine) as s:
        late = [(case.id, case.number) for case, _ in deadlines.overdue_cases(s, today)]
        near_limit = [(e["case"].id, e["case"].number) for e in deadlines.near_limit_cases(s, today)]
    # overdue steps, then cases near or past their one-year limit: each case in a unit of work of its own
    for marker, counter, found in ((deadlines.mark_overdue, "overdue", late),
                                   (deadlines.mark_limit, "one_year", near_limit)):
        for case_id, number in found:
            try:
                with unit_of_work(engine) as s:
                    case = cases.get_case(s, case_id, for_update=True)
                    created = marker(s, case, today, _attached(s, actor))
                setattr(summary, counter, getattr(summary, counter) + 1)
                summary.notified += len(created)
            except IntegrityError:
                # Another run inserted the same notification key first: its notifications stand.
                setattr(summary, counter, getattr(summary, counter) + 1)
            except Exception as exc:  # noqa: BLE001
                summary.errors.append(f"{number}: {type(exc).__name__}: {exc}")

    try:  # the timer's run anchors the chain: a signed checkpoint of the head, outside the database
        cp = anchor.checkpoint(engine)
        summary.checkpoint = cp["seq"] if cp else None
    except anchor.AnchorError as exc:
        summary.errors.append(f"audit checkpoint: {exc}")
    with unit_of_work(engine) as s:
        s.add(TimerRun(started_at=started, finished_at=utcnow(), trigger=started_by, day=today,
                       ok=not summary.errors, summary=summary.to_dict()))
    return summary


def run_timer_now(engine, actor_user) -> deadlines.TickSummary:
    """An administrator runs the timer by hand (head office only: it acts on the whole bank); recorded as a
    run started by "admin". Raises PermissionDenied otherwise."""
    with read_session(engine) as s:
        refusal = policy.why_not_run_timer(queries.actor_of(s, actor_user))
    if refusal is not None:
        raise policy.refuse(refusal)
    return tick(engine, started_by="admin")


TIMER_STALE_AFTER = timedelta(days=1)  # a timer that has not run for longer is reported to administrators


def timer_runs(session: Session, *, limit: int = 50, offset: int = 0) -> list[TimerRun]:
    """The timer's runs, newest first."""
    return list(session.exec(select(TimerRun).order_by(TimerRun.started_at.desc(), TimerRun.id.desc())
                             .offset(offset).limit(limit)))


def timer_status(session: Session, now: datetime | None = None) -> dict:
    """The latest run of the timer and whether it is stale (never ran, or more than a day ago)."""
    now = now or utcnow()
    last = session.exec(select(TimerRun).order_by(TimerRun.started_at.desc(), TimerRun.id.desc())).first()
    return {"last": last, "stale": last is None or now - last.started_at > TIMER_STALE_AFTER,
            "runs": session.exec(select(func.count()).select_from(TimerRun)).one()}


class TimerThread(threading.Thread):
    """The embedded default's timer: runs `tick` in the app process every `interval` seconds (the first run
    at once). Production runs `flask deadlines tick` from cron instead (docs/deployment.md)."""

    def __init__(self, engine, interval: float):
        super().__init__(name="mianze-timer", daemon=True)
        self.engine, self.interval = engine, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                tick(self.engine, started_by="timer")
            except Exception:  # noqa: BLE001 - the timer keeps running; the failure is logged
                log.exception("the deadline timer failed")
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


def _attached(session: Session, actor):
    """The acting user loaded in this session (None stays None: the system actor)."""
    return None if actor is None else session.get(User, actor.id)
