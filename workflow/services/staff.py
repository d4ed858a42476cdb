"""Staff at a real bank's size: the paged, filtered users list in natural order, and the HR file import.

The HR file (CSV or XLSX, one member of staff a row) creates or updates staff matched by employee number.
As with the loan import (services/imports.py), the whole file is checked before anything is written: every
bad row is reported with its line and the reason, and nothing is written unless every row is valid. Each
row's roles are checked against the policy for the administrator importing it (scope, the bank-wide auditor
role, roles held together), exactly as if they were granted one by one on the user's page.

Staff created by an import have no password (they cannot sign in) until one is set for them.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlmodel import Session

from ..domain import policy
from ..domain.errors import DomainError, ValidationFailed
from ..domain.ordering import natural_key
from ..models import ROLES, Branch, User, utcnow
from . import audit, tabular
from .accounts import LOCALES, _policy_actor, _require_admin

PER_PAGE = 50
SORTS = ("username", "name", "employee_no", "branch")
STATUSES = ("active", "inactive")

COLUMNS = ("employee_no", "username", "name", "branch", "roles", "active", "locale")
REQUIRED = ("employee_no", "username", "name", "branch")
_TRUE, _FALSE = {"1", "true", "yes", "y", "是"}, {"0", "false", "no", "n", "否"}
_MAX_ROWS = 100_000


# --- the list ---------------------------------------------------------------------------------------------

@dataclass
class StaffPage:
    """One page of the users list: its rows, how many match in all, and where the page is."""

    users: list[User]
    total: int
    page: int
    pages: int
    per_page: int


def _role_clause(role: str):
    col = User.__table__.c.roles
    return or_(col == role, col.like(f"{role} %"), col.like(f"% {role}"), col.like(f"% {role} %"))


def list_staff(session: Session, scope_path: str, *, q: str = "", branch_id: int | None = None, role: str = "",
               status: str = "", sort: str = "username", descending: bool = False, page: int = 1,
               per_page: int = PER_PAGE) -> StaffPage:
    """The staff of the branches under `scope_path` (the administrator's subtree) that match the filters,
    sorted in natural order (member2 before member10) on `sort`, one page of them.

    `branch_id` keeps that branch and the branches below it; `role` one role code; `status` active or
    inactive staff. Unknown filter values raise ValidationFailed.
    """
    if sort not in SORTS:
        raise ValidationFailed(f"unknown sort {sort!r}", field="sort")
    if role and role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}", field="role")
    if status and status not in STATUSES:
        raise ValidationFailed(f"unknown status {status!r}", field="status")
    b, u = Branch.__table__.c, User.__table__.c
    path = scope_path
    if branch_id:
        chosen = session.get(Branch, branch_id)
        if chosen is None or not chosen.path.startswith(scope_path):
            raise ValidationFailed(f"branch {branch_id} is not in your scope", field="branch_id")
        path = chosen.path
    column = {"username": u.username, "name": u.name, "employee_no": u.employee_no, "branch": b.code}[sort]
    query = select(u.id, column).join(Branch.__table__, b.id == u.branch_id).where(b.path.like(path + "%"))
    if q:
        query = query.where(or_(u.username.like(f"%{q}%"), u.name.like(f"%{q}%"), u.employee_no.like(f"%{q}%")))
    if role:
        query = query.where(_role_clause(role))
    if status:
        query = query.where(u.active == (status == "active"))
    # Natural order is not an SQL collation: sort the matching keys here (5,000 staff: a few milliseconds),
    # then load only the page's rows.
    keyed = sorted(session.connection().execute(query).all(), key=lambda r: (natural_key(r[1]), r[0]),
                   reverse=descending)
    total = len(keyed)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    ids = [r[0] for r in keyed[(page - 1) * per_page:page * per_page]]
    rows = {x.id: x for x in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    return StaffPage(users=[rows[i] for i in ids], total=total, page=page, pages=pages, per_page=per_page)


# --- the HR file ------------------------------------------------------------------------------------------

class StaffImportRejected(DomainError):
    """The HR file has bad rows; nothing was written. `details["errors"]` lists them by line."""

    code = "import_rejected"
    http_status = 422


@dataclass
class StaffRowError:
    """A bad row: its line in the file, the employee number it names, a code, its values, and in English."""

    line: int
    employee_no: str | None
    code: str
    values: dict = field(default_factory=dict)
    reason: str = ""


@dataclass
class StaffImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    created_ids: list[int] = field(default_factory=list)
    dry_run: bool = False
    sha256: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("created_ids")
        return out


# What each row error code says in English (the API's text; the UI translates the code).
ROW_REASONS = {
    "header": "the header row is wrong (unknown columns: %(unknown)s; missing columns: %(missing)s; repeated "
              "columns: %(repeated)s)",
    "fields": "the row has %(found)d fields, the header has %(expected)d",
    "beyond_header": "the row has values beyond the last column of the header",
    "required": "%(column)s is required",
    "too_long": "%(column)s may have at most %(max)d characters",
    "username": "the username may contain letters, digits, '.', '-' and '_' only",
    "unknown_branch": "unknown branch code %(branch)s",
    "unknown_role": "unknown role(s): %(roles)s",
    "active": "active must be yes or no, not %(value)s",
    "locale": "locale must be zh or en, not %(value)s",
    "repeated_employee_no": "employee number %(employee_no)s is already on line %(other)d",
    "repeated_username": "username %(username)s is already on line %(other)d",
    "username_taken": "the username %(username)s belongs to employee %(other)s",
    "own_account": "you cannot remove your own administrator role or deactivate yourself",
    "refused": "%(refusal)s",
}


def _error(line: int, who: str | None, code: str, **values) -> StaffRowError:
    return StaffRowError(line, who or None, code, values, ROW_REASONS[code] % values)


def _check_header(header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if unknown or missing or dupes:
        err = _error(1, None, "header", unknown=", ".join(unknown) or "-", missing=", ".join(missing) or "-",
                     repeated=", ".join(dupes) or "-")
        raise StaffImportRejected(f"line 1: {err.reason}; nothing was imported", errors=[asdict(err)])


class StaffRows(list):
    """The (line, row) pairs of an HR file, with its SHA-256 and (CSV) the encoding it was read in."""

    sha256: str | None = None
    encoding: str | None = None


def read_hr_file(data: tabular.Source, filename: str, limits: tabular.Limits | None = None) -> StaffRows:
    """(line, row) pairs of an HR file, CSV (UTF-8 or GB18030) or XLSX by its extension; row 1 is the header.
    `data`: bytes, a path or an open binary file (an upload's spooled file), read row by row (services/tabular).

    Raises ValidationFailed (unreadable file, unknown extension, beyond the caps) and StaffImportRejected
    (wrong header).
    """
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in ("csv", "xlsx"):
        raise ValidationFailed("the HR file must be a .csv or .xlsx file", field="file")
    limits = limits or tabular.Limits()
    limits = replace(limits, max_rows=min(limits.max_rows, _MAX_ROWS))
    rows = StaffRows()
    with tabular.opened(data) as f:
        found = tabular.scan(f, limits, text=ext == "csv")
        rows.sha256, rows.encoding = found.sha256, found.encoding
        records = (tabular.csv_rows(f, found.codec, limits) if ext == "csv"
                   else tabular.xlsx_rows(f, limits, yes="yes", no="no"))
        with closing(records):
            _read_rows(records, rows, ext)
    return rows


def _read_rows(records, rows: StaffRows, ext: str) -> None:
    header = next(records)[1]
    _check_header(header)
    width = len(header)
    for line, cells in records:
        if len(cells) != width:
            if ext == "csv":
                rows.append((line, {"__error__": ("fields", {"found": len(cells), "expected": width})}))
                continue
            if any(cells[width:]):
                rows.append((line, {"__error__": ("beyond_header", {})}))
                continue
            cells = (cells + [""] * width)[:width]
        rows.append((line, {h: v.strip() for h, v in zip(header, cells, strict=True)}))


def _roles_of(text: str) -> list[str]:
    return [r for r in text.replace("|", " ").replace(",", " ").replace("，", " ").split() if r]


_LIMITS = {"employee_no": 32, "username": 64, "name": 64}


def import_staff(session: Session, actor: User, rows: list[tuple[int, dict]], *, dry_run: bool = False,
                 source_sha256: str | None = None) -> StaffImportResult:
    """Create or update the staff of an HR file (matched by employee number), all or nothing.

    Raises PermissionDenied (not an administrator) and StaffImportRejected listing every bad row by line,
    with nothing written. New staff get no password (they are invited to set one); an update changes the
    name, home branch, roles and active flag and keeps the person's password and language.
    """
    _require_admin(actor)
    if len(rows) > _MAX_ROWS:
        raise ValidationFailed(f"an HR file may have at most {_MAX_ROWS} rows", field="file")
    me = _policy_actor(session, actor)
    conn = session.connection()
    b, u = Branch.__table__.c, User.__table__.c
    branches = {code: (bid, path) for code, bid, path in conn.execute(select(b.code, b.id, b.path))}
    paths = dict(branches.values())
    by_employee = {rec["employee_no"]: rec for rec in conn.execute(
        select(u.id, u.employee_no, u.username, u.name, u.branch_id, u.roles, u.active)).mappings()}
    owner_of_username = {rec["username"]: no for no, rec in by_employee.items()}

    errors: list[StaffRowError] = []
    seen_no: dict[str, int] = {}
    seen_username: dict[str, int] = {}
    planned: list[tuple[dict, Any]] = []  # (values, existing record or None)
    for line, raw in rows:
        employee_no = raw.get("employee_no") or None
        if "__error__" in raw:
            code, values = raw["__error__"]
            errors.append(_error(line, employee_no, code, **values))
            continue
        problems = [_error(line, employee_no, "required", column=c) for c in REQUIRED if not raw.get(c)]
        problems += [_error(line, employee_no, "too_long", column=c, max=n) for c, n in _LIMITS.items()
                     if len(raw.get(c) or "") > n]
        username = raw.get("username") or ""
        if username and not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
            problems.append(_error(line, employee_no, "username"))
        branch = branches.get(raw.get("branch") or "")
        if raw.get("branch") and branch is None:
            problems.append(_error(line, employee_no, "unknown_branch", branch=raw["branch"]))
        wanted = _roles_of(raw.get("roles") or "")
        unknown = [r for r in wanted if r not in ROLES]
        if unknown:
            problems.append(_error(line, employee_no, "unknown_role", roles=", ".join(unknown)))
        flag = (raw.get("active") or "yes").strip().lower()
        if flag not in _TRUE | _FALSE:
            problems.append(_error(line, employee_no, "active", value=raw.get("active")))
        locale = (raw.get("locale") or "zh").strip()
        if locale not in LOCALES:
            problems.append(_error(line, employee_no, "locale", value=locale))
        if employee_no and employee_no in seen_no:
            problems.append(_error(line, employee_no, "repeated_employee_no", employee_no=employee_no,
                                   other=seen_no[employee_no]))
        if username and username in seen_username:
            problems.append(_error(line, employee_no, "repeated_username", username=username,
                                   other=seen_username[username]))
        if employee_no:
            seen_no.setdefault(employee_no, line)
        if username:
            seen_username.setdefault(username, line)
        owner = owner_of_username.get(username)
        if owner is not None and owner != employee_no:
            problems.append(_error(line, employee_no, "username_taken", username=username, other=owner))
        if problems:
            errors.extend(problems)
            continue
        old = by_employee.get(employee_no)
        roles = " ".join(r for r in ROLES if r in wanted)
        active = flag in _TRUE
        before = old["roles"].split() if old else ()
        if old is not None and old["id"] == actor.id and (not active or "admin" not in roles.split()):
            errors.append(_error(line, employee_no, "own_account"))
            continue
        refusal = None
        if old is not None:  # the person must be within the administrator's scope where they are now
            if not policy.in_subtree(paths[old["branch_id"]], me.branch_path):
                refusal = policy.OUTSIDE_SUBTREE
        refusal = refusal or policy.why_not_grant(me, roles.split(), branch_path=branch[1], before=before)
        if refusal is not None:
            errors.append(_error(line, employee_no, "refused", refusal=refusal.text(), rule=refusal.code))
            continue
        planned.append(({"employee_no": employee_no, "username": username, "name": raw["name"],
                         "branch_id": branch[0], "roles": roles, "active": active, "locale": locale}, old))
    if errors:
        errors.sort(key=lambda e: e.line)
        shown = "; ".join(f"line {e.line}: {e.reason}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise StaffImportRejected(f"{len(errors)} bad row(s), nothing was imported: {shown}{more}",
                                  errors=[asdict(e) for e in errors])

    result = StaffImportResult(rows=len(rows), dry_run=dry_run, sha256=source_sha256)
    new, changed = [], []
    for values, old in planned:
        if old is None:
            new.append({**values, "password_hash": "", "session_epoch": 0, "created_at": utcnow()})
        elif any(old[f] != values[f] for f in ("username", "name", "branch_id", "roles", "active")):
            changed.append((old["id"], {f: values[f] for f in ("username", "name", "branch_id", "roles", "active")},
                            {f: old[f] for f in ("username", "name", "branch_id", "roles", "active")}))
        else:
            result.unchanged += 1
    result.created, result.updated = len(new), len(changed)
    if dry_run or not (new or changed):
        return result
    if new:
        conn.execute(insert(User.__table__), new)
        numbers = [v["employee_no"] for v in new]
        for i in range(0, len(numbers), 2000):
            result.created_ids += [r[0] for r in conn.execute(
                select(u.id).where(u.employee_no.in_(numbers[i:i + 2000])))]
    for user_id, values, _ in changed:
        conn.execute(update(User.__table__).where(u.id == user_id).values(**values))
    session.expire_all()  # rows changed beneath the ORM
    audit.record(session, event="import_staff", actor=actor, payload={
        **result.to_dict(),
        "created_staff": [{"employee_no": v["employee_no"], "username": v["username"], "roles": v["roles"]} for v in new],
        "updated_staff": [{"user_id": uid, "before": before, "after": after} for uid, after, before in changed]})
    return result
