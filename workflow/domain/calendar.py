"""The working-day calendar: China's official holidays and make-up days (调休), plus the bank's overrides.

Official data comes from the `chinesecalendar` package, which only knows the years the State Council has
published (2004–2026 in the installed version). For any other year, a date no override defines falls back to
weekends only (Monday–Friday working) and the calendar records a warning for that year, so the UI can tell
an administrator to add that year's holidays as overrides. It never raises for an uncovered year.

Counting convention: a deadline of n working days from a start date is the n-th working day *after* the
start; the start itself never counts, whether or not it is a working day (an appeal window of 5 working days
from a letter served on Tuesday 2026-09-29 ends on Monday 2026-10-12, across National Day).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache

import chinese_calendar

YEAR_NOT_COVERED = "calendar_year_not_covered"


@dataclass(frozen=True, slots=True)
class CalendarWarning:
    """A fallback the calendar had to use: `code` and `year` let the UI translate; `message` is English."""

    code: str
    year: int
    message: str
    message_zh: str

    def __str__(self) -> str:
        return self.message


def year_not_covered_warning(year: int) -> CalendarWarning:
    """The warning for a year the package has no official data for."""
    lo, hi = _package_years()
    return CalendarWarning(
        code=YEAR_NOT_COVERED,
        year=year,
        message=(
            f"{year}: no official holiday data (chinese-calendar covers {lo}–{hi}); "
            "weekends only — add overrides"
        ),
        message_zh=(
            f"{year}年：无官方节假日数据（chinese-calendar 仅覆盖 {lo}–{hi} 年），"
            "暂按周一至周五为工作日计算——请补充节假日与调休设置"
        ),
    )


@lru_cache(maxsize=1)
def _package_years() -> tuple[int, int]:
    """First and last year the package has data for (its own rule: the span of its holiday table)."""
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


@cache
def _package_covers(year: int) -> bool:
    """Whether the package answers for `year` (asked through its public API, so a newer version just works)."""
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@dataclass(slots=True)
class _Year:
    """One year's working days as a prefix count: `prefix[i]` = working days among the year's first i days."""

    first_ordinal: int
    prefix: list[int]
    flags: bytes = field(repr=False)

    @property
    def total(self) -> int:
        return self.prefix[-1]


@lru_cache(maxsize=64)
def _package_year(year: int) -> bytes:
    """The package's working-day flags of one covered year (read once per process: the data never changes,
    and the package's own look-up is slow)."""
    first = dt.date(year, 1, 1)
    days = (dt.date(year, 12, 31) - first).days + 1
    return bytes(chinese_calendar.is_workday(first + dt.timedelta(days=i)) for i in range(days))


# Year tables shared by every calendar of the process, keyed by (year, that year's overrides); immutable.
_SHARED_YEARS: dict[tuple, _Year] = {}
_SHARED_YEARS_MAX = 256


