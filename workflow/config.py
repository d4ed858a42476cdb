"""Configuration: defaults, overridden by the environment, overridden by create_app(config=...).

`MIANZE_ENV=production` is the one switch of a production deployment: the app then refuses to start
without `SECRET_KEY` (`check`). Anywhere else a missing key is generated once into `instance/secret_key`,
readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


class ConfigurationError(RuntimeError):
    """The configuration cannot serve: the message says what to set."""


def write_private_once(path: Path, data: bytes) -> bool:
    """Create `path` with `data`, readable by its owner only, unless it exists; whether this call created it.

    Written under a name of its own and linked into place, so that processes starting together agree on one
    file and none reads a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink()
    return True


def generated_secret(key_file: Path) -> str:
    """The development session key kept in `key_file`, made on first use; the file is mode 0600 (a looser
    file from an older version is tightened), since whoever reads it can forge any user's session."""
    if not key_file.exists():
        write_private_once(key_file, secrets.token_hex(32).encode())
    if key_file.stat().st_mode & 0o077:
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def check(config) -> None:
    """Raise ConfigurationError when the configuration must not serve (production without SECRET_KEY or
    without the bank's letter signing certificate)."""
    if config.get("MIANZE_ENV") == "production" and not config.get("SECRET_KEY"):
        raise ConfigurationError("SECRET_KEY is not set: in production (MIANZE_ENV=production) set it in the "
                                 "environment to a long random value shared by every worker, e.g. the output of "
                                 "`python3 -c 'import secrets; print(secrets.token_hex(32))'`")
    if config.get("MIANZE_ENV") == "production" and not config.get("LETTER_SIGNING_P12"):
        raise ConfigurationError("LETTER_SIGNING_P12 is not set: in production (MIANZE_ENV=production) letters "
                                 "are signed with the bank's certificate; set MIANZE_LETTER_SIGNING_P12 to its "
                                 "PKCS#12 file (and MIANZE_LETTER_SIGNING_PASSWORD to its passphrase), "
                                 "docs/deployment.md")


def letter_signing(env=None) -> tuple[str | None, str | None]:
    """The letter signing certificate the environment names: (PKCS#12 file, passphrase). Outside production
    the demonstration certificate in instance/ (made by scripts/setup or on first use) when none is named."""
    env = os.environ if env is None else env
    production = env.get("MIANZE_ENV", "development") == "production"
    p12 = env.get("MIANZE_LETTER_SIGNING_P12") or (None if production else str(INSTANCE / DEMO_LETTER_P12))
    return p12, env.get("MIANZE_LETTER_SIGNING_PASSWORD") or None


DEMO_LETTER_P12 = "demo_letter_signing.p12"  # the demonstration certificate's file name in instance/


