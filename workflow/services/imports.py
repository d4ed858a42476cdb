"""Bulk import of loans with their enterprises and stage handlers (JSON, CSV or XLSX).

The whole file is validated before anything is written: every bad row is reported with its line and the
reason, and nothing is written unless every row is valid. Loans are matched by loan number, so importing
the same file twice changes nothing; a later snapshot of the loan book (new balances, classifications)
updates the loans it names.

Row shape (JSON): {"loan_no", "enterprise": {"uscc", "name", "kind", "owner_name", "industry"}, "branch"
(code), "product_class", "credit_total", "amount", "balance", "start_date", "maturity_date",
"classification", "written_off", "stages": [{"stage", "employee_no", "performed_on"}]}.
CSV and XLSX use one column per field (`enterprise_uscc`, `enterprise_name`, … flattened) and, per credit
stage, a column `<stage>` with the handlers' employee numbers separated by "|" and `<stage>_date`.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
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
from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from ..domain.errors import DomainError, ValidationFailed
from ..domain.intake import entered_npl
from ..models import CLASSIFICATIONS, STAGES, Branch, Case, CaseLoan, Enterprise, Loan, LoanStage, User
from . import audit

PRODUCT_CLASSES = ("inclusive_sme", "farmer_business", "corporate", "retail")
ENTERPRISE_KINDS = ("small", "micro", "owner", "individual_business", "farmer", "other")
FORMATS = ("json", "csv", "xlsx")
_CHUNK = 2000  # keys per IN (...) query: well under SQLite's and PostgreSQL's parameter limits
_MAX_AMOUNT = Decimal("9999999999999.99")


class ImportRejected(DomainError):
    """The file has bad rows; nothing was written. `details["errors"]` lists them by line."""

    code = "import_rejected"
    http_status = 422


# Digits (ASCII only: no full-width digits, no underscores, no exponent), an optional thousands separator
# in groups of three, and at most two decimals. re.ASCII keeps \d from matching other scripts' digits.
_AMOUNT_TEXT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?", re.ASCII)


def _amount(value: Any) -> Decimal:
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
    return amount.quantize(Decimal("0.01"))


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


def _flat_to_row(cells: dict[str, str]) -> dict:
    """A CSV/XLSX record (column → text) in the JSON row shape; leaves validation to LoanRow."""
    row: dict[str, Any] = {k: cells[k] for k in _FLAT if cells.get(k, "") != ""}
    enterprise = {v: cells[k] for k, v in _ENTERPRISE_COLUMNS.items() if cells.get(k, "") != ""}
    row["enterprise"] = enterprise
    if "written_off" in row:
        flag = row["written_off"].strip().lower()
        row["written_off"] = True if flag in _TRUE else False if flag in _FALSE else row["written_off"]
    stages = []
    for stage in STAGES:
        who, when = cells.get(stage, ""), cells.get(f"{stage}_date", "")
        for emp in (e.strip() for e in who.split("|")):
            if emp:
                stages.append({"stage": stage, "employee_no": emp, "performed_on": when or None})
        if when and not who.strip():
            stages.append({"stage": stage, "employee_no": "", "performed_on": when})
    row["stages"] = stages
    return row


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
    """The (line, row) pairs of a file, and the encoding it was read in (CSV only; None otherwise)."""

    encoding: str | None = None


def read_csv(data: bytes) -> Rows:
    """(line, row) pairs of a CSV file in UTF-8 (with or without a BOM) or GB18030/GBK (what Excel writes on
    Chinese Windows); raises ValidationFailed when it is neither. `.encoding` says which it was."""
    try:
        text = data.decode("utf-8-sig")
        encoding = "UTF-8 with BOM" if data.startswith(codecs.BOM_UTF8) else "UTF-8"
    except UnicodeDecodeError as exc:
        try:  # GB18030 is a superset of GBK and GB 2312
            text = data.decode("gb18030")
            encoding = "GB18030"
        except UnicodeDecodeError:
            raise ValidationFailed(f"the CSV file is neither UTF-8 nor GB18030/GBK (byte {exc.start})",
                                   field="file") from None
    if "\x00" in text:
        raise ValidationFailed("the CSV file contains NUL characters", field="file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed("the CSV file is empty", field="file") from None
    except csv.Error as exc:
        raise ValidationFailed(f"the CSV header cannot be read: {exc}", field="file") from None
    _check_header(header)
    rows = Rows()
    rows.encoding = encoding
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                rows.append((reader.line_num, {"__error__": f"has {len(values)} fields, the header has {len(header)}"}))
                continue
            rows.append((reader.line_num, _flat_to_row(dict(zip(header, values, strict=True)))))
    except csv.Error as exc:
        raise ValidationFailed(f"line {reader.line_num}: {exc}", field="file") from None
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def read_xlsx(data: bytes) -> list[tuple[int, dict]]:
    """(row number, row) pairs of the first worksheet of an XLSX workbook; row 1 is the header."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise ValidationFailed(f"the file is not a readable XLSX workbook ({type(exc).__name__})",
                               field="file") from None
    try:
        sheet = wb.worksheets[0]
        sheet.reset_dimensions()  # the stored dimension may understate the rows: read the rows themselves
        rows_iter = sheet.iter_rows(values_only=True)
        try:
            header = [_cell(h) for h in next(rows_iter)]
        except StopIteration:
            raise ValidationFailed("the worksheet is empty", field="file") from None
        while header and header[-1] == "":
            header.pop()
        _check_header(header)
        rows = []
        for n, values in enumerate(rows_iter, start=2):
            cells = [_cell(v) for v in values]
            if not any(cells):
                continue
            extra = cells[len(header):]
            if any(extra):
                rows.append((n, {"__error__": "has values beyond the last column of the header"}))
                continue
            cells += [""] * (len(header) - len(cells))
            rows.append((n, _flat_to_row(dict(zip(header, cells[:len(header)], strict=True)))))
        return rows
    finally:
        wb.close()


