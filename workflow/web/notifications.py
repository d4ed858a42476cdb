"""The user's in-app notifications (overdue work and other reminders from the deadline timer)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..services import notifications
from .common import reading, work

bp = Blueprint("notifications", __name__)
PAGE = 50


def unread(user_id: int) -> int:
    """The unread count for the navigation (once per request)."""
    if "mianze_unread" not in g:
        with reading() as s:
            g.mianze_unread = notifications.unread_count(s, user_id)
    return g.mianze_unread


@bp.get("/notifications")
@login_required
def index():
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() else 1
    with reading() as s:
        rows = notifications.for_user(s, current_user.id, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template("notifications/index.html", rows=rows[:PAGE], page=page, more=len(rows) > PAGE)


@bp.post("/notifications/read")
@login_required
def mark_read():
    with work() as s:
        n = notifications.mark_all_read(s, current_user.id)
    flash(_("%(n)d notifications marked as read.", n=n), "success")
    return redirect(url_for("notifications.index"))
