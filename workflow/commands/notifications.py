"""The `flask --app wsgi notifications …` commands: the outbox's delivery worker."""

from __future__ import annotations

import json
import signal
import time

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    """Attach the `notifications` command group to the app."""

    @app.cli.group("notifications")
    def notifications_group():
        """Notifications: delivering them by mail and to the branches' 企业微信 robots."""

    @notifications_group.command("deliver")
    @click.option("--loop", is_flag=True, help="keep delivering (a worker process) until stopped")
    @click.option("--interval", type=float, default=5.0, show_default=True,
                  help="with --loop: seconds between runs when nothing was due")
    @click.option("--limit", type=int, default=200, show_default=True, help="deliveries per run at most")
    def deliver(loop, interval, limit):
        """Deliver the due notification mail and 企业微信 posts once (or, with --loop, until SIGTERM/SIGINT),
        printing each run's summary as JSON when it did something."""
        from ..services import outbox

        engine = current_app.extensions["mianze.engine"]
        settings = outbox.OutboxSettings.from_config(current_app.config)
        stopping = []
        if loop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stopping.append(True))
        while True:
            run = outbox.deliver(engine, settings, limit=limit)
            summary = run.to_dict()
            busy = any(summary["sent"].values()) or any(v for k, v in summary.items() if k != "sent")
            if busy or not loop:
                click.echo(json.dumps(summary, ensure_ascii=False))
            if not loop or stopping:
                return
            if not busy:  # nothing was due: wait (a signal ends the wait at the next second)
                for _ in range(max(1, int(interval * 10))):
                    if stopping:
                        return
                    time.sleep(0.1)
