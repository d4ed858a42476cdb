"""The management dashboard (/dashboard): figures per branch subtree and period, SVG charts, XLSX download.

`bp` is registered by the application. Signed-in users with the role committee_chair, admin, auditor,
appeal_reviewer or appeal_chair see the subtree of their home branch (auditors: the whole bank); anyone else gets 403.
The figures come from `services.metrics`; the charts are SVG written in the template (no script, no
external URL). The page extends the web UI's base.html; its texts are translated with Flask-Babel, the headline
figures' labels through SUMMARY_LABELS (the Chinese catalogue matches the labels of the XLSX download).
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlmodel import select

from ..db import read_session, unit_of_work
from ..domain import policy
from ..domain.errors import ValidationFailed
from ..domain.policy import has_role
from ..models import Branch, User
from ..services import consistency, deadlines, jobs, metrics
from .i18n import _l
from .messages import translate

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

DASHBOARD_ROLES = ("committee_chair", "admin", "auditor", "appeal_reviewer", "appeal_chair")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OUTCOME_COLOURS = {"exempt": "#2f7d32", "reduced": "#b7791f", "liable": "#c53030"}


def _engine():
    return current_app.extensions["mianze.engine"]


def _roles(user) -> frozenset[str]:
    roles = getattr(user, "role_set", None) or getattr(user, "roles", None) or ""
    return frozenset(roles.split()) if isinstance(roles, str) else frozenset(roles)


def can_view_dashboard(roles, home_path: str, branch_path: str) -> bool:
    """Whether someone with `roles` at the branch `home_path` may see the dashboard of `branch_path`."""
    if not has_role(roles, *DASHBOARD_ROLES):
        return False
    return has_role(roles, "auditor") or branch_path.startswith(home_path)


# The headline figures of `metrics.summary_rows`, keyed by their English label (also the page's data-figure).
SUMMARY_LABELS = {
    "Cases": _l("Cases"),
    "Respondents with an outcome": _l("Respondents with an outcome"),
    "Exempt": _l("Exempt respondents"),
    "Reduced liability": _l("Respondents with reduced liability"),
    "Liable": _l("Liable respondents"),
    "Exemption ratio": _l("Exemption ratio"),
    "Reduced-liability ratio": _l("Reduced-liability ratio"),
    "Cases determined": _l("Cases determined"),
    "Median days to determination": _l("Median days to determination"),
    "90th percentile days to determination": _l("90th percentile days to determination"),
    "Cases counted for the one-year limit": _l("Cases counted for the one-year limit"),
    "Final within one year": _l("Cases final within one year"),
    "Share final within one year": _l("Share final within one year"),
    "Appeals filed": _l("Appeals filed"),
    "Appeals decided": _l("Appeals decided"),
    "Appeals altered": _l("Appeals altered"),
    "Share of decided appeals altered": _l("Share of decided appeals altered"),
    "Committee deviations from the recommendation": _l("Committee deviations from the recommendation"),
    "Deviation share": _l("Deviation share"),
}


def summary_label(en: str) -> str:
    """A headline figure's label in the UI language."""
    label = SUMMARY_LABELS.get(en)
    return str(label) if label is not None else en


@bp.before_request
def _signed_in_with_a_dashboard_role():
    if not getattr(current_user, "is_authenticated", False):
        manager = getattr(current_app, "login_manager", None)
        if manager is not None:
            return manager.unauthorized()
        abort(401)
    if not has_role(_roles(current_user), *DASHBOARD_ROLES):
        abort(403)
    return None


