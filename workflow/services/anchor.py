"""Checkpoints of the audit chain's head: signed with the bank's key and written outside the database.

Whoever can write the database can recompute the whole hash chain and move its head; they cannot sign a
checkpoint without the bank's signing key (an Ed25519 private key in a file named by the configuration,
never in the database), nor remove a checkpoint from the append-only files it is written to (a directory
of the configuration, outside the database; mount it append-only or ship it to a WORM store). `audit
verify` checks the chain against every checkpoint: a rewritten chain, a moved head or a truncated tail
no longer matches the last one.

A checkpoint is one JSON line: {"seq", "hash", "at", "key_id", "demo", "signature"}; the signature (Ed25519,
base64) is over the canonical JSON of every other field. Files are named checkpoints-YYYY-MM.jsonl and only
ever appended to (O_APPEND, fsync).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import event
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..chain import GENESIS, canonical
from ..config import write_private_once
from ..models import AuditHead

DEMO_MARK = "demo"  # a key file whose name contains this is the demonstration key: its checkpoints say so
_PATTERN = "checkpoints-*.jsonl"
log = logging.getLogger(__name__)


class AnchorError(Exception):
    """The signing key cannot be read or the checkpoint directory cannot be written."""


def _load_private(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise AnchorError(f"cannot read the audit signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"the audit signing key {path} is not an Ed25519 private key")
    return key


def create_demo_key(path: Path) -> bool:
    """Write a new Ed25519 key to `path` (mode 0600) unless it exists; True when one was made.

    For development and the demo bank only: a real bank keeps its key in its own key store."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    if path.exists():
        return False
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return write_private_once(path, pem)


def public_raw(key) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def signed_part(checkpoint: dict) -> bytes:
    """The bytes a checkpoint's signature covers: every field but the signature, canonical JSON."""
    return canonical({k: v for k, v in checkpoint.items() if k != "signature"})