def read_json(data: bytes | dict | list) -> list[tuple[int, dict]]:
    """(record number, row) pairs of a JSON import ({"loans": [...]}, or a bare list of loans)."""
    if isinstance(data, bytes | str):
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
    return [(n, row if isinstance(row, dict) else {"__error__": "must be an object"})
            for n, row in enumerate(data, start=1)]


def read_file(data: bytes, fmt: str) -> list[tuple[int, dict]]:
    """(line, row) pairs of a file in one of FORMATS."""
    with _collector_paused():
        return _read_file(data, fmt)


def _read_file(data: bytes, fmt: str) -> list[tuple[int, dict]]:
    if fmt == "json":
        return read_json(data)
    if fmt == "csv":
        return read_csv(data)
    if fmt == "xlsx":
        return read_xlsx(data)
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


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _loan_values(row: LoanRow, branch_id: int) -> dict:
    return {"loan_no": row.loan_no, "branch_id": branch_id, "product_class": row.product_class,
            "credit_total": row.credit_total, "amount": row.amount, "balance": row.balance,
            "start_date": row.start_date, "maturity_date": row.maturity_date,
            "classification": row.classification, "written_off": row.written_off}


_LOAN_FIELDS = ("enterprise_id", "branch_id", "product_class", "credit_total", "amount", "balance", "start_date",
                "maturity_date", "classification", "written_off")
_ENTERPRISE_FIELDS = ("name", "kind", "owner_name", "industry")


