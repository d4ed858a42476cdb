"""Benchmark of the letter renderer (a script, not a test): .venv/bin/python bench/letters.py

1. Median time of render_letter("determination", ...) against a bare WeasyPrint render of the same HTML
   (default URL fetcher, a fresh FontConfiguration and the letter stylesheet parsed anew each time),
   measured alternately in the same run. Goal: ratio <= 1.2. The CPU time of render_letter is printed too:
   on a shared machine it is steadier than the wall-clock figures.
2. Letters per second for a batch of determination letters on a pool of worker processes (started and
   warmed up before the clock starts). Goal: >= 15 letters/s for 200 letters on 2 processes. With
   --repeat N the batch runs N times (one pool each) and the best and median rates are printed.
3. The same through the product: `letters.issue_batch` (what `flask letters issue-batch` runs) on an
   SQLite database with determined cases of three respondents each, at least --batch letters in all:
   numbering, rendering on 2 new processes, storing and auditing every letter; the clock includes starting
   the pool. Goal: >= 15 letters/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Running a script puts its folder first on sys.path, where a sibling (bench/calendar.py) would shadow the
# standard library module of that name; this script needs nothing from its folder.
# The repository root goes first instead (for bench.common and tests.factories).
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (_ROOT / "bench", _ROOT)]

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from decimal import Decimal  # noqa: E402

from workflow.pdf import letter_html, render_html_bare, render_letter  # noqa: E402

RATIO_GOAL = 1.2
THROUGHPUT_GOAL = 15.0


def sample(i: int = 0) -> dict:
    """A two-page determination letter; ``i`` varies the person and numbers so no two are alike."""
    return {
        "bank": "济源农村商业银行股份有限公司",
        "branch": "济源农商银行沁园支行",
        "doc_number": f"济农商免认〔2026〕{12 + i}号",
        "issued_at": dt.date(2026, 3, 9),
        "case_no": f"MZ-2026-{12 + i:04d}",
        "committee": {"name": "济源农村商业银行尽职免责评议委员会", "decided_at": dt.date(2026, 3, 6)},
        "respondent": {"name": ("王晓明", "李娜", "陈志强", "赵丽华")[i % 4], "employee_no": f"E{1001 + i}",
                       "branch": "沁园支行公司业务部"},
        "stages": ["pre_loan", "post_loan"],
        "loans": [
            {"loan_no": f"JY2023-{871 + i:05d}", "enterprise": "济源市恒达机械配件有限公司",
             "amount": Decimal("3000000"), "balance": Decimal("2450000.00") - i},
            {"loan_no": f"JY2024-{112 + i:05d}", "enterprise": "济源市恒达机械配件有限公司",
             "amount": Decimal("1500000"), "balance": Decimal("1500000.00")},
        ],
        "outcome": ("exempt", "reduced", "liable")[i % 3],
        "liability_kind": "diligence",
        "sanctions": ["年度绩效考核扣分 6 分", "通报批评处分", "经济处罚 5,000 元"],
        "reasons": [
            {"code": "P02", "text": "因新冠疫情等不可抗力直接导致借款人经营中断，被评议人及时报告风险并立即采取保全措施。",
             "source": "银监发〔2016〕56号"},
            {"code": "PL03", "text": "贷款用途与还款来源核实不充分，但与损失不存在因果关系。", "source": "金规〔2024〕11号"},
        ],
        "tolerance": {"branch": "沁园支行", "period": dt.date(2025, 12, 31), "sme_ratio": Decimal("0.0501"),
                      "all_ratio": Decimal("0.0200"), "gap_pp": Decimal("3.01"), "within": False},
        "deviation": None,
        "appeal": {"deadline": dt.date(2026, 3, 16), "body": "济源农村商业银行总行尽职免责申诉复核委员会"},
    }


def _warm_up() -> None:
    render_letter("determination", sample())


def _render_one(i: int) -> int:
    return len(render_letter("determination", sample(i)).pdf)


def compare(runs: int) -> tuple[float, float, float]:
    """Median seconds of render_letter and of a bare render of the same HTML, measured alternately, and the
    median CPU seconds of render_letter."""
    data = sample()
    html = letter_html("determination", data)
    render_letter("determination", data)
    render_html_bare(html)
    ours, bare, cpu = [], [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        render_letter("determination", data)
        ours.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        start = time.perf_counter()
        render_html_bare(html)
        bare.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(bare), statistics.median(cpu)


def batch(count: int, workers: int) -> tuple[float, float]:
    """(seconds to start and warm the pool, seconds to render ``count`` letters on it)."""
    context = multiprocessing.get_context("spawn")  # like separate worker processes; nothing inherited
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_warm_up) as pool:
        list(pool.map(_render_one, range(-workers, 0)))  # make sure every worker has started and warmed up
        ready = time.perf_counter()
        sizes = list(pool.map(_render_one, range(count), chunksize=max(1, count // (workers * 10))))
        done = time.perf_counter()
    assert len(sizes) == count and all(sizes)
    return ready - start, done - ready


def issue(count: int, workers: int) -> tuple[int, int, float]:
    """(cases, letters issued, seconds) for `letters.issue_batch` over determined cases with >= count letters."""
    from sqlmodel import Session, func, select

    from bench.common import sqlite_engine
    from tests.factories import drive, make_bank
    from workflow.models import Case, Letter
    from workflow.services import audit, letters

    with sqlite_engine() as engine:
        n_cases = -(-count // 3)  # the factory bank's loans have three respondents (officer, reviewer, approver)
        bank = make_bank(engine, n_loans=n_cases, loans_per_enterprise=1)
        case_ids = [drive(bank, "determined", loan_ids=[loan_id]) for loan_id in bank.loans]
        with Session(engine) as s:
            branch_id = s.get(Case, case_ids[0]).branch_id
        start = time.perf_counter()
        summary = letters.issue_batch(engine, branch_id, bank.users["chair"], workers=workers)
        elapsed = time.perf_counter() - start
        with Session(engine) as s:
            stored = s.exec(select(func.count()).select_from(Letter)).one()
            audit.verify(s)
        assert summary["cases"] == n_cases and summary["letters_issued"] == stored >= count, (summary, stored)
        return n_cases, stored, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="renders per side for the median (default 15)")
    parser.add_argument("--batch", type=int, default=200, help="letters in the batch (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="batch runs, each on a new pool (default 1)")
    args = parser.parse_args()

    print(f"CPUs available: {len(os.sched_getaffinity(0))}")
    ours, bare, cpu = compare(args.runs)
    ratio = ours / bare
    print(f"determination letter, median of {args.runs}: render_letter {ours * 1000:.0f} ms "
          f"({cpu * 1000:.0f} ms CPU), bare WeasyPrint {bare * 1000:.0f} ms, ratio {ratio:.2f}x "
          f"(goal <= {RATIO_GOAL}x: {'met' if ratio <= RATIO_GOAL else 'NOT met'})")

    rates = []
    for _ in range(args.repeat):
        startup, elapsed = batch(args.batch, args.workers)
        rate = args.batch / elapsed
        rates.append(rate)
        print(f"batch of {args.batch} on {args.workers} processes: {elapsed:.2f} s, {rate:.1f} letters/s "
              f"(goal >= {THROUGHPUT_GOAL}/s: {'met' if rate >= THROUGHPUT_GOAL else 'NOT met'}); "
              f"pool start and warm-up {startup:.2f} s, {args.batch / (elapsed + startup):.1f} letters/s including it")
    if args.repeat > 1:
        print(f"batch of {args.batch} on {args.workers} processes, {args.repeat} runs: best {max(rates):.1f}, "
              f"median {statistics.median(rates):.1f} letters/s")

    n_cases, issued, elapsed = issue(args.batch, args.workers)
    rate = issued / elapsed
    print(f"issue_batch: {issued} letters of {n_cases} determined cases on {args.workers} new processes "
          f"(SQLite; numbered, stored, audited): {elapsed:.2f} s, {rate:.1f} letters/s "
          f"(goal >= {THROUGHPUT_GOAL}/s: {'met' if rate >= THROUGHPUT_GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
