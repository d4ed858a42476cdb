"""Configuration: defaults, overridden by the environment, overridden by create_app(config=...)."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def from_environment() -> dict:
    """The configuration read from the process environment, with sensible defaults."""
    INSTANCE.mkdir(exist_ok=True)
    secret = os.environ.get("SECRET_KEY")
    if not secret:
        key_file = INSTANCE / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
        secret = key_file.read_text().strip()
    return {
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE / 'mianze.sqlite3'}"),
        "SECRET_KEY": secret,
        "BANK_NAME": os.environ.get("MIANZE_BANK_NAME", "示范商业银行"),
        "BANK_NAME_EN": os.environ.get("MIANZE_BANK_NAME_EN", "Demonstration Commercial Bank"),
        "EVIDENCE_DIR": os.environ.get("MIANZE_EVIDENCE_DIR", str(INSTANCE / "evidence")),
        "MAX_CONTENT_LENGTH": int(os.environ.get("MIANZE_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        "SMTP_HOST": os.environ.get("MIANZE_SMTP_HOST"),
        "SMTP_PORT": os.environ.get("MIANZE_SMTP_PORT", "25"),
        "SMTP_FROM": os.environ.get("MIANZE_SMTP_FROM"),
        "SMTP_MAIL_DOMAIN": os.environ.get("MIANZE_SMTP_MAIL_DOMAIN"),
        "SMTP_USER": os.environ.get("MIANZE_SMTP_USER"),
        "SMTP_PASSWORD": os.environ.get("MIANZE_SMTP_PASSWORD"),
        "SMTP_STARTTLS": os.environ.get("MIANZE_SMTP_STARTTLS", "0"),
        "REDIS_URL": os.environ.get("REDIS_URL"),
        # A session ends 8 hours after its last request. Its cookie is renewed (re-signed with a new
        # expiry) once it is SESSION_RENEW_SECONDS old, not with every response: signing and sending it
        # each time cost about 4 % of a worker's time. Set here, not with setdefault in the web package:
        # Flask's own defaults (31 days, refreshed on every request, cookie "session") would win.
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
        "SESSION_REFRESH_EACH_REQUEST": False,
        "SESSION_RENEW_SECONDS": 300,
        "SESSION_COOKIE_NAME": "mianze_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("MIANZE_SECURE_COOKIES", "0") == "1",
    }
