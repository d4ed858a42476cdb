"""Benchmark of the letter renderer (a script, not a test): .venv/bin/python bench/letters.py

1. Median time of render_letter("determination", ...) — the letter's data validated, its HTML built and
   rendered — against a bare WeasyPrint render of the same HTML (default URL fetcher, a fresh
   FontConfiguration and the letter stylesheet parsed anew each time), measured alternately in the same run.
   Goal: ratio <= 1.0. The CPU time of render_letter is printed too: on a shared machine it is steadier than
   the wall-clock figures. Then the same letter rendered and signed (PAdES, with the letter signer the
   environment names: outside production the demonstration certificate), and what signing adds.
2. Letters per second for a batch of determination letters on a pool of worker processes (started and
   warmed up before the clock starts), each signed as issue_batch signs it: the pure render batch. With --repeat N the batch runs N times and
   the best and median rates are printed.
3. The same through the product on the same processes: `letters.issue_batch` (what `flask letters
   issue-batch` runs) on an SQLite database with determined cases of three respondents each, at least
   --batch determination letters in all (each case also gets its meeting minutes): building each letter's
   data from the case, numbering, rendering on the pool's processes, storing and auditing every document.
   Goal: issue_batch >= 0.8 x the pure render batch's letters per second.
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

RATIO_GOAL = 1.0
ISSUE_GOAL = 0.8  # issue_batch letters/s over the pure render batch's, on the same processes


def sample(i: int = 0) -> dict:
    """A determination letter as the product issues it (per loan and stage, with the form of the bank);
    ``i`` varies the person and numbers so no two are alike."""
    outcome = ("exempt", "reduced", "liable")[i % 3]
    stage = {"loan_no": f"JY2023-{871 + i:05d}", "stage": "pre_loan", "outcome": outcome,
             "rule": "未违反法律法规和监管规定，未履行的职责与损失无因果关系或存在可减免责情形，属于轻微过错，减轻责任",
             "citation": "《普惠信贷尽职免责实施细则（示范文本）》第九条；金规〔2024〕11号（可减免责情形）",
             "unperformed": [{"text": "对照纳税、流水等记录核实借款用途和还款来源",
                              "citation": "《普惠信贷尽职免责实施细则（示范文本）》第十四条第（三）项；银监发〔2006〕69号",
                              "causal": False, "evidence": ["证据1（银行流水与纳税记录核对表）"]}],
             "findings": ["经核对银行流水与纳税记录，借款人申报经营收入与对公流水差异约46%，被评议人未作核实即按申报收入测算还款能力。",
                          "该差异与借款人后续经营恶化之间无直接关联，损失系原材料价格大幅上涨所致。"],
             "evidence": ["证据1（银行流水与纳税记录核对表）"]}
    post = {"loan_no": f"JY2023-{871 + i:05d}", "stage": "post_loan", "outcome": "exempt",
            "rule": "无确切证据证明被评议人违反法律法规、监管规定或内部制度，或未履职尽责，原则上免除全部责任",
            "citation": "《普惠信贷尽职免责实施细则（示范文本）》第七条；金规〔2024〕11号",
            "findings": ["经调阅贷后检查台账，被评议人按期开展了现场和非现场检查，未发现违规或未履职情形。"]}
    return {
        "bank": "济源农村商业银行股份有限公司",
        "branch": "济源农商银行沁园支行",
        "masthead": "济源农村商业银行尽职免责评议委员会", "cc": ["人力资源部", "合规部"],
        "printed_by": "济源农村商业银行办公室", "signatory": "周建国",
        "doc_number": f"济农商免认〔2026〕{12 + i}号",
        "issued_at": dt.date(2026, 3, 9),
        "case_no": f"MZ-2026-{12 + i:04d}",
        "committee": {"name": "济源农村商业银行尽职免责评议委员会", "decided_at": dt.date(2026, 3, 6)},
        "main_to": [("王晓明", "李娜", "陈志强", "赵丽华")[i % 4]],
        "respondent": {"name": ("王晓明", "李娜", "陈志强", "赵丽华")[i % 4], "employee_no": f"E{1001 + i}",
                       "branch": "沁园支行公司业务部"},
        "stages": ["pre_loan", "post_loan"],
        "loans": [
            {"loan_no": f"JY2023-{871 + i:05d}", "enterprise": "济源市恒达机械配件有限公司",
             "amount": Decimal("3000000"), "balance": Decimal("2450000.00") - i},
            {"loan_no": f"JY2024-{112 + i:05d}", "enterprise": "济源市恒达机械配件有限公司",
             "amount": Decimal("1500000"), "balance": Decimal("1500000.00")},
        ],
        "outcome": outcome,
        "liability_kind": "diligence",
        "consequences": ["考核扣分按应扣分值的50%执行", "行政处分减轻1档", "经济处罚按应处金额的50%执行",
                         "移交人力资源部（问责部门）依规处理"],
        "stage_reasons": [stage, post],
        "deciding": [{"loan_no": stage["loan_no"], "stage": "pre_loan"}],
        "recommended": outcome,
        "tolerance": {"branch": "沁园支行", "period": dt.date(2025, 12, 31), "sme_ratio": Decimal("0.0501"),
                      "all_ratio": Decimal("0.0200"), "gap_pp": Decimal("3.01"), "within": False},
        "deviation": None,
        "votes": {"exempt": 0, "reduced": 3, "liable": 0, "cast": 3, "eligible": 4},
        "appeal": {"days": 5, "body": "济源农村商业银行总行尽职免责申诉复核委员会"},
    }


def _signer():
    """The letter signer issue_batch uses here: the one the environment names (outside production the
    demonstration certificate in instance/, made on first use)."""
    from workflow.config import letter_signing
    from workflow.services import letters

    p12, passphrase = letter_signing()
    return letters.signer_from_config({"LETTER_SIGNING_P12": p12, "LETTER_SIGNING_PASSWORD": passphrase})


def _warm_up() -> None:
    render_letter("determination", sample(), signer=_signer())


def _render_one(i: int) -> int:
    return len(render_letter("determination", sample(i), signer=_signer()).pdf)


def compare(runs: int) -> tuple[float, float, float, float, float]:
    """Median seconds of render_letter (unsigned) and of a bare render of the same HTML, measured alternately,
    the median CPU seconds of render_letter, and the median seconds and CPU seconds of render_letter signing
    (PAdES) with the letter signer."""
    data = sample()
    html = letter_html("determination", data)
    signer = _signer()
    render_letter("determination", data)
    render_letter("determination", data, signer=signer)
    render_html_bare(html)
    ours, bare, cpu, signed, signed_cpu = [], [], [], [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        render_letter("determination", data)
        ours.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        start = time.perf_counter()
        render_html_bare(html)
        bare.append(time.perf_counter() - start)
        start, start_cpu = time.perf_counter(), time.process_time()
        render_letter("determination", data, signer=signer)
        signed.append(time.perf_counter() - start)
        signed_cpu.append(time.process_time() - start_cpu)
    return (statistics.median(ours), statistics.median(bare), statistics.median(cpu), statistics.median(signed),
            statistics.median(signed_cpu))


def batch(count: int, pool, workers: int) -> float:
    """Seconds to render ``count`` determination letters on a started, warmed-up pool."""
    start = time.perf_counter()
    sizes = list(pool.map(_render_one, range(count), chunksize=max(1, count // (workers * 10))))
    elapsed = time.perf_counter() - start
    assert len(sizes) == count and all(sizes)
    return elapsed


def start_pool(workers: int):
    """A pool of rendering processes as `issue_batch` starts them (spawned, ending with their parent), warmed up."""
    from workflow.services import letters

    context = multiprocessing.get_context("spawn")  # like separate worker processes; nothing inherited
    start = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=letters._worker_start)
    list(pool.map(_render_one, range(-workers, 0)))  # every worker started and warmed up
    return pool, time.perf_counter() - start


def issue(count: int, pool, workers: int) -> tuple[int, int, int, float]:
    """(cases, determination letters issued, documents issued, seconds) for `letters.issue_batch` on the pool,
    over determined cases with >= count determination letters."""
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
            before = s.exec(select(func.count()).select_from(Letter)).one()
        start = time.perf_counter()
        summary = letters.issue_batch(engine, branch_id, bank.users["chair"], workers=workers, pool=pool)
        elapsed = time.perf_counter() - start
        with Session(engine) as s:
            stored = s.exec(select(func.count()).select_from(Letter)).one() - before
            determinations = s.exec(select(func.count()).select_from(Letter).where(Letter.kind == "determination")).one()
            audit.verify(s)
            documents = [(lt.kind, lt.data) for lt in s.exec(select(Letter).where(Letter.id > before))]
        assert summary["cases"] == n_cases and summary["letters_issued"] == stored, (summary, stored)
        assert determinations >= count
        return n_cases, determinations, documents, elapsed


def _render_document(kind_data) -> int:
    kind, data = kind_data
    return len(render_letter(kind, data, signer=_signer()).pdf)


def render_documents(documents, pool, workers: int) -> float:
    """Seconds to render the same documents (kind and stored data) on the pool: the pure render batch of
    what issue_batch issued."""
    start = time.perf_counter()
    sizes = list(pool.map(_render_document, documents, chunksize=max(1, len(documents) // (workers * 10))))
    assert all(sizes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="renders per side for the median (default 15)")
    parser.add_argument("--batch", type=int, default=200, help="letters in the batch (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="pure render batch runs (default 1)")
    args = parser.parse_args()

    print(f"CPUs available: {len(os.sched_getaffinity(0))}")
    ours, bare, cpu, signed, signed_cpu = compare(args.runs)
    ratio = ours / bare
    print(f"determination letter, median of {args.runs}: render_letter {ours * 1000:.0f} ms "
          f"({cpu * 1000:.0f} ms CPU), bare WeasyPrint {bare * 1000:.0f} ms, ratio {ratio:.2f}x "
          f"(goal <= {RATIO_GOAL}x: {'met' if ratio <= RATIO_GOAL else 'NOT met'})")
    print(f"signed (PAdES, {'demo ' if _signer().demo else ''}certificate): render_letter {signed * 1000:.0f} ms "
          f"({signed_cpu * 1000:.0f} ms CPU): signing adds {(signed - ours) * 1000:.0f} ms "
          f"({(signed_cpu - cpu) * 1000:.0f} ms CPU)")

    pool, startup = start_pool(args.workers)
    try:
        rates = []
        for _ in range(args.repeat):
            elapsed = batch(args.batch, pool, args.workers)
            rates.append(args.batch / elapsed)
            print(f"pure render batch: {args.batch} letters on {args.workers} processes: {elapsed:.2f} s, "
                  f"{rates[-1]:.1f} letters/s (pool start and warm-up {startup:.2f} s, not counted)")
        if args.repeat > 1:
            print(f"pure render batch, {args.repeat} runs: best {max(rates):.1f}, median {statistics.median(rates):.1f} "
                  "letters/s")
        n_cases, determinations, documents, elapsed = issue(args.batch, pool, args.workers)
        pure = render_documents(documents, pool, args.workers)
    finally:
        pool.shutdown()
    stored = len(documents)
    ratio = pure / elapsed  # the same documents on the same processes: issued per second over rendered per second
    print(f"issue_batch on the same {args.workers} processes: {stored} documents ({determinations} determination "
          f"letters and {stored - determinations} minutes) of {n_cases} determined cases (SQLite; data built from "
          f"each case, numbered, stored, audited): {elapsed:.2f} s, {stored / elapsed:.1f} documents/s; the same "
          f"documents rendered alone: {pure:.2f} s, {stored / pure:.1f}/s; issue_batch = {ratio:.2f}x the pure render "
          f"batch (goal >= {ISSUE_GOAL}x: {'met' if ratio >= ISSUE_GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
