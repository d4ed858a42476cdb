"""Bulk import of loans with their enterprises and stage handlers (JSON, CSV or XLSX).

The whole file is validated before anything is written: every bad row is reported with its line and the
reason, and nothing is written unless every row is valid. Loans are matched by loan number, so importing
the same file twice changes nothing; a later snapshot of the loan book (new balances, classifications)
updates the loans it names. Each loan keeps the digest of the CSV/XLSX row it was last imported from, so a
later file validates and compares only the rows that differ from their loan's last import (the monthly
snapshot of a book where most loans did not change).

Row shape (JSON): {"loan_no", "enterprise": {"uscc", "name", "kind", "owner_name", "industry"}, "branch"
(code), "product_class", "credit_total", "amount", "balance", "start_date", "maturity_date",
"classification", "written_off", "stages": [{"stage", "employee_no", "performed_on"}]}.
CSV and XLSX use one column per field (`enterprise_uscc`, `enterprise_name`, … flattened) and, per credit
stage, a column `<stage>` with the handlers' employee numbers separated by "|" and `<stage>_date`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy import select, text
from sqlmodel import Session

from ..domain.errors import DomainError, ValidationFailed
from ..models import (
    CLASSIFICATIONS,
    NPL_CLASSES,
    STAGES,
    Branch,
    Case,
    CaseLoan,
    Enterprise,
    Loan,
    LoanStage,
    User,
)
from . import audit, tabular

PRODUCT_CLASSES = ("inclusive_sme", "farmer_business", "corporate", "retail")
ENTERPRISE_KINDS = ("small", "micro", "owner", "individual_business", "farmer", "other")
FORMATS = ("json", "csv", "xlsx")
MAX_JSON_BYTES = 64 << 20  # a JSON import is parsed whole: CSV and XLSX files are read row by row
_MAX_AMOUNT = Decimal("9999999999999.99")
_CENT = Decimal("0.01")


class ImportRejected(DomainError):
    """The file has bad rows; nothing was written. `details["errors"]` lists them by line."""

    code = "import_rejected"
    http_status = 422


# Digits (ASCII only: no full-width digits, no underscores, no exponent), an optional thousands separator
# in groups of three, and at most two decimals. re.ASCII keeps \d from matching other scripts' digits.
_AMOUNT_TEXT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?", re.ASCII)


def _amount(value: Any) -> Decimal:
    if value.__class__ is str and _AMOUNT_TEXT.fullmatch(value):  # the usual case, first
        amount = Decimal(value.replace(",", "") if "," in value else value)
        if amount <= _MAX_AMOUNT:
            return amount.quantize(_CENT)
    if isinstance(value, bool):
        raise ValueError("must be an amount in yuan, not true/false")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be an amount in yuan (a string such as \"800000.50\" or a number)")
    text = value.strip()
    if not _AMOUNT_TEXT.fullmatch(text):
        raise ValueError(f"{value!r} is not an amount: digits, an optional thousands separator and at most "
                         "2 decimals (no exponent, full-width digits or underscores)")
    amount = Decimal(text.replace(",", ""))
    if amount > _MAX_AMOUNT:
        raise ValueError(f"{value!r} is too large")
    return amount.quantize(_CENT)


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^[0-9]{1,13}(\.[0-9]{1,2})?$"},
                              {"type": "integer", "minimum": 0, "maximum": 9999999999999}],
                    "description": "an amount in yuan, at most 2 decimals"}),
]


def _text(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value.strip()
    return value


Text = Annotated[str, BeforeValidator(_text)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageHandlerRow(_Row):
    """Who handled one credit stage of the loan, and when."""

    stage: Literal[STAGES]
    employee_no: Text = Field(min_length=1, max_length=32)
    performed_on: date


class EnterpriseRow(_Row):
    """The borrower, matched by its unified social credit code (统一社会信用代码)."""

    uscc: Text = Field(pattern=r"^[0-9A-Z]{18}$")
    name: Text = Field(min_length=1, max_length=200)
    kind: Literal[ENTERPRISE_KINDS] = "small"
    owner_name: Text = Field(default="", max_length=64)
    industry: Text = Field(default="", max_length=64)


class LoanRow(_Row):
    """One loan of the file, with its borrower and stage handlers."""

    loan_no: Text = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._/-]{0,39}$")
    enterprise: EnterpriseRow
    branch: Text = Field(min_length=1, max_length=32, description="branch code")
    product_class: Literal[PRODUCT_CLASSES]
    credit_total: Amount
    amount: Amount
    balance: Amount
    start_date: date
    maturity_date: date
    classification: Literal[CLASSIFICATIONS] = "normal"
    written_off: bool = False
    stages: list[StageHandlerRow] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> LoanRow:
        if self.maturity_date < self.start_date:
            raise ValueError("maturity_date is before start_date")
        seen = set()
        for s in self.stages:
            key = (s.stage, s.employee_no)
            if key in seen:
                raise ValueError(f"stage {s.stage} names employee {s.employee_no} twice")
            seen.add(key)
        return self


class LoanImport(_Row):
    """A JSON import: the loans to create or update."""

    loans: list[LoanRow] = Field(max_length=200_000)


@dataclass
class RowError:
    line: int
    loan_no: str | None
    reason: str


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    enterprises_created: int = 0
    enterprises_updated: int = 0
    handlers_added: int = 0
    handlers_removed: int = 0
    new_npls: int = 0  # loans that entered a non-performing class: they are on the intake list (services/intake.py)
    dry_run: bool = False
    sha256: str | None = None
    encoding: str | None = None  # how a CSV file was read: "UTF-8", "UTF-8 with BOM" or "GB18030"
    errors: list[RowError] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("errors")
        return out


# --- reading files -------------------------------------------------------------------------------------

_FLAT = ("loan_no", "branch", "product_class", "credit_total", "amount", "balance", "start_date",
         "maturity_date", "classification", "written_off")
_ENTERPRISE_COLUMNS = {"enterprise_uscc": "uscc", "enterprise_name": "name", "enterprise_kind": "kind",
                       "owner_name": "owner_name", "industry": "industry"}
COLUMNS = (*_FLAT[:1], *_ENTERPRISE_COLUMNS, *_FLAT[1:], *[c for s in STAGES for c in (s, f"{s}_date")])
_TRUE, _FALSE = {"1", "true", "yes", "y", "是"}, {"0", "false", "no", "n", "否", ""}


def _flat_reader(header: list[str]) -> Callable[[list[str]], dict]:
    """For a checked header: a function from a CSV/XLSX record (its cells, in the header's order) to the JSON
    row shape; validation is left to LoanRow."""
    at = {h: i for i, h in enumerate(header)}
    flat = [(k, at[k]) for k in _FLAT if k in at]
    enterprise = [(v, at[k]) for k, v in _ENTERPRISE_COLUMNS.items() if k in at]
    stages = [(s, at.get(s), at.get(f"{s}_date")) for s in STAGES if s in at or f"{s}_date" in at]
    written_off = at.get("written_off")

    def row_of(cells: list[str]) -> dict:
        row: dict[str, Any] = {k: cells[i] for k, i in flat if cells[i] != ""}
        row["enterprise"] = {k: cells[i] for k, i in enterprise if cells[i] != ""}
        if written_off is not None and cells[written_off] != "":
            flag = cells[written_off].strip().lower()
            row["written_off"] = True if flag in _TRUE else False if flag in _FALSE else cells[written_off]
        handlers = []
        for stage, who_at, when_at in stages:
            who = cells[who_at] if who_at is not None else ""
            when = cells[when_at] if when_at is not None else ""
            if who:
                for emp in who.split("|"):
                    if emp := emp.strip():
                        handlers.append({"stage": stage, "employee_no": emp, "performed_on": when or None})
            if when and not who.strip():
                handlers.append({"stage": stage, "employee_no": "", "performed_on": when})
        row["stages"] = handlers
        return row

    return row_of


def _check_header(header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in ("loan_no", "enterprise_uscc", "enterprise_name", "branch", "product_class",
                           "credit_total", "amount", "balance", "start_date", "maturity_date") if c not in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if dupes:
        problems.append(f"repeated column(s) {', '.join(dupes)}")
    if problems:
        raise ImportRejected("the header row is wrong: " + "; ".join(problems),
                             errors=[{"line": 1, "loan_no": None, "reason": "; ".join(problems)}])


class Rows(list):
    """The (line, row) pairs of a JSON import, read whole (its size is capped), with its SHA-256."""

    encoding: str | None = None
    sha256: str | None = None


class LoanFile:
    """A CSV or XLSX loan file, read row by row each time it is iterated: (line, row) pairs in the JSON row
    shape. Opening it reads it once (size cap, SHA-256, CSV encoding); the header is checked, and the row
    cap enforced, while iterating."""

    def __init__(self, source: tabular.Source, fmt: str, limits: tabular.Limits):
        self.source, self.fmt, self.limits = source, fmt, limits
        with tabular.opened(source) as f:
            found = tabular.scan(f, limits, text=fmt == "csv")
        self.sha256, self.size, self.encoding, self._codec = found.sha256, found.size, found.encoding, found.codec

    header: list[str] | None = None  # set once iterating has read (and checked) the header row

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        row_of = None
        for line, cells, error in self.records():
            if error is not None:
                yield line, {"__error__": error}
                continue
            row_of = row_of or _flat_reader(self.header)
            yield line, row_of(cells)

    def records(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        """(line, cells in the header's order, None), or (line, None, what is wrong with its shape), row by
        row; `header` is set when the first is yielded."""
        with tabular.opened(self.source) as f:
            if self.fmt == "csv":
                records = tabular.csv_rows(f, self._codec, self.limits)
            else:
                records = tabular.xlsx_rows(f, self.limits)
            with closing(records):  # ended while the file is open, whatever stops the reading
                header = next(records)[1]
                _check_header(header)
                self.header, width = header, len(header)
                for line, cells in records:
                    if len(cells) != width:
                        if self.fmt == "csv":
                            yield line, None, f"has {len(cells)} fields, the header has {width}"
                            continue
                        if any(cells[width:]):
                            yield line, None, "has values beyond the last column of the header"
                            continue
                        cells = (cells + [""] * width)[:width]
                    yield line, cells, None


def read_csv(data: tabular.Source, limits: tabular.Limits | None = None) -> LoanFile:
    """The rows of a CSV file in UTF-8 (with or without a BOM) or GB18030/GBK (what Excel writes on Chinese
    Windows); raises ValidationFailed when it is neither. `.encoding` says which it was."""
    return LoanFile(data, "csv", limits or tabular.Limits())


def read_xlsx(data: tabular.Source, limits: tabular.Limits | None = None) -> LoanFile:
    """The rows of the first worksheet of an XLSX workbook; row 1 is the header."""
    return LoanFile(data, "xlsx", limits or tabular.Limits())


def read_json(data: bytes | dict | list, limits: tabular.Limits | None = None) -> Rows:
    """(record number, row) pairs of a JSON import ({"loans": [...]}, or a bare list of loans)."""
    limits = limits or tabular.Limits()
    rows = Rows()
    if isinstance(data, bytes | str):
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > min(limits.max_bytes, MAX_JSON_BYTES):
            raise tabular.too_large(min(limits.max_bytes, MAX_JSON_BYTES))
        rows.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationFailed(f"the file is not valid JSON: {exc}", field="file") from None
        except RecursionError:  # the decoder recurses once per level of nesting
            raise ValidationFailed("the file is not a loan import: its arrays and objects nest thousands of "
                                   "levels deep", field="file") from None
    if isinstance(data, dict):
        if set(data) != {"loans"}:
            raise ValidationFailed('a JSON import is an object with one member, "loans" (a list of loans)',
                                   field="loans")
        data = data["loans"]
    if not isinstance(data, list):
        raise ValidationFailed('"loans" must be a list of loans', field="loans")
    if len(data) > limits.max_rows:
        raise tabular.too_many_rows(limits.max_rows)
    rows.extend((n, row if isinstance(row, dict) else {"__error__": "must be an object"})
                for n, row in enumerate(data, start=1))
    return rows


def read_file(data: tabular.Source, fmt: str, limits: tabular.Limits | None = None) -> Rows | LoanFile:
    """The (line, row) pairs of a file in one of FORMATS: bytes, a path or an open binary file (CSV and XLSX
    are read row by row when imported; JSON is read whole, at most MAX_JSON_BYTES)."""
    limits = limits or tabular.Limits()
    if fmt == "json":
        if not isinstance(data, bytes | bytearray | dict | list | str):
            with tabular.opened(data) as f:
                data = f.read(min(limits.max_bytes, MAX_JSON_BYTES) + 1)
        return read_json(data, limits)
    if fmt in ("csv", "xlsx"):
        return LoanFile(data, fmt, limits)
    raise ValidationFailed(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")


def format_of(filename: str) -> str:
    """The import format named by a file's extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in FORMATS:
        raise ValidationFailed(f"cannot tell the format of {filename!r}; use a .json, .csv or .xlsx file",
                               field="file")
    return ext


# --- validating and writing ----------------------------------------------------------------------------

def _reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


_BATCH = 5000  # rows validated, then staged, at a time


class _Staging:
    """The rows of one import, validated, in temporary tables of the import's own transaction (gone when
    it ends): PostgreSQL loads them with COPY, SQLite with executemany; the checks across rows and the merge
    into the loan book are then set-wise SQL, the same on both."""

    LOANS = "mianze_import_loan"
    STAGES = "mianze_import_stage"
    ENTERPRISES = "mianze_import_enterprise"
    KNOWN = "mianze_import_known"  # rows equal to what their loan was last imported from: not validated again
    ALL = "mianze_import_all"  # every row's loan number and borrower, for the checks across rows
    _LOAN_COLS = ("line", "loan_no", "uscc", "ent_name", "kind", "owner_name", "industry", "branch_id",
                  "product_class", "credit_total", "amount", "balance", "start_date", "maturity_date",
                  "classification", "written_off", "digest")
    _STAGE_COLS = ("line", "stage", "user_id", "performed_on")
    _KNOWN_COLS = ("line", "loan_no")

    def __init__(self, conn):
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.temp = "pg_temp" if self.postgres else "temp"  # the session's own schema: never a real table
        self.loans: list[tuple] = []
        self.stages: list[tuple] = []
        self.known: list[tuple] = []
        tail = " ON COMMIT DROP" if self.postgres else ""
        self.drop()
        self.sql(f"""CREATE TEMPORARY TABLE {self.LOANS} (line integer NOT NULL, loan_no varchar(40) NOT NULL,
            uscc varchar(18) NOT NULL, ent_name varchar(200) NOT NULL, kind varchar(32) NOT NULL,
            owner_name varchar(64) NOT NULL, industry varchar(64) NOT NULL, branch_id integer NOT NULL,
            product_class varchar(32) NOT NULL, credit_total bigint NOT NULL, amount bigint NOT NULL,
            balance bigint NOT NULL, start_date date NOT NULL, maturity_date date NOT NULL,
            classification varchar(20) NOT NULL, written_off boolean NOT NULL, digest varchar(32)){tail}""")
        self.sql(f"""CREATE TEMPORARY TABLE {self.STAGES} (line integer NOT NULL, stage varchar(20) NOT NULL,
            user_id integer NOT NULL, performed_on date NOT NULL){tail}""")
        self.sql(f"""CREATE TEMPORARY TABLE {self.KNOWN} (line integer NOT NULL, loan_no varchar(40) NOT NULL)
            {tail}""")

    def sql(self, statement: str, params: dict | None = None):
        return self.conn.execute(text(statement), params or {})

    def add(self, line: int, row: LoanRow, branch_id: int, stages: Iterable[tuple[str, int, date]],
            digest: str | None) -> None:
        e = row.enterprise
        if self.postgres:
            self.loans.append((line, row.loan_no, e.uscc, e.name, e.kind, e.owner_name, e.industry, branch_id,
                               row.product_class, _fen(row.credit_total), _fen(row.amount), _fen(row.balance),
                               row.start_date, row.maturity_date, row.classification, row.written_off, digest))
            self.stages.extend((line, stage, uid, day) for stage, uid, day in stages)
        else:  # as SQLAlchemy stores them on SQLite: ISO dates, 0/1
            self.loans.append((line, row.loan_no, e.uscc, e.name, e.kind, e.owner_name, e.industry, branch_id,
                               row.product_class, _fen(row.credit_total), _fen(row.amount), _fen(row.balance),
                               row.start_date.isoformat(), row.maturity_date.isoformat(), row.classification,
                               int(row.written_off), digest))
            self.stages.extend((line, stage, uid, day.isoformat()) for stage, uid, day in stages)
        if len(self.loans) >= _BATCH:
            self.flush()

    def add_known(self, line: int, loan_no: str) -> None:
        """A row equal to the one its loan was last imported from: only its place in the file is staged."""
        self.known.append((line, loan_no))
        if len(self.known) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        for table, cols, rows in ((self.LOANS, self._LOAN_COLS, self.loans),
                                  (self.STAGES, self._STAGE_COLS, self.stages),
                                  (self.KNOWN, self._KNOWN_COLS, self.known)):
            if not rows:
                continue
            if self.postgres:
                raw = self.conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
            else:
                self.conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                          f"({', '.join('?' * len(cols))})", rows)
            rows.clear()

    def loaded(self) -> None:
        """All rows are in: index and describe the staging tables for the checks and the merge."""
        self.flush()
        self.sql(f"CREATE INDEX {self.LOANS}_no ON {self.LOANS} (loan_no)")
        self.sql(f"CREATE INDEX {self.LOANS}_uscc ON {self.LOANS} (uscc)")
        self.sql(f"CREATE INDEX {self.STAGES}_line ON {self.STAGES} (line)")
        self.sql(f"ANALYZE {self.LOANS}")
        self.sql(f"ANALYZE {self.STAGES}")
        self.known_rows = self.sql(f"SELECT count(*) FROM {self.KNOWN}").scalar_one()
        # Every row's loan number and borrower as the checks across rows see them: a known row's borrower
        # is its loan's (which it equals).
        tail = " ON COMMIT DROP" if self.postgres else ""
        known = _q("""UNION ALL SELECT k.line, k.loan_no, e.uscc, e.name, e.kind, e.owner_name, e.industry
            FROM {K} k JOIN {loan} l ON l.loan_no = k.loan_no JOIN {ent} e ON e.id = l.enterprise_id""")
        if self.known_rows:
            self.sql(_q(f"""CREATE TEMPORARY TABLE {{A}}{tail} AS SELECT line, loan_no, uscc, ent_name, kind,
                owner_name, industry FROM {{L}} {known}"""))
            self.sql(f"CREATE INDEX {self.ALL}_no ON {self.ALL} (loan_no)")
            self.sql(f"CREATE INDEX {self.ALL}_uscc ON {self.ALL} (uscc)")
            self.sql(f"ANALYZE {self.ALL}")
        self.every = self.ALL if self.known_rows else self.LOANS  # no known rows: the staged ones are all

    def drop(self) -> None:
        for name in (self.LOANS, self.STAGES, self.ENTERPRISES, self.KNOWN, self.ALL):
            self.sql(f"DROP TABLE IF EXISTS {self.temp}.{name}")


def _fen(amount: Decimal) -> int:
    return int(amount * 100)


def import_loans(session: Session, actor, rows: Iterable[tuple[int, dict]], *, dry_run: bool = False,
                 source_sha256: str | None = None, progress: Callable[[int], None] | None = None,
                 limits: tabular.Limits | None = None) -> ImportResult:
    """Validate every row, then (unless `dry_run`) create or update loans, enterprises and stage handlers,
    all in the session's transaction.

    `rows`: (line, row) pairs, e.g. read_file(...): read once, row by row, so memory stays bounded for any
    size of file. Raises ImportRejected with the first `limits.max_errors` bad rows (line, loan number,
    reason), their total and a count per kind; nothing is written then. A loan that is part of a case keeps
    its borrower, branch and stage handlers: changing them is an error. An unchanged file writes nothing.
    """
    with _collector_paused():
        return _import_loans(session, actor, rows, dry_run=dry_run, limits=limits or tabular.Limits(),
                             source_sha256=source_sha256 or getattr(rows, "sha256", None), progress=progress)


@contextmanager
def _collector_paused():
    """A bulk import allocates millions of small objects; the cyclic collector would rescan the live ones
    again and again while finding nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _error(report: tabular.ErrorReport, kind: str, line: int, loan_no: str | None, reason: str) -> None:
    report.add(kind, {"line": line, "loan_no": loan_no, "reason": reason})


def _kind(exc: ValidationError) -> str:
    loc = exc.errors(include_url=False)[0]["loc"]
    return str(loc[0]) if loc else "row"


# Part of every row digest: bump it when what a row must satisfy changes, so that no row is taken for valid
# on the strength of an import checked by older rules.
_DIGEST_RULES = "loan-row-1"


def _digester(header: list[str], branches: dict[str, int], staff: dict[str, int]) -> Callable[[list[str]], str]:
    """For a file's checked header: a row's digest over the header, its cells and the ids its branch code and
    employee numbers name now. Two rows with one digest read as the same loan, borrower and handlers."""
    at = {h: i for i, h in enumerate(header)}
    named_at = [at["branch"], *(at[s] for s in STAGES if s in at)]
    seed = "\x00".join([_DIGEST_RULES, *header]).encode()
    ids_of: dict[tuple[str, ...], bytes] = {}  # the ids a row's codes name: the same few handlers recur

    def ids(codes: tuple[str, ...]) -> bytes:
        names = [branches.get(codes[0].strip())]
        for cell in codes[1:]:
            if cell:
                names.extend(staff.get(e.strip()) for e in cell.split("|"))
        if len(ids_of) >= 100_000:  # a file of ever new handlers does not grow it without bound
            ids_of.clear()
        found = ids_of[codes] = repr(names).encode()
        return found

    def digest(cells: list[str]) -> str:
        # NUL joins the cells: no valid row holds one (_text refuses it), so no two valid rows join alike.
        codes = tuple([cells[i] for i in named_at])
        h = hashlib.blake2b(seed, digest_size=16)
        h.update("\x00".join(cells).encode())
        h.update(ids_of.get(codes) or ids(codes))
        return h.hexdigest()

    return digest


def _rows_to_check(conn, rows: Iterable[tuple[int, dict]], branches: dict[str, int], staff: dict[str, int],
                   staging: _Staging) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line, row, its digest) for each row of the file. A row of a CSV or XLSX file whose digest is the one
    its loan was last imported with is staged as known and yielded without its row (None): it was valid and
    equal to the loan book then, and every change to the loan, its borrower or its handlers since then came
    through an import that reset that digest. Other rows (and all of a JSON file, digest None) are yielded
    whole, to be validated."""
    if not isinstance(rows, LoanFile):
        for line, raw in rows:
            yield line, raw, None
        return
    batch: list[tuple[int, list[str] | None, str | None]] = []
    digest_of = row_of = None
    no_at = 0
    table = Loan.__table__.name
    if conn.dialect.name == "postgresql":  # sent as the driver's statement: compiling 5,000 parameters costs more
        def lookup(numbers: list[str]):
            return conn.exec_driver_sql(f"SELECT loan_no, import_digest FROM {table} WHERE loan_no = ANY(%s) "
                                        "AND import_digest IS NOT NULL", (numbers,))
    else:
        def lookup(numbers: list[str]):
            marks = ", ".join("?" * len(numbers))
            return conn.exec_driver_sql(f"SELECT loan_no, import_digest FROM {table} WHERE loan_no IN ({marks}) "
                                        "AND import_digest IS NOT NULL", tuple(numbers))

    def checked() -> Iterator[tuple[int, dict | None, str | None]]:
        keyed = [(line, cells, error, cells[no_at].strip() if error is None else None,
                  digest_of(cells) if error is None else None) for line, cells, error in batch]
        numbers = list({key[3] for key in keyed if key[3] is not None})
        stored = dict(lookup(numbers).all()) if numbers else {}
        for line, cells, error, loan_no, digest in keyed:
            if error is not None:
                yield line, {"__error__": error}, None
            elif stored.get(loan_no) == digest:
                staging.add_known(line, loan_no)
                yield line, None, digest
            else:
                yield line, row_of(cells), digest

    for record in rows.records():
        if digest_of is None:
            digest_of, row_of = _digester(rows.header, branches, staff), _flat_reader(rows.header)
            no_at = rows.header.index("loan_no")
        batch.append(record)
        if len(batch) >= _BATCH:
            yield from checked()
            batch.clear()
    if batch:
        yield from checked()


def _import_loans(session: Session, actor, rows: Iterable[tuple[int, dict]], *, dry_run: bool,
                  source_sha256: str | None, progress: Callable[[int], None] | None,
                  limits: tabular.Limits) -> ImportResult:
    conn = session.connection()
    branches = dict(conn.execute(select(Branch.__table__.c.code, Branch.__table__.c.id)).all())
    staff = dict(conn.execute(select(User.__table__.c.employee_no, User.__table__.c.id)).all())
    report = tabular.ErrorReport(limits.max_errors)
    staging = _Staging(conn)
    count = 0
    for line, raw, digest in _rows_to_check(conn, rows, branches, staff, staging):
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
        if raw is None:  # the very row its loan was last imported from: valid then, and nothing it names moved
            continue
        loan_no = raw.get("loan_no") if isinstance(raw.get("loan_no"), str) else None
        if "__error__" in raw:
            _error(report, "fields", line, loan_no, raw["__error__"])
            continue
        try:
            row = LoanRow.model_validate(raw)
        except ValidationError as exc:
            _error(report, _kind(exc), line, loan_no, _reason(exc))
            continue
        branch_id = branches.get(row.branch)
        unknown = sorted({s.employee_no for s in row.stages if s.employee_no not in staff})
        if branch_id is None or unknown:
            problems = ([f"branch: unknown branch code {row.branch!r}"] if branch_id is None else []) + \
                ([f"stages: unknown employee number(s) {', '.join(unknown)}"] if unknown else [])
            _error(report, "branch" if branch_id is None else "employee", line, row.loan_no, "; ".join(problems))
            continue
        staging.add(line, row, branch_id, {(s.stage, staff[s.employee_no], s.performed_on) for s in row.stages},
                    digest)
    if progress:
        progress(count % 1000)
    staging.loaded()
    _check_across_rows(staging, report)
    if report:
        details = report.details()
        shown = "; ".join(f"line {e['line']}: {e['reason']}" for e in details["errors"][:3])
        more = f" (and {report.total - 3} more)" if report.total > 3 else ""
        raise ImportRejected(f"{report.total} bad row(s), nothing was imported: {shown}{more}", **details)

    result = ImportResult(rows=count, dry_run=dry_run, sha256=source_sha256, encoding=getattr(rows, "encoding", None))
    _merge(staging, result, dry_run=dry_run)
    staging.drop()
    if not dry_run and (result.created or result.updated or result.enterprises_created
                        or result.enterprises_updated or result.handlers_added or result.handlers_removed):
        audit.record(session, event="import_loans", actor=actor, payload=result.to_dict())
    return result


_T = {"loan": Loan.__table__.name, "stage": LoanStage.__table__.name, "ent": Enterprise.__table__.name,
      "case_loan": CaseLoan.__table__.name, "case": Case.__table__.name, "L": _Staging.LOANS, "S": _Staging.STAGES,
      "E": _Staging.ENTERPRISES, "K": _Staging.KNOWN, "A": _Staging.ALL}


def _q(statement: str, **names: str) -> str:
    return statement.format(**{**_T, **names})


def _check_across_rows(st: _Staging, report: tabular.ErrorReport) -> None:
    """The checks that need every row: a loan number twice, an enterprise named two ways, a loan of a case
    whose borrower, branch or handlers would change. Only the first errors are fetched, the rest counted."""
    keep = report.keep
    every = st.every  # the staged rows and the known ones
    dupes = _q("""SELECT s.line, s.loan_no, f.first FROM {A} s JOIN (SELECT loan_no, min(line) AS first FROM {A}
                  GROUP BY loan_no HAVING count(*) > 1) f ON f.loan_no = s.loan_no WHERE s.line > f.first""", A=every)
    total = st.sql(f"SELECT count(*) FROM ({dupes}) d").scalar_one()
    if total:
        for line, loan_no, first in st.sql(f"{dupes} ORDER BY s.line LIMIT {keep}"):
            _error(report, "duplicate", line, loan_no, f"loan_no {loan_no} is already on line {first}")
        report.counts["duplicate"] += total - min(total, keep)
        later = _q("SELECT line FROM {A} s WHERE line > (SELECT min(line) FROM {A} f WHERE f.loan_no = s.loan_no)",
                   A=every)
        st.sql(_q(f"DELETE FROM {{S}} WHERE line IN ({later})"))
        for table in dict.fromkeys((st.LOANS, every)):  # the staged rows first: `later` reads the others
            st.sql(_q(f"DELETE FROM {table} WHERE line IN (SELECT line FROM ({later}) x)"))
    tail = " ON COMMIT DROP" if st.postgres else ""
    st.sql(_q(f"""CREATE TEMPORARY TABLE {{E}}{tail} AS SELECT line, uscc, ent_name, kind, owner_name, industry FROM
                 (SELECT line, uscc, ent_name, kind, owner_name, industry,
                         row_number() OVER (PARTITION BY uscc ORDER BY line) AS rn FROM {{A}}) firsts WHERE rn = 1""",
              A=every))
    st.sql(_q("CREATE UNIQUE INDEX {E}_uscc ON {E} (uscc)"))
    names = _q("SELECT s.line, s.loan_no, s.uscc, e.ent_name, e.line FROM {A} s JOIN {E} e ON e.uscc = s.uscc "
               "WHERE s.ent_name <> e.ent_name", A=every)
    total = st.sql(f"SELECT count(*) FROM ({names}) n").scalar_one()
    if total:
        for line, loan_no, uscc, name, first in st.sql(f"{names} ORDER BY s.line LIMIT {keep}"):
            _error(report, "enterprise_name", line, loan_no, f"enterprise {uscc} is named {name!r} on line {first}")
        report.counts["enterprise_name"] += total - min(total, keep)
    in_case = st.sql(_q(f"""SELECT s.line, s.loan_no, min(c.number), l.branch_id <> s.branch_id,
            (e.id IS NULL OR e.id <> l.enterprise_id), ({_STAGES_DIFFER})
        FROM {{L}} s JOIN {{loan}} l ON l.loan_no = s.loan_no JOIN {{case_loan}} cl ON cl.loan_id = l.id
        JOIN {{case}} c ON c.id = cl.case_id LEFT JOIN {{ent}} e ON e.uscc = s.uscc
        GROUP BY s.line, s.loan_no, l.id, l.branch_id, s.branch_id, e.id, l.enterprise_id ORDER BY s.line"""))
    for line, loan_no, number, branch, enterprise, stages in in_case:
        moved = [f for f, changed in (("branch", branch), ("enterprise", enterprise), ("stages", stages)) if changed]
        if moved:
            _error(report, "in_case", line, loan_no, f"loan is part of case {number}: its {', '.join(moved)} "
                                                     "cannot change")


# A staged loan's handlers differ from the stored ones (s: the staged loan, l: the stored loan).
_STAGES_DIFFER = """EXISTS (SELECT 1 FROM {stage} ls WHERE ls.loan_id = l.id AND NOT EXISTS (SELECT 1 FROM {S} t
        WHERE t.line = s.line AND t.stage = ls.stage AND t.user_id = ls.user_id AND t.performed_on = ls.performed_on))
    OR EXISTS (SELECT 1 FROM {S} t WHERE t.line = s.line AND NOT EXISTS (SELECT 1 FROM {stage} ls
        WHERE ls.loan_id = l.id AND ls.stage = t.stage AND ls.user_id = t.user_id AND ls.performed_on = t.performed_on))"""

_ENT_CHANGED = "(x.ent_name <> e.name OR x.kind <> e.kind OR x.owner_name <> e.owner_name OR x.industry <> e.industry)"
_LOAN_CHANGED = """(l.enterprise_id <> e.id OR l.branch_id <> s.branch_id OR l.product_class <> s.product_class
    OR l.credit_total <> s.credit_total OR l.amount <> s.amount OR l.balance <> s.balance
    OR l.start_date <> s.start_date OR l.maturity_date <> s.maturity_date OR l.classification <> s.classification
    OR l.written_off <> s.written_off)"""
_STAGE_GONE = """FROM {stage} ls JOIN {loan} l ON l.id = ls.loan_id JOIN {L} s ON s.loan_no = l.loan_no
    WHERE NOT EXISTS (SELECT 1 FROM {S} t WHERE t.line = s.line AND t.stage = ls.stage AND t.user_id = ls.user_id
                      AND t.performed_on = ls.performed_on)"""


def _merge(st: _Staging, result: ImportResult, *, dry_run: bool) -> None:
    """Count, and unless `dry_run` write, the differences between the staged rows and the loan book:
    new enterprises and loans inserted, changed ones updated, unchanged ones not touched; stage handlers
    no longer named removed, new ones added."""
    npl = ", ".join(f"'{c}'" for c in NPL_CLASSES)  # the domain's classes (domain/intake.entered_npl)
    result.new_npls = st.sql(_q(f"""SELECT count(*) FROM {{L}} s LEFT JOIN {{loan}} l ON l.loan_no = s.loan_no
        WHERE s.classification IN ({npl}) AND (l.id IS NULL OR l.classification NOT IN ({npl}))""")).scalar_one()
    new_ents = _q("FROM {E} x WHERE NOT EXISTS (SELECT 1 FROM {ent} e WHERE e.uscc = x.uscc)")
    if dry_run:
        count = lambda sql: st.sql(_q(sql)).scalar_one()  # noqa: E731
        result.enterprises_created = st.sql(f"SELECT count(*) {new_ents}").scalar_one()
        result.enterprises_updated = count(f"SELECT count(*) FROM {{E}} x JOIN {{ent}} e ON e.uscc = x.uscc "
                                           f"WHERE {_ENT_CHANGED}")
        result.created = count("SELECT count(*) FROM {L} s WHERE NOT EXISTS "
                               "(SELECT 1 FROM {loan} l WHERE l.loan_no = s.loan_no)")
        result.updated = count(f"""SELECT count(*) FROM {{L}} s JOIN {{loan}} l ON l.loan_no = s.loan_no
            LEFT JOIN {{ent}} e ON e.uscc = s.uscc WHERE e.id IS NULL OR {_LOAN_CHANGED}""")
        result.handlers_removed = count("SELECT count(*) " + _STAGE_GONE)
        result.handlers_added = count("""SELECT count(*) FROM {S} t JOIN {L} s ON s.line = t.line
            LEFT JOIN {loan} l ON l.loan_no = s.loan_no WHERE l.id IS NULL OR NOT EXISTS (SELECT 1 FROM {stage} ls
            WHERE ls.loan_id = l.id AND ls.stage = t.stage AND ls.user_id = t.user_id
            AND ls.performed_on = t.performed_on)""")
    else:
        write = lambda sql: st.sql(_q(sql)).rowcount  # noqa: E731
        result.enterprises_created = st.sql(
            _q("INSERT INTO {ent} (uscc, name, kind, owner_name, industry) "
               "SELECT x.uscc, x.ent_name, x.kind, x.owner_name, x.industry ") + new_ents).rowcount
        # A borrower that changes no longer equals the rows its other loans were imported from.
        st.sql(_q(f"""UPDATE {{loan}} SET import_digest = NULL WHERE import_digest IS NOT NULL AND enterprise_id IN
            (SELECT e.id FROM {{E}} x JOIN {{ent}} e ON e.uscc = x.uscc WHERE {_ENT_CHANGED})"""))
        result.enterprises_updated = write(f"""UPDATE {{ent}} SET name = x.ent_name, kind = x.kind,
            owner_name = x.owner_name, industry = x.industry FROM {{E}} x
            WHERE {{ent}}.uscc = x.uscc AND {_ENT_CHANGED.replace('e.', '{ent}.')}""")
        if st.postgres and result.enterprises_created > 1000:
            st.sql(_q("ANALYZE {ent}"))  # the planner would take the new rows for none and loop over them
        result.handlers_removed = write("DELETE FROM {stage} WHERE id IN (SELECT ls.id " + _STAGE_GONE + ")")
        result.updated = write(f"""UPDATE {{loan}} SET enterprise_id = e.id, branch_id = s.branch_id,
            product_class = s.product_class, credit_total = s.credit_total, amount = s.amount, balance = s.balance,
            start_date = s.start_date, maturity_date = s.maturity_date, classification = s.classification,
            written_off = s.written_off, import_digest = s.digest FROM {{L}} s JOIN {{ent}} e ON e.uscc = s.uscc
            WHERE {{loan}}.loan_no = s.loan_no AND {_LOAN_CHANGED.replace('l.', '{loan}.')}""")
        result.created = write("""INSERT INTO {loan} (loan_no, enterprise_id, branch_id, product_class, credit_total,
            amount, balance, start_date, maturity_date, classification, written_off, import_digest)
            SELECT s.loan_no, e.id, s.branch_id, s.product_class, s.credit_total, s.amount, s.balance, s.start_date,
            s.maturity_date, s.classification, s.written_off, s.digest FROM {L} s JOIN {ent} e ON e.uscc = s.uscc
            WHERE NOT EXISTS (SELECT 1 FROM {loan} l WHERE l.loan_no = s.loan_no) ORDER BY s.line""")
        if st.postgres and result.created > 1000:
            st.sql(_q("ANALYZE {loan}"))
        result.handlers_added = write("""INSERT INTO {stage} (loan_id, stage, user_id, performed_on)
            SELECT l.id, t.stage, t.user_id, t.performed_on FROM {S} t JOIN {L} s ON s.line = t.line
            JOIN {loan} l ON l.loan_no = s.loan_no WHERE NOT EXISTS (SELECT 1 FROM {stage} ls
            WHERE ls.loan_id = l.id AND ls.stage = t.stage AND ls.user_id = t.user_id
            AND ls.performed_on = t.performed_on)""")
        # Every loan now equals its staged row (its handlers too): it remembers that row's digest, or none.
        st.sql(_q("""UPDATE {loan} SET import_digest = s.digest FROM {L} s WHERE {loan}.loan_no = s.loan_no
            AND COALESCE({loan}.import_digest, '') <> COALESCE(s.digest, '')"""))
    staged = st.sql(_q("SELECT count(*) FROM {L}")).scalar_one()
    result.unchanged = staged + st.known_rows - result.created - result.updated


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
