"""Signed checkpoints of the chain (the idea of CloudTrail's digest files)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from eventlog.canonical import canonical_json
from eventlog.journal import Journal
from eventlog.journal import checkpoints as rows
from eventlog.model import format_time

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream: str
    seq: int
    hash: str
    time: str
    signature: str

    def payload(self) -> bytes:
        return canonical_json({"stream": self.stream, "seq": self.seq, "hash": self.hash, "time": self.time})


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public half of a signing key as PEM text, as `signing.pub` holds it."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_path(key_path: Path) -> Path:
    return key_path.with_suffix(".pub")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The node's signing key; created on first start, readable by its owner only."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key; move it away to create a new one")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_key_path(path).write_text(public_pem(key))
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, *, stream: str, seq: int, hash: str, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(stream, seq, hash, format_time(at), "")
    return Checkpoint(stream, seq, hash, unsigned.time, key.sign(unsigned.payload()).hex())


def is_valid(key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        key.verify(bytes.fromhex(checkpoint.signature), checkpoint.payload())
    except (InvalidSignature, ValueError):
        return False
    return True


def store(conn: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    rows.insert(conn, (checkpoint.stream, checkpoint.seq, checkpoint.hash, checkpoint.time, checkpoint.signature))


def load_all(conn: sqlite3.Connection, stream: str) -> list[Checkpoint]:
    return [Checkpoint(*row) for row in rows.rows(conn, stream)]


class Checkpointer:
    """Signs the journal's head every few minutes and once more at shutdown."""

    def __init__(self, journal: Journal, key: Ed25519PrivateKey, interval_seconds: float) -> None:
        self._journal = journal
        self._key = key
        self._interval = interval_seconds

    def _write(self, conn: sqlite3.Connection) -> Checkpoint | None:
        # Runs in the journal's writer thread, so last_seq/last_hash are settled.
        journal = self._journal
        if journal.last_seq == 0 or rows.latest_seq(conn, journal.stream) >= journal.last_seq:
            return None
        checkpoint = sign(
            self._key, stream=journal.stream, seq=journal.last_seq, hash=journal.last_hash, at=datetime.now(UTC)
        )
        store(conn, checkpoint)
        return checkpoint

    async def checkpoint(self) -> Checkpoint | None:
        return await self._journal.call(self._write)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.checkpoint()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.error("checkpoint failed; retrying at the next interval", extra={"error": str(exc)})
