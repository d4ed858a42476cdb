"""WSGI entry point: `flask --app wsgi …` and production servers import `app` from here."""

import sys

from workflow import create_app, ready_to_serve
from workflow.config import ConfigurationError

try:
    app = ready_to_serve(create_app())
except ConfigurationError as exc:
    # One line saying what to set, not a traceback. Exit status 4 is gunicorn's "App failed to load":
    # its master stops instead of starting the worker again and again.
    print(f"mianze: {exc}", file=sys.stderr)
    sys.exit(4)
