"""The gunicorn worker that serves Mianze: gunicorn's threaded worker, sharing the load between processes.

The pages are CPU-bound Python, so a server runs one worker process per CPU with a few threads each
(docs/deployment.md); within a process, only one thread runs Python at a time. gunicorn's workers share
the listening socket and accept greedily: whichever process wakes first takes the connection, and a
kept-alive connection stays with the process that accepted it. Clients that connect at about the same
moment can so end up 7 + 1, or 2 + 0, on two processes: one serves nearly all the requests on one CPU
while the other idles (the page benchmark measured p95 half as high again at 8 clients, and half the
throughput at 2).

`BalancedThreadWorker` keeps gunicorn's threaded worker and adds two rules about requests in flight
(accepted or read from a kept-alive connection, and not yet answered):
- each process publishes its number of requests in flight in memory shared by the worker processes, and
  accepts a new connection only while one of its threads is free and no other process has fewer in
  flight: a new connection goes to the least busy process (or, when all threads are busy, to the first
  process that frees one);
- a process with at least two more requests in flight than the least busy other one answers with
  `Connection: close`, so the client's next request opens a new connection, which the other accepts.
  A balanced split closes nothing.
With one worker process there is nothing to share, and the worker behaves exactly as gunicorn's; so it
does with `--reuse-port`, where each process has a listening socket of its own that no other can accept
from.

Serve with `gunicorn --worker-class workflow.server.BalancedThreadWorker --threads 4 ...`. The counting
hooks into gunicorn's `ThreadWorker` (`enqueue_req`, `finish_request`, `set_accept_enabled`,
`handle_request`), which is why pyproject.toml allows only gunicorn 27.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from dataclasses import dataclass

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 128  # worker processes that can publish their load (more than any server here runs)


@dataclass
class _Board:
    """The load board, in memory shared by the master and the worker processes it forks: per slot, the
    process that holds it (0: free) and its requests in flight."""

    lock: object
    pids: ctypes.Array
    loads: ctypes.Array

    def claim(self, pid: int) -> int | None:
        """A free slot for `pid` (or one left by a process that died without freeing it)."""
        with self.lock:
            for slot in range(SLOTS):
                holder = self.pids[slot]
                if holder == 0 or holder == pid or not _alive(holder):
                    self.pids[slot], self.loads[slot] = pid, 0
                    return slot
        return None

    def free(self, slot: int, pid: int) -> None:
        with self.lock:
            if self.pids[slot] == pid:
                self.pids[slot], self.loads[slot] = 0, 0

    def least_other(self, slot: int) -> int | None:
        """The fewest requests in flight in another worker process (None if there is none)."""
        pids, loads = self.pids[:], self.loads[:]  # two copies (one C call each), not 2 x 128 item reads
        others = [load for i, (pid, load) in enumerate(zip(pids, loads, strict=True)) if pid and i != slot]
        return min(others) if others else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_board: _Board | None = None


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker that accepts while it is the least busy process with a free thread and
    hands connections back while it has two more requests in flight than another (see the module's
    docstring)."""

    @classmethod
    def setup(cls):
        """Called by gunicorn in the master when it loads the worker class, before any worker is forked."""
        global _board
        if _board is None:
            ctx = multiprocessing.get_context("fork")
            _board = _Board(ctx.Lock(), ctx.RawArray(ctypes.c_int, SLOTS), ctx.RawArray(ctypes.c_int, SLOTS))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Changed on the worker's main thread only (where gunicorn submits requests and collects their
        # results) and published on the board; read by the request threads.
        self.in_flight = 0
        self.slot: int | None = None

    def init_process(self):
        # With --reuse-port each process listens on a socket of its own, which the kernel hands connections
        # to, so only that process can accept them: it must not leave them to another.
        if _board is not None and self.cfg.workers > 1 and not self.cfg.reuse_port:
            self.slot = _board.claim(os.getpid())
        try:
            super().init_process()  # runs the worker until it stops
        finally:
            if self.slot is not None:
                _board.free(self.slot, os.getpid())

    def _count(self, change: int) -> None:
        self.in_flight += change
        if self.slot is not None:
            _board.loads[self.slot] = self.in_flight

    def enqueue_req(self, conn):
        self._count(+1)
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self._count(-1)
        super().finish_request(conn, fs)

    def _may_accept(self) -> bool:
        """While a thread is free and no other process has fewer requests in flight."""
        least = _board.least_other(self.slot)
        return self.in_flight < self.cfg.threads and (least is None or self.in_flight <= least)

    def set_accept_enabled(self, enabled):
        # gunicorn's loop asks for accepting on every turn (after each event, or a second without one)
        # while it holds fewer connections than --worker-connections; this narrows that down. A process
        # left out has requests in flight, so it turns again when one ends; the least busy process is
        # left out only when its threads are full.
        super().set_accept_enabled(enabled and (self.slot is None or self._may_accept()))

    def accept(self, listener):
        # Checked again when a connection arrives: loads change between turns, and a client whose
        # connection this process just closed reconnects at once, before this process has counted the
        # end of that request (its listener still polled), so it would take the client straight back.
        if self.slot is not None and not self._may_accept():
            self.set_accept_enabled(False)  # the connection waits for another process, or the next turn
            return
        super().accept(listener)

    def handle_request(self, req, conn):
        if self.slot is not None:
            least = _board.least_other(self.slot)
            if least is not None and self.in_flight >= least + 2:  # another process is less busy
                req.must_close = True  # "Connection: close": the client's next request goes to whoever is free
        return super().handle_request(req, conn)
