"""The gunicorn worker that serves Mianze: gunicorn's threaded worker, sharing the load between processes.

The pages are CPU-bound Python, so a server runs one worker process per CPU with a few threads each
(docs/deployment.md). gunicorn's workers share the listening socket and accept greedily: whichever process
wakes first takes the connection, and a kept-alive connection stays with the process that accepted it.
Clients that connect at about the same moment can so end up 7 + 1 on two processes: one serves nearly all
the requests on one CPU, with requests queueing for its threads, while the other CPU idles (the page
benchmark measured p95 half as high again, and the case page at 155-168 instead of ~400 requests a second).

`BalancedThreadWorker` keeps gunicorn's threaded worker and adds two rules, both about requests in flight
(accepted or read from a kept-alive connection, and not yet answered):
- a process accepts a new connection only while one of its threads is free, so a busy process leaves it
  to a process with a free thread (or to the first one that frees a thread, when all are busy);
- a process with more requests in flight than threads answers with `Connection: close`, so the client's
  next request opens a new connection, which a less busy process accepts.
With one worker process there is nothing to share, and the worker behaves exactly as gunicorn's.

Serve with `gunicorn --worker-class workflow.server.BalancedThreadWorker --threads 4 ...`. The counting
hooks into gunicorn's `ThreadWorker` (`enqueue_req`, `finish_request`, `set_accept_enabled`,
`handle_request`), which is why pyproject.toml allows only gunicorn 27.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker that accepts only with a free thread and hands back connections when
    requests queue for its threads (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Changed on the worker's main thread only (where gunicorn submits requests and collects their
        # results); read by the request threads.
        self.in_flight = 0
        self.sharing = self.cfg.workers > 1

    def enqueue_req(self, conn):
        self.in_flight += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self.in_flight -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled):
        # gunicorn's loop asks for accepting on every turn while it holds fewer connections than
        # --worker-connections; this narrows that to "while a thread is free".
        super().set_accept_enabled(enabled and (not self.sharing or self.in_flight < self.cfg.threads))

    def handle_request(self, req, conn):
        if self.sharing and self.in_flight > self.cfg.threads:  # requests are waiting for this process's threads
            req.must_close = True  # "Connection: close": the client's next request goes to whoever is free
        return super().handle_request(req, conn)
