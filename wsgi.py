"""WSGI entry point: `flask --app wsgi …` and production servers import `app` from here."""

from workflow import create_app, ready_to_serve

app = ready_to_serve(create_app())