def _date_arg(name: str, default: date) -> date:
    raw = (request.values.get(name) or "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(_("“%(value)s” is not a date (YYYY-MM-DD).", value=raw), field=name) from None


def _scope(session) -> tuple[Branch, Branch, date, date]:
    """(home branch, requested branch, start, end) from the query string; 404/403 as needed."""
    home = session.get(Branch, session.get(User, current_user.id).branch_id)
    raw = (request.values.get("branch") or "").strip()
    if raw and not raw.isdigit():
        abort(404)
    branch = session.get(Branch, int(raw)) if raw else home
    if branch is None:
        abort(404)
    if not can_view_dashboard(_roles(current_user), home.path, branch.path):
        abort(403)
    today = date.today()
    start, end = _date_arg("start", date(today.year, 1, 1)), _date_arg("end", today)
    if end < start:
        raise ValidationFailed(_("The period ends before it starts."), field="end")
    return home, branch, start, end


TOLERANCE_REASONS = {
    "no_loans": _l("No loans in the period: the test does not apply."),
    "no_sme_loans": _l("No inclusive SME loans: the test does not apply."),
    "only_sme_loans": _l("No loans other than inclusive SME loans: the gap test does not apply."),
    "gap": _l("Gap test: the SME NPL ratio against the all-loans NPL ratio and the margin."),
    "target": _l("Target test: the SME NPL ratio against the target of the rule set."),
}


def _tiles(figures: dict) -> list[dict]:
    """The key figures as tiles, each with its definition (the table under them lists every figure)."""
    o, d, y = figures["outcomes"], figures["determination_days"], figures["within_one_year"]
    a, v = figures["appeals"], figures["deviations"]
    return [
        {"key": "cases", "value": figures["cases"], "kind": "count", "label": _("Cases"), "detail": "",
         "definition": _("Cases opened in the period, in the branch and the branches below it.")},
        {"key": "exemption_ratio", "value": o["exemption_ratio"], "kind": "ratio", "label": _("Exemption ratio"),
         "detail": _("%(exempt)s exempt · %(reduced)s reduced · %(liable)s liable", exempt=o["exempt"],
                     reduced=o["reduced"], liable=o["liable"]),
         "definition": _("Exempt respondents over the respondents with an outcome (the final one, else the "
                         "committee’s).")},
        {"key": "median_days", "value": d["median"], "kind": "days", "label": _("Median days to determination"),
         "detail": _("90th percentile: %(days)s", days="—" if d["p90"] is None else d["p90"]),
         "definition": _("Calendar days from registration to the determination, over the cases determined so "
                         "far.")},
        {"key": "within_one_year", "value": y["share"], "kind": "ratio", "label": _("Share final within one year"),
         "detail": _("%(within)s of %(counted)s cases", within=y["within"], counted=y["counted"]),
         "definition": _("Of the cases that are final or whose one-year limit has passed, the share that became "
                         "final within the limit.")},
        {"key": "appeals_altered", "value": a["altered_share"], "kind": "ratio",
         "label": _("Share of decided appeals altered"),
         "detail": _("%(altered)s of %(decided)s decided, %(filed)s filed", altered=a["altered"],
                     decided=a["decided"], filed=a["filed"]),
         "definition": _("Appeals whose decision altered the outcome, over the appeals decided.")},
        {"key": "deviations", "value": v["share"], "kind": "ratio", "label": _("Deviation share"),
         "detail": _("%(n)s respondent(s)", n=v["deviated"]),
         "definition": _("Respondents whose committee outcome differs from the system’s recommendation.")},
    ]


def _charts(figures: dict) -> dict:
    """Plain numbers for the SVG charts (the template only places them)."""
    most = max(figures["by_state"].values(), default=0) or 1
    states = [{"code": code, "n": n, "share": n / most} for code, n in figures["by_state"].items()]
    o = figures["outcomes"]
    segments, x = [], 0.0
    for outcome in ("exempt", "reduced", "liable"):
        share = o[outcome] / o["respondents"] if o["respondents"] else 0.0
        segments.append({"outcome": outcome, "n": o[outcome], "x": x, "share": share,
                         "colour": OUTCOME_COLOURS[outcome]})
        x += share
    rows = [r for r in figures["tolerance"] if r["gap_pp"] is not None]
    margin_pp = float(figures["tolerance"][0]["margin"]) * 100 if figures["tolerance"] else 3.0
    scale = max([abs(float(r["gap_pp"])) for r in rows] + [margin_pp]) * 1.15
    gaps = [{"code": r["code"], "name": r["name"], "name_en": r["name_en"], "gap": float(r["gap_pp"]),
             "share": float(r["gap_pp"]) / scale, "within": r["within"]} for r in rows]
    return {"states": states, "outcomes": segments, "gaps": gaps, "margin_share": margin_pp / scale,
            "margin_pp": margin_pp}


@bp.get("/")
def index():
    """The dashboard of a branch subtree and period (query: branch, start, end)."""
    with read_session(_engine()) as s:
        home, branch, start, end = _scope(s)
        figures = metrics.dashboard_figures(s, branch.id, start, end)
        scope_path = "/" if has_role(_roles(current_user), "auditor") else home.path
        branches = [{"id": b.id, "code": b.code, "name": b.name, "name_en": b.name_en, "level": b.level}
                    for b in s.exec(select(Branch).where(Branch.path.startswith(scope_path)).order_by(Branch.path))]
        user = s.get(User, current_user.id)
        overdue = deadlines.overdue_for_supervisor(s, user)
        near_limit = [{"case_id": e["case"].id, "number": e["case"].number, "state": e["case"].state,
                       "branch_name": e["branch"].name, "branch_name_en": e["branch"].name_en or e["branch"].name,
                       "limit": e["limit"], "days_left": e["days_left"], "position": e["position"]}
                      for e in deadlines.near_limit_cases(s, date.today(), branch)]
        is_admin = has_role(_roles(current_user), "admin")
        warnings = deadlines.calendar_warnings(s) if is_admin else []
        timer = jobs.timer_status(s) if is_admin else None
    summary = [(en, summary_label(en), value, kind) for _zh, en, value, kind in metrics.summary_rows(figures)]
    return render_template("dashboard/index.html", figures=figures, charts=_charts(figures), summary=summary,
                           tiles=_tiles(figures), tolerance_reasons=TOLERANCE_REASONS,
                           branches=branches, start=start, end=end, overdue=overdue, near_limit=near_limit,
                           calendar_warnings=warnings, timer=timer,
                           case_link="cases.show" in current_app.view_functions)


@bp.route("/export.xlsx", methods=["GET", "POST"])
def export():
    """The same figures as an XLSX workbook, recorded in the access log with the stated reason (a POST; a GET
    only returns to the dashboard)."""
    back = {k: request.values.get(k) for k in ("branch", "start", "end") if request.values.get(k)}
    if request.method != "POST":
        with read_session(_engine()) as s:
            _scope(s)  # 403 outside the user's dashboards, as the POST would answer
        return redirect(url_for("dashboard.index", **back))
    try:
        with unit_of_work(_engine()) as s:
            _, branch, start, end = _scope(s)
            body = metrics.export_xlsx(s, s.get(User, current_user.id), branch.id, start, end,
                                       reason=request.form.get("reason"))
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("dashboard.index", **back))
    return _xlsx(body, f"mianze-dashboard-{branch.code}-{start.isoformat()}-{end.isoformat()}.xlsx")


