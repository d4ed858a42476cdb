"""Real servers on loopback for the notification tests: an SMTP server (aiosmtpd) and an HTTP receiver standing
in for 企业微信's group robot (http.server), each in a thread of the test process."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailInbox:
    """aiosmtpd's handler: keeps every message accepted (recipients, parsed message). `refuse`: addresses
    answered 550 at RCPT; `slow`: an address whose message is recorded, then answered only once `release` is
    set (as a server that queued the mail while its answer was lost); `entered` is set when it arrives."""

    def __init__(self):
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: set[str] = set()
        self.slow: str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), message))
        if self.slow and self.slow in envelope.rcpt_tos:
            self.entered.set()
            deadline = time.monotonic() + 60
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        return "250 OK: queued"

    def mails(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every message received, in order. Flask-Mailman folds a long encoded subject
        onto the line after "Subject:", which Python's parser unfolds into one leading space (mail clients drop
        it): stripped here."""
        with self.lock:
            return [(to, str(m["Subject"]).strip()) for tos, m in self.received for to in tos]


class SMTPServer:
    """A real SMTP server on 127.0.0.1 at a free port."""

    def __init__(self):
        self.inbox = MailInbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.inbox.release.set()
        self.controller.stop()


class RobotReceiver:
    """A real HTTP server on 127.0.0.1 answering as 企业微信's group robot does ({"errcode": 0}), or with
    `status` (e.g. 500) while it is set; keeps every POST (path, JSON body)."""

    def __init__(self):
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((self.path, json.loads(body)))
                answer = json.dumps({"errcode": 0, "errmsg": "ok"} if receiver.status == 200 else
                                    {"errcode": -1, "errmsg": "system busy"}).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