def import_loans(session: Session, actor, rows: list[tuple[int, dict]], *, dry_run: bool = False,
                 source_sha256: str | None = None, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Validate every row, then (unless `dry_run`) create or update loans, enterprises and stage handlers.

    Raises ImportRejected listing every bad row (line, loan number, reason); nothing is written then.
    A loan that is part of a case keeps its borrower, branch and stage handlers: changing them is an error.
    """
    with _collector_paused():
        return _import_loans(session, actor, rows, dry_run=dry_run, source_sha256=source_sha256, progress=progress)


@contextmanager
def _collector_paused():
    """A bulk import allocates millions of small, long-lived objects; the cyclic collector would rescan
    them again and again (half the run time at 100,000 rows) while finding nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import_loans(session: Session, actor, rows: list[tuple[int, dict]], *, dry_run: bool,
                  source_sha256: str | None, progress: Callable[[int], None] | None) -> ImportResult:
    errors: list[RowError] = []
    valid: list[tuple[int, LoanRow]] = []
    first_line: dict[str, int] = {}
    names: dict[str, tuple[int, str]] = {}
    for n, (line, raw) in enumerate(rows, start=1):
        if progress and n % 1000 == 0:
            progress(1000)
        loan_no = raw.get("loan_no") if isinstance(raw.get("loan_no"), str) else None
        if "__error__" in raw:
            errors.append(RowError(line, loan_no, raw["__error__"]))
            continue
        try:
            row = LoanRow.model_validate(raw)
        except ValidationError as exc:
            errors.append(RowError(line, loan_no, _reason(exc)))
            continue
        if row.loan_no in first_line:
            errors.append(RowError(line, row.loan_no, f"loan_no {row.loan_no} is already on line "
                                                      f"{first_line[row.loan_no]}"))
            continue
        first_line[row.loan_no] = line
        known = names.setdefault(row.enterprise.uscc, (line, row.enterprise.name))
        if known[1] != row.enterprise.name:
            errors.append(RowError(line, row.loan_no, f"enterprise {row.enterprise.uscc} is named "
                                                      f"{known[1]!r} on line {known[0]}"))
            continue
        valid.append((line, row))
    if progress:
        progress(len(rows) % 1000)

    branches = dict(session.connection().execute(select(Branch.__table__.c.code, Branch.__table__.c.id)).all())
    staff = dict(session.connection().execute(select(User.__table__.c.employee_no, User.__table__.c.id)).all())
    loan_t, stage_t, ent_t = Loan.__table__, LoanStage.__table__, Enterprise.__table__
    conn = session.connection()

    existing: dict[str, Any] = {}
    for chunk in _chunks([r.loan_no for _, r in valid]):
        for rec in conn.execute(select(loan_t).where(loan_t.c.loan_no.in_(chunk))).mappings():
            existing[rec["loan_no"]] = rec
    existing_ids = [rec["id"] for rec in existing.values()]
    old_stages: dict[int, set] = {}
    in_case: dict[int, str] = {}
    for chunk in _chunks(existing_ids):
        for lid, stage, uid, day in conn.execute(select(stage_t.c.loan_id, stage_t.c.stage, stage_t.c.user_id,
                                                        stage_t.c.performed_on).where(stage_t.c.loan_id.in_(chunk))):
            old_stages.setdefault(lid, set()).add((stage, uid, day))
        for lid, number in conn.execute(select(CaseLoan.__table__.c.loan_id, Case.__table__.c.number)
                                        .join(Case.__table__, Case.__table__.c.id == CaseLoan.__table__.c.case_id)
                                        .where(CaseLoan.__table__.c.loan_id.in_(chunk))):
            in_case[lid] = number
    enterprises: dict[str, Any] = {}
    for chunk in _chunks(sorted(names)):
        for rec in conn.execute(select(ent_t).where(ent_t.c.uscc.in_(chunk))).mappings():
            enterprises[rec["uscc"]] = rec

    planned = []  # (row, branch_id, stage set)
    for line, row in valid:
        problems = []
        branch_id = branches.get(row.branch)
        if branch_id is None:
            problems.append(f"branch: unknown branch code {row.branch!r}")
        unknown = sorted({s.employee_no for s in row.stages if s.employee_no not in staff})
        if unknown:
            problems.append(f"stages: unknown employee number(s) {', '.join(unknown)}")
        stages = {(s.stage, staff.get(s.employee_no), s.performed_on) for s in row.stages}
        old = existing.get(row.loan_no)
        if old is not None and old["id"] in in_case and not problems:
            ent = enterprises.get(row.enterprise.uscc)
            moved = [f for f, changed in (("branch", old["branch_id"] != branch_id),
                                          ("enterprise", ent is None or ent["id"] != old["enterprise_id"]),
                                          ("stages", old_stages.get(old["id"], set()) != stages)) if changed]
            if moved:
                problems.append(f"loan is part of case {in_case[old['id']]}: its {', '.join(moved)} cannot change")
        if problems:
            errors.append(RowError(line, row.loan_no, "; ".join(problems)))
        else:
            planned.append((row, branch_id, stages))
    if errors:
        errors.sort(key=lambda e: e.line)
        shown = "; ".join(f"line {e.line}: {e.reason}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ImportRejected(f"{len(errors)} bad row(s), nothing was imported: {shown}{more}",
                             errors=[asdict(e) for e in errors])

    result = ImportResult(rows=len(rows), dry_run=dry_run, sha256=source_sha256,
                          encoding=getattr(rows, "encoding", None))
    new_ents, changed_ents, changed_usccs = {}, [], set()
    for row, _, _ in planned:
        e = row.enterprise
        values = {"uscc": e.uscc, "name": e.name, "kind": e.kind, "owner_name": e.owner_name, "industry": e.industry}
        old = enterprises.get(e.uscc)
        if old is None:
            new_ents.setdefault(e.uscc, values)
        elif e.uscc not in changed_usccs and any(old[f] != values[f] for f in _ENTERPRISE_FIELDS):
            changed_usccs.add(e.uscc)
            changed_ents.append({"b_uscc": e.uscc, **{f: values[f] for f in _ENTERPRISE_FIELDS}})
    result.enterprises_created, result.enterprises_updated = len(new_ents), len(changed_ents)
    if not dry_run and new_ents:
        conn.execute(insert(ent_t), list(new_ents.values()))
        for chunk in _chunks(list(new_ents)):
            for rec in conn.execute(select(ent_t).where(ent_t.c.uscc.in_(chunk))).mappings():
                enterprises[rec["uscc"]] = rec
    if not dry_run and changed_ents:
        conn.execute(update(ent_t).where(ent_t.c.uscc == bindparam("b_uscc")),
                     changed_ents)

    new_loans, changed_loans, stage_plan = [], [], []
    for row, branch_id, stages in planned:
        ent = enterprises.get(row.enterprise.uscc)
        values = {**_loan_values(row, branch_id), "enterprise_id": ent["id"] if ent else None}
        old = existing.get(row.loan_no)
        if entered_npl(old["classification"] if old is not None else None, values["classification"]):
            result.new_npls += 1
        if old is None:
            new_loans.append(values)
            result.created += 1
        elif any(old[f] != values[f] for f in _LOAN_FIELDS):
            changed_loans.append({"b_loan_no": row.loan_no, **{f: values[f] for f in _LOAN_FIELDS}})
            result.updated += 1
        else:
            result.unchanged += 1
        stage_plan.append((row.loan_no, stages))
    if not dry_run:
        if new_loans:
            conn.execute(insert(loan_t), new_loans)
        if changed_loans:
            conn.execute(update(loan_t).where(loan_t.c.loan_no == bindparam("b_loan_no")), changed_loans)
        ids = {no: rec["id"] for no, rec in existing.items()}
        for chunk in _chunks([v["loan_no"] for v in new_loans]):
            ids.update(conn.execute(select(loan_t.c.loan_no, loan_t.c.id).where(loan_t.c.loan_no.in_(chunk))).all())
    else:
        ids = {no: rec["id"] for no, rec in existing.items()}
    add, remove = [], []
    for loan_no, stages in stage_plan:
        lid = ids.get(loan_no)
        old = old_stages.get(lid, set()) if lid is not None else set()
        for stage, uid, day in stages - old:
            add.append({"loan_id": lid, "stage": stage, "user_id": uid, "performed_on": day})
        for stage, uid, _day in old - stages:
            remove.append({"b_loan_id": lid, "b_stage": stage, "b_user_id": uid})
    result.handlers_added, result.handlers_removed = len(add), len(remove)
    if not dry_run:
        if remove:
            conn.execute(delete(stage_t).where(stage_t.c.loan_id == bindparam("b_loan_id"),
                                               stage_t.c.stage == bindparam("b_stage"),
                                               stage_t.c.user_id == bindparam("b_user_id")), remove)
        if add:
            conn.execute(insert(stage_t), add)
        if result.created or result.updated or result.enterprises_created or result.enterprises_updated \
                or add or remove:
            audit.record(session, event="import_loans", actor=actor, payload=result.to_dict())
    return result


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
