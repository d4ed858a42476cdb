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