def from_environment() -> dict:
    """The configuration read from the process environment, with sensible defaults."""
    INSTANCE.mkdir(exist_ok=True)
    env = os.environ.get("MIANZE_ENV", "development")
    secret = os.environ.get("SECRET_KEY")
    if not secret and env != "production":
        secret = generated_secret(INSTANCE / "secret_key")
    return {
        "MIANZE_ENV": env,
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE / 'mianze.sqlite3'}"),
        "SECRET_KEY": secret,
        "BANK_NAME": os.environ.get("MIANZE_BANK_NAME", "示范商业银行"),
        "BANK_NAME_EN": os.environ.get("MIANZE_BANK_NAME_EN", "Demonstration Commercial Bank"),
        "EVIDENCE_DIR": os.environ.get("MIANZE_EVIDENCE_DIR", str(INSTANCE / "evidence")),
        "MAX_CONTENT_LENGTH": int(os.environ.get("MIANZE_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        # One import file (loans, HR staff; services/tabular.py): at most this many data rows and bytes (an
        # upload is also capped by MAX_CONTENT_LENGTH), at most this many row errors reported (with a count
        # per kind), and an XLSX's shared strings (held in memory while reading) at most this many bytes.
        "IMPORT_MAX_ROWS": int(os.environ.get("MIANZE_IMPORT_MAX_ROWS") or 10_000_000),
        "IMPORT_MAX_BYTES": int(os.environ.get("MIANZE_IMPORT_MAX_BYTES") or 4 << 30),
        "IMPORT_MAX_ERRORS": int(os.environ.get("MIANZE_IMPORT_MAX_ERRORS") or 100),
        "IMPORT_MAX_XLSX_STRINGS_BYTES": int(os.environ.get("MIANZE_IMPORT_MAX_XLSX_STRINGS_BYTES") or 64 << 20),
        "SMTP_HOST": os.environ.get("MIANZE_SMTP_HOST"),
        "SMTP_PORT": os.environ.get("MIANZE_SMTP_PORT", "25"),
        "SMTP_FROM": os.environ.get("MIANZE_SMTP_FROM"),
        "SMTP_MAIL_DOMAIN": os.environ.get("MIANZE_SMTP_MAIL_DOMAIN"),
        "SMTP_USER": os.environ.get("MIANZE_SMTP_USER"),
        "SMTP_PASSWORD": os.environ.get("MIANZE_SMTP_PASSWORD"),
        "SMTP_STARTTLS": os.environ.get("MIANZE_SMTP_STARTTLS", "0"),
        # Links in mail and 企业微信 posts point here (the address users reach the app at).
        "BASE_URL": os.environ.get("MIANZE_BASE_URL", "http://127.0.0.1:5000"),
        # First passwords: an invitation link works once, for this many hours; administrators may type a
        # password for someone only where the bank's policy allows it (1), never by default.
        "INVITATION_HOURS": float(os.environ.get("MIANZE_INVITATION_HOURS") or 72),
        "ALLOW_TYPED_PASSWORDS": os.environ.get("MIANZE_ALLOW_TYPED_PASSWORDS", "0") == "1",
        # Seconds between runs of the notification delivery worker inside the serving process (0: off;
        # production runs `flask notifications deliver --loop`). scripts/run, the embedded default, sets it.
        "OUTBOX_INTERVAL": float(os.environ.get("MIANZE_OUTBOX_INTERVAL") or 0),
        # Delivery: attempts before giving up, seconds before the second attempt (doubled for each later
        # one), seconds after which a delivery still being sent belongs to a worker that died, and the
        # time-out of each SMTP operation and webhook POST.
        "OUTBOX_MAX_ATTEMPTS": int(os.environ.get("MIANZE_OUTBOX_MAX_ATTEMPTS") or 6),
        "OUTBOX_BACKOFF": float(os.environ.get("MIANZE_OUTBOX_BACKOFF") or 60),
        "OUTBOX_LEASE": float(os.environ.get("MIANZE_OUTBOX_LEASE") or 600),
        "OUTBOX_TIMEOUT": float(os.environ.get("MIANZE_OUTBOX_TIMEOUT") or 30),
        "REDIS_URL": os.environ.get("REDIS_URL"),
        # Background jobs go to this RQ queue when REDIS_URL is set (`flask jobs worker` takes them); without
        # Redis they run in a worker thread of the app process.
        "JOBS_QUEUE": os.environ.get("MIANZE_JOBS_QUEUE", "mianze"),
        # Where export and bundle jobs write their files (shared by the web and worker machines, like the
        # evidence directory); the job's page serves them to whoever started it.
        "JOBS_DIR": os.environ.get("MIANZE_JOBS_DIR", str(INSTANCE / "jobs")),
        # Seconds between runs of the deadline timer inside the serving process (0: off; production runs
        # `flask deadlines tick` from cron). scripts/run, the embedded default, sets it.
        "TIMER_INTERVAL": float(os.environ.get("MIANZE_TIMER_INTERVAL") or 0),
        # The audit chain's checkpoints: signed with this Ed25519 key (PEM; never in the database) and
        # appended to files in this directory (outside the database). Outside production a demonstration key
        # is made in instance/ on first use (its name says "demo", and so does every checkpoint it signs).
        "AUDIT_SIGNING_KEY": os.environ.get("MIANZE_AUDIT_SIGNING_KEY")
        or (None if env == "production" else str(INSTANCE / "demo_audit_signing_key.pem")),
        "AUDIT_CHECKPOINT_DIR": os.environ.get("MIANZE_AUDIT_CHECKPOINT_DIR", str(INSTANCE / "audit_checkpoints")),
        # Letters are signed (PAdES) with the certificate and private key in this PKCS#12 file, opened with
        # this passphrase. Outside production a DEMONSTRATION CA and certificate are made in instance/.
        "LETTER_SIGNING_P12": letter_signing()[0],
        "LETTER_SIGNING_PASSWORD": letter_signing()[1],
        # How many proxies in front of the app append to X-Forwarded-For (0: none; the header is ignored):
        # the client address, which sign-in throttling counts by, is taken from that many hops back.
        "PROXY_FIX_X_FOR": int(os.environ.get("MIANZE_PROXY_FIX_X_FOR") or 0),
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