def _xlsx(body: bytes, name: str) -> Response:
    response = Response(body, mimetype=XLSX)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _period() -> tuple[date, date]:
    today = date.today()
    start, end = _date_arg("start", date(today.year, 1, 1)), _date_arg("end", today)
    if end < start:
        raise ValidationFailed(_("The period ends before it starts."), field="end")
    return start, end


def _consistency(s) -> tuple[dict, list | None]:
    """The branches' figures the user may compare (all when they see the whole bank, else their own tier-1
    branch) beside the bank's, and the like cases decided differently when the policy lets them see those."""
    start, end = _period()
    actor = current_user.actor
    home = s.get(Branch, s.get(User, current_user.id).branch_id)
    report = consistency.branch_figures(s, start, end)
    if not policy.sees_everything(actor):
        report["branches"] = [r for r in report["branches"]
                              if home.path.startswith(r["branch"].path) or r["branch"].path.startswith(home.path)]
    like = consistency.like_cases_decided_differently(s, start, end) if policy.sees_like_cases(actor) else None
    return report, like


@bp.get("/consistency")
def consistency_page():
    """Consistency across branches (query: start, end): figures per tier-1 branch beside the bank's, their
    dispersion, and (auditors and head office) the like cases decided differently."""
    with read_session(_engine()) as s:  # rendered inside: the page reads the branches' rows
        report, like = _consistency(s)
        return render_template("dashboard/consistency.html", report=report, like=like,
                               figures=consistency.FIGURES, start=report["start"], end=report["end"],
                               case_link="cases.show" in current_app.view_functions)


@bp.route("/consistency.xlsx", methods=["GET", "POST"])
def consistency_export():
    """The consistency report as an XLSX workbook in Chinese, recorded in the access log with the stated reason
    (a POST; a GET only returns to the report)."""
    back = {k: request.values.get(k) for k in ("start", "end") if request.values.get(k)}
    if request.method != "POST":
        with read_session(_engine()) as s:
            _consistency(s)  # 403 for those without a dashboard, as the POST would answer
        return redirect(url_for("dashboard.consistency_page", **back))
    try:
        with unit_of_work(_engine()) as s:
            report, like = _consistency(s)
            body = consistency.export_xlsx(s, s.get(User, current_user.id), report, like,
                                           reason=request.form.get("reason"))
    except ValidationFailed as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("dashboard.consistency_page", **back))
    return _xlsx(body, f"mianze-consistency-{report['start'].isoformat()}-{report['end'].isoformat()}.xlsx")
