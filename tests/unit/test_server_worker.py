"""The production gunicorn worker (`workflow.server.BalancedThreadWorker`), run by real gunicorn processes.

A tiny WSGI app answers with the id of the worker process that served it, after 40 ms of waiting (as a
page's work would take): which process serves which client, and whether connections stay open, are then
visible from outside, as a browser or the page benchmark sees them.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os, time

def app(environ, start_response):
    time.sleep(0.04)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(workers: int, threads: int, worker_class: str = "workflow.server.BalancedThreadWorker",
              *options: str) -> int:
        (tmp_path / "tiny.py").write_text(APP)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", worker_class,
             "--threads", str(threads), "--keep-alive", "5", "--bind", f"127.0.0.1:{port}",
             "--chdir", str(tmp_path), "--log-level", "warning", *options, "tiny:app"],
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:  # until every worker answers (each process has booted)
            try:
                pids = {_get(port)[0] for _ in range(4 * workers)}
                if len(pids) == workers or time.monotonic() > deadline:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return port

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=30)


def _get(port: int, conn: http.client.HTTPConnection | None = None) -> tuple[str, str]:
    """(serving process id, the Connection header) of one request, on `conn` if given (kept alive)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.read().decode(), (response.getheader("Connection") or "").lower()
    finally:
        if own:
            conn.close()


def _clients(port: int, clients: int, requests: int) -> list[tuple[str, str]]:
    """`clients` threads, each with one kept-alive connection (reopened when the server closes it),
    started together; every answer, in order of arrival."""
    answers, start = [], threading.Barrier(clients)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # http.client reconnects by itself
        start.wait()
        for _ in range(requests):
            answers.append(_get(port, conn))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_clients_that_connect_together_are_shared_between_the_worker_processes(serve):
    """Four clients connect at once to two processes of two threads: whatever each accepts first, the
    busier process hands connections back to the other, and each process serves about half."""
    port = serve(workers=2, threads=2)
    answers = _clients(port, clients=4, requests=25)
    served = Counter(pid for pid, _ in answers)
    assert len(served) == 2 and min(served.values()) >= 0.3 * len(answers), served
    # connections are handed back while the split is uneven, not on every request
    assert sum(header == "close" for _, header in answers) < 0.25 * len(answers)


def test_two_clients_on_two_processes_are_served_one_by_each_and_then_kept_alive(serve):
    """Whether both connect to one process or not, each process ends up serving one client, and once
    they are split, their connections stay open."""
    port = serve(workers=2, threads=4)
    answers = _clients(port, clients=2, requests=20)
    served = Counter(pid for pid, _ in answers)
    assert len(served) == 2 and min(served.values()) >= 0.3 * len(answers), served
    assert sum(header == "close" for _, header in answers) <= 3
    assert all(header == "keep-alive" for _, header in answers[-20:])


def test_one_worker_process_keeps_connections_open_however_busy(serve):
    """With one process there is no other to hand a connection to: requests queue as in gunicorn's own
    worker, and no connection is closed."""
    port = serve(workers=1, threads=1)
    answers = _clients(port, clients=3, requests=6)
    assert len({pid for pid, _ in answers}) == 1
    assert all(header == "keep-alive" for _, header in answers)


def test_with_reuse_port_each_process_accepts_what_the_kernel_hands_it(serve):
    """Each process then has a listening socket of its own: leaving a connection to another would leave it
    unanswered until this process was less busy. The worker does not share, and keeps connections open."""
    port = serve(2, 1, "workflow.server.BalancedThreadWorker", "--reuse-port")
    answers = _clients(port, clients=4, requests=5)
    assert len(answers) == 20 and all(header == "keep-alive" for _, header in answers)


def test_a_worker_killed_in_its_tracks_is_replaced_and_the_replacement_shares_the_load(serve):
    """A worker killed without stopping (as gunicorn's timeout does) leaves its slot on the board; its
    replacement takes the slot over, and the two processes share the clients again."""
    import signal

    port = serve(workers=2, threads=2)
    victim = int(_get(port)[0])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # until the replacement answers
        try:
            pids = {_get(port)[0] for _ in range(8)}
        except OSError:  # a connection the killed worker had accepted
            pids = set()
        if len(pids) == 2 and str(victim) not in pids:
            break
        assert time.monotonic() < deadline, pids
        time.sleep(0.2)
    answers = _clients(port, clients=4, requests=20)
    served = Counter(pid for pid, _ in answers)
    assert len(served) == 2 and min(served.values()) >= 0.3 * len(answers), served


def test_the_load_board_frees_slots_and_reclaims_those_of_dead_processes():
    from workflow import server

    server.BalancedThreadWorker.setup()
    board = server._board
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me, parent = os.getpid(), os.getppid()
    mine = board.claim(me)
    assert board.least_other(mine) is None  # alone on the board
    stale = board.claim(dead.pid)  # a process that died without freeing its slot
    board.loads[stale] = 7
    assert stale != mine and board.least_other(mine) == 7  # still counted, until
    theirs = board.claim(parent)  # the next process takes its slot over, with a load of 0
    assert theirs == stale and board.least_other(mine) == 0
    board.loads[theirs] = 3
    assert board.least_other(mine) == 3 and board.least_other(theirs) == 0
    board.free(theirs, parent)
    board.free(mine, me)
    assert board.least_other(mine) is None and board.pids[:].count(0) == server.SLOTS