class WorkingCalendar:
    """Working days in China, with the bank's overrides (True: working day, False: holiday) winning."""

    def __init__(
        self,
        overrides: Mapping[dt.date, bool] | None = None,
        *,
        confirmed_years: Iterable[int] = (),
    ) -> None:
        """`confirmed_years`: uncovered years whose overrides an administrator declared complete (no warning)."""
        self._overrides: dict[dt.date, bool] = {
            _as_date(d): bool(working) for d, working in (overrides or {}).items()
        }
        self._override_ordinals: dict[int, list[int]] = {}
        for d in self._overrides:
            self._override_ordinals.setdefault(d.year, []).append(d.toordinal())
        for ordinals in self._override_ordinals.values():
            ordinals.sort()
        self._confirmed_years = frozenset(confirmed_years)
        self._years: dict[int, _Year] = {}
        self._warnings: dict[int, CalendarWarning] = {}

    # ---- warnings -------------------------------------------------------------------------------------

    @property
    def warnings(self) -> list[CalendarWarning]:
        """The fallbacks used so far, one per year, in year order."""
        return [self._warnings[y] for y in sorted(self._warnings)]

    def uncovered_years(self, years: Iterable[int]) -> list[int]:
        """Those of `years` the package has no data for and no administrator confirmed, sorted."""
        return sorted({y for y in years if self._falls_back(y)})

    def _falls_back(self, year: int) -> bool:
        return not _package_covers(year) and year not in self._confirmed_years

    def _note_fallback(self, lo: int, hi: int) -> None:
        """Record a warning for each uncovered year in which some day of ordinals [lo, hi] has no override."""
        for year in range(dt.date.fromordinal(lo).year, dt.date.fromordinal(hi).year + 1):
            if year in self._warnings or not self._falls_back(year):
                continue
            table = self._year(year)
            first = max(lo, table.first_ordinal)
            last = min(hi, table.first_ordinal + len(table.flags) - 1)
            ordinals = self._override_ordinals.get(year, [])
            overridden = bisect_left(ordinals, last + 1) - bisect_left(ordinals, first)
            if last - first + 1 > overridden:
                self._warnings[year] = year_not_covered_warning(year)

    # ---- the year tables (the per-date memo) -------------------------------------------------------------

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            # Tables depend only on the year and that year's overrides, so calendars built for different
            # requests share them (building one walks 365 days: about a millisecond).
            key = (year, tuple((o, self._overrides[dt.date.fromordinal(o)])
                               for o in self._override_ordinals.get(year, ())))
            table = _SHARED_YEARS.get(key)
            if table is None:
                if len(_SHARED_YEARS) >= _SHARED_YEARS_MAX:
                    _SHARED_YEARS.clear()
                table = _SHARED_YEARS[key] = self._build_year(year)
            self._years[year] = table
        return table

    def _build_year(self, year: int) -> _Year:
        first = dt.date(year, 1, 1)
        days = (dt.date(year, 12, 31) - first).days + 1
        covered = _package_covers(year)
        flags = bytearray(days)
        prefix = [0] * (days + 1)
        base = _package_year(year) if covered else None
        for i in range(days):
            d = first + dt.timedelta(days=i)
            working = self._overrides.get(d)
            if working is None:
                working = base[i] if base is not None else d.weekday() < 5
            flags[i] = working
            prefix[i + 1] = prefix[i] + working
        return _Year(first_ordinal=first.toordinal(), prefix=prefix, flags=bytes(flags))

    def _count_through(self, d: dt.date) -> tuple[int, _Year]:
        """Working days from 1 January of d's year up to and including d."""
        table = self._year(d.year)
        return table.prefix[d.toordinal() - table.first_ordinal + 1], table

    # ---- the public questions -------------------------------------------------------------------------

    def is_working_day(self, d: dt.date) -> bool:
        """Whether `d` is a working day: an override if any, else official data, else Monday–Friday."""
        d = _as_date(d)
        table = self._year(d.year)
        if d not in self._overrides and self._falls_back(d.year):
            self._note_fallback(d.toordinal(), d.toordinal())
        return bool(table.flags[d.toordinal() - table.first_ordinal])

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The n-th working day after `start`, start not counted; n < 0: the |n|-th before it; n == 0: start."""
        start = _as_date(start)
        if n == 0:
            return start
        count, table = self._count_through(start)
        # The answer is the working day at which the running count (from 1 January of `year`) reaches target.
        target = count + n
        year = start.year
        if n > 0:
            while target > table.total:
                target -= table.total
                year += 1
                table = self._year(year)
        else:
            # Counting back, start is not counted either: only working days strictly before it.
            target += 1 - table.flags[start.toordinal() - table.first_ordinal]
            while target < 1:
                year -= 1
                table = self._year(year)
                target += table.total
        answer = table.first_ordinal + bisect_left(table.prefix, target) - 1
        lo, hi = sorted((start.toordinal(), answer))
        self._note_fallback(lo, hi)
        return dt.date.fromordinal(answer)

    def working_days_between(self, a: dt.date, b: dt.date) -> int:
        """Working days after `a` up to and including `b`; negative (−count from b to a) if b < a."""
        a, b = _as_date(a), _as_date(b)
        if b < a:
            return -self.working_days_between(b, a)
        count_a, _ = self._count_through(a)
        count_b, _ = self._count_through(b)
        years_between = sum(self._year(y).total for y in range(a.year, b.year))
        self._note_fallback(a.toordinal(), b.toordinal())
        return years_between + count_b - count_a

    def remaining(self, deadline: dt.date, today: dt.date) -> int:
        """Working days left until `deadline`: 0 means it is due today, negative means overdue by that many."""
        return self.working_days_between(today, deadline)


def _as_date(d: dt.date) -> dt.date:
    """A plain date (a datetime is a date subclass that would never equal the date keys)."""
    return d.date() if isinstance(d, dt.datetime) else d
