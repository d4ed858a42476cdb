"""Benchmark of the working-day calendar (a script, not a test): .venv/bin/python bench/calendar.py

The inbox computes a deadline per case on every page view, so counting must stay cheap:
1. 1000 deadlines of 400 working days (starts on consecutive days from 2025-01-01, crossing into 2027, a
   year the package does not cover) on one fresh WorkingCalendar, year tables built on first use.
   Goal: <= 1.0 s (it used to be a timed test; speed is measured here, not asserted in tests).
2. The same 1000 deadlines on a warm calendar (tables already built): microseconds per deadline.
3. 1000 `working_days_between` counts of up to two years each, on a warm calendar.
Each figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where its name would shadow the standard
# library's `calendar` for every later import; put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from workflow.domain.calendar import WorkingCalendar  # noqa: E402

COLD_GOAL = 1.0
STARTS = [date(2025, 1, 1) + timedelta(days=i) for i in range(1000)]


def cold_deadlines() -> float:
    began = time.perf_counter()
    calendar = WorkingCalendar()
    for start in STARTS:
        calendar.add_working_days(start, 400)
    return time.perf_counter() - began


def warm_deadlines(calendar: WorkingCalendar) -> float:
    began = time.perf_counter()
    for start in STARTS:
        calendar.add_working_days(start, 400)
    return time.perf_counter() - began


def warm_between(calendar: WorkingCalendar) -> float:
    began = time.perf_counter()
    for i, start in enumerate(STARTS):
        calendar.working_days_between(start, start + timedelta(days=(i * 7) % 730))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    cold = statistics.median(cold_deadlines() for _ in range(args.repeat))
    calendar = WorkingCalendar()
    warm_deadlines(calendar)  # builds the year tables
    warm = statistics.median(warm_deadlines(calendar) for _ in range(args.repeat))
    between = statistics.median(warm_between(calendar) for _ in range(args.repeat))

    verdict = "ok" if cold <= COLD_GOAL else "SLOWER THAN GOAL"
    print(f"1000 deadlines of 400 working days, fresh calendar: {cold * 1000:.1f} ms "
          f"(goal <= {COLD_GOAL * 1000:.0f} ms: {verdict})")
    print(f"1000 deadlines of 400 working days, warm calendar:  {warm * 1000:.1f} ms "
          f"({warm * 1e6 / len(STARTS):.1f} µs each)")
    print(f"1000 working-day counts up to 2 years, warm:        {between * 1000:.1f} ms")
    sys.exit(0 if cold <= COLD_GOAL else 1)


if __name__ == "__main__":
    main()
