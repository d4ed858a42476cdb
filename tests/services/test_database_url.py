"""A wrong DATABASE_URL ends `flask --app wsgi db upgrade` with one line naming the problem, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).parent / "flask")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = {
    "unparseable": ("not a url at all", "is not a database URL"),
    "unknown kind of database": ("mysqlx://mianze:secret@127.0.0.1/mianze", "unknown kind of database 'mysqlx'"),
    "driver not installed": ("postgresql+pg8000://mianze:secret@127.0.0.1/mianze", "Python package 'pg8000'"),
    "server not listening": (f"postgresql+psycopg://mianze:secret@127.0.0.1:{_closed_port()}/mianze",
                             "Connection refused"),
    "sqlite file not openable": ("sqlite:////nonexistent/directory/mianze.sqlite3", "unable to open database file"),
}


@pytest.mark.parametrize("problem", CASES)
def test_a_wrong_database_url_gives_one_line_naming_the_problem(problem, tmp_path):
    url, named = CASES[problem]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIANZE_", "FLASK_"))}
    env.update(DATABASE_URL=url, SECRET_KEY="test-secret", MIANZE_EVIDENCE_DIR=str(tmp_path))
    done = subprocess.run([FLASK, "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert "DATABASE_URL" in lines[0] and named in lines[0], lines[0]
    assert "secret" not in done.stderr, "the password is masked"
    assert "Traceback" not in done.stderr + done.stdout
