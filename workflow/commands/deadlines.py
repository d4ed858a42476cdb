"""The `flask --app wsgi deadlines …` commands (the cron-friendly timer)."""

from __future__ import annotations

import json
import sys
from datetime import date

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    """Attach the `deadlines` command group to the app."""

    @app.cli.group("deadlines")
    def deadlines_group():
        """Working-day deadlines and the timer."""

    @deadlines_group.command("tick")
    @click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="run as if today were this date (YYYY-MM-DD); default: today")
    def deadlines_tick(today):
        """Move cases whose publicity or appeal window ended, mark overdue steps and the one-year limit, notify
        (the notifications' mail and 企业微信 posts are delivered by `flask notifications deliver`).

        Prints the summary as JSON; exits 1 only when something unexpected failed.
        """
        from ..services import jobs

        day: date | None = today.date() if today else None
        summary = jobs.tick(current_app.extensions["mianze.engine"], today=day)
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=1))
        if summary.errors:
            sys.exit(1)