@dataclass
class Anchor:
    """Where checkpoints go and the key that signs them."""

    key_file: Path
    directory: Path
    _key: object = field(default=None, repr=False)
    _latest: tuple | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, config) -> Anchor | None:
        key, directory = config.get("AUDIT_SIGNING_KEY"), config.get("AUDIT_CHECKPOINT_DIR")
        if not key or not directory:
            return None
        return cls(Path(key), Path(directory))

    @property
    def demo(self) -> bool:
        return DEMO_MARK in self.key_file.name.lower()

    def key(self):
        if self._key is None:
            self._key = _load_private(self.key_file)
        return self._key

    @property
    def public_key(self) -> bytes:
        return public_raw(self.key())

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    def files(self) -> list[Path]:
        return sorted(self.directory.glob(_PATTERN)) if self.directory.is_dir() else []

    def read(self) -> list[tuple[str, int, dict | None]]:
        """Every checkpoint line as (file name, line number, parsed object or None when not JSON)."""
        out = []
        for path in self.files():
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        obj = None
                    out.append((path.name, lineno, obj if isinstance(obj, dict) else None))
        return out

    def latest(self) -> dict | None:
        """The last checkpoint written (signature not checked: this is for printing, not for judging).

        Read from the newest file only, and again only when that file grew."""
        files = self.files()
        if not files:
            return None
        path = files[-1]
        size = path.stat().st_size
        cached = self._latest
        if cached is not None and cached[0] == (path, size):
            return cached[1]
        lines = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and isinstance(obj.get("seq"), int):
                    lines.append(obj)
        best = max(lines, key=lambda c: c["seq"]) if lines else None
        self._latest = ((path, size), best)
        return best

    def valid(self, checkpoint: dict) -> bool:
        """Whether the checkpoint carries a valid signature of this anchor's key."""
        from cryptography.exceptions import InvalidSignature

        try:
            signature = base64.b64decode(checkpoint.get("signature", ""), validate=True)
            self.key().public_key().verify(signature, signed_part(checkpoint))
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def write(self, seq: int, head_hash: str, at: str) -> dict:
        """Sign and append one checkpoint; returns it."""
        checkpoint = {"seq": seq, "hash": head_hash, "at": at, "key_id": self.key_id, "demo": self.demo}
        checkpoint["signature"] = base64.b64encode(self.key().sign(signed_part(checkpoint))).decode("ascii")
        line = (json.dumps(checkpoint, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"checkpoints-{at[:7]}.jsonl"
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AnchorError(f"cannot write the audit checkpoint to {self.directory}: {exc}") from exc
        return checkpoint


_ANCHORS: weakref.WeakKeyDictionary[Engine, Anchor] = weakref.WeakKeyDictionary()


def attach(engine: Engine, anchor: Anchor | None) -> None:
    """Checkpoints of this engine's database go to `anchor` (None: none are written)."""
    if anchor is None:
        _ANCHORS.pop(engine, None)
    else:
        _ANCHORS[engine] = anchor


def of(bind) -> Anchor | None:
    """The anchor of an engine, a connection or a session (None when none is configured)."""
    get_bind = getattr(bind, "get_bind", None)
    if get_bind is not None:
        bind = get_bind()
    return _ANCHORS.get(_base_engine(bind))


def _base_engine(bind) -> Engine:
    """The engine itself, also behind execution options (db.writer's OptionEngine) or a connection."""
    engine = getattr(bind, "engine", bind)
    while getattr(engine, "_proxied", None) is not None:
        engine = engine._proxied
    return engine


def committed_head(engine: Engine) -> tuple[int, str]:
    """The chain head as committed (read on a connection of its own, outside any caller's transaction)."""
    table = AuditHead.__table__
    with engine.connect() as conn:
        row = conn.execute(sa_select(table.c.seq, table.c.hash).where(table.c.id == 1)).first()
        conn.rollback()
    return (row[0], row[1]) if row else (0, GENESIS)


def checkpoint(engine: Engine) -> dict | None:
    """Write a checkpoint of the committed head unless the latest one already names it; the latest checkpoint
    (None without an anchor)."""
    from .audit import now_iso

    anchor = of(engine)
    if anchor is None:
        return None
    seq, head = committed_head(engine)
    latest = anchor.latest()
    if latest is not None and latest.get("seq") == seq and latest.get("hash") == head:
        return latest
    return anchor.write(seq, head, now_iso())


def for_letter(session) -> dict | None:
    """The checkpoint a document prints: {"seq", "hash"} of the latest one. None without an anchor.

    Read from the files only: the caller's transaction holds its connection, and the committed head cannot
    be read through it. Before any checkpoint exists, one of the empty chain (seq 0) is written: true of
    every database, and followed by one of the real head once the document is committed."""
    anchor = of(session)
    if anchor is None:
        return None
    cp = anchor.latest()
    if cp is None:
        from .audit import now_iso

        cp = anchor.write(0, GENESIS, now_iso())
    return {"seq": cp["seq"], "hash": cp["hash"]}


def anchor_engine(session) -> Engine:
    return _base_engine(session.get_bind())


def printed(checkpoint: dict | None) -> str | None:
    """A checkpoint as a document prints it: the seq and the first 8 bytes of the hash in pairs of hex
    digits (no run of three letters, so nothing reads as a word)."""
    if not checkpoint:
        return None
    h = checkpoint["hash"][:16]
    return f"第 {checkpoint['seq']} 号　{' '.join(h[i:i + 2] for i in range(0, 16, 2))}"


_DUE = "mianze.checkpoint_due"


def due(session) -> None:
    """Write a checkpoint of the head after this session's transaction commits (documents were issued)."""
    session.info[_DUE] = True


_COMMITTED = "mianze.checkpoint_committed"


@event.listens_for(Session, "after_commit")
def _committed(session) -> None:
    if session.info.pop(_DUE, False):
        session.info[_COMMITTED] = True


@event.listens_for(Session, "after_transaction_end")
def _checkpoint_after_commit(session, transaction) -> None:
    """Once the session has given its connection back (so that the checkpoint's read never waits for a
    second connection from a pool its own holds one of)."""
    if transaction.parent is not None or not session.info.pop(_COMMITTED, False):
        return
    engine = anchor_engine(session)
    if of(engine) is None:
        return
    try:
        checkpoint(engine)
    except AnchorError:  # committed already: the next tick writes it; the operator reads why in the log
        log.exception("the audit checkpoint after issuing documents was not written")


@event.listens_for(Session, "after_rollback")
def _nothing_due(session) -> None:
    session.info.pop(_DUE, None)
