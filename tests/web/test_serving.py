"""A served process keeps what it loaded at start out of the garbage collector's full collections."""

from __future__ import annotations

import gc

from tests.web.support import login, set_passwords
from workflow import ready_to_serve


def test_a_served_app_freezes_what_it_loaded_and_still_serves_pages(bank, app_for):
    set_passwords(bank.engine)
    before = gc.get_freeze_count()
    try:
        app = ready_to_serve(app_for(bank.engine))
        frozen = gc.get_freeze_count()
        assert frozen > before and frozen > 50_000  # modules, mappers, catalogues: no longer walked
        client = app.test_client()
        login(client, "auditor")
        assert client.get("/inbox?tab=all").status_code == 200
        gc.collect()  # a full collection afterwards leaves the frozen objects where they are
        assert gc.get_freeze_count() > 0.9 * frozen  # (a few were freed by their last reference going)
    finally:
        gc.unfreeze()


def test_navigation_links_follow_the_application_root(bank, app_for):
    """The links every page repeats are built once per application root: an app mounted under a prefix
    (SCRIPT_NAME, set by the proxy) links under it, and the same process serving at / links at /."""
    from tests.web.support import login, set_passwords

    set_passwords(bank.engine)
    client = app_for(bank.engine).test_client()
    login(client, "chair")
    for _ in range(2):
        mounted = client.get("/inbox", base_url="http://localhost/mianze").get_data(as_text=True)
        plain = client.get("/inbox").get_data(as_text=True)
        assert 'href="/mianze/inbox?tab=all"' in mounted and 'action="/mianze/logout"' in mounted
        assert 'href="/inbox?tab=all"' in plain and 'action="/logout"' in plain and "/mianze/" not in plain
