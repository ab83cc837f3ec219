"""CloudTrail digest files: check their signature and chain, and keep the hash each log file must have.

What CloudTrail does (AWS CloudTrail user guide, "CloudTrail digest file structure" and "Custom
implementations of CloudTrail log file integrity validation"; the AWS CLI's ``cloudtrail validate-logs``
does the same, awscli/customizations/cloudtrail/validation.py):

- Every hour it delivers, next to the log files, a digest file::

      [prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/
          <account>_CloudTrail-Digest_<region>_<trail>_<home-region>_<YYYYMMDDTHHmmssZ>.json.gz

  listing the log files delivered in that hour (``logFiles``) with the hex SHA-256 of each one's
  *uncompressed* content (``hashValue``).
- The digest's signature is not in the file but in its S3 metadata: ``signature`` (x-amz-meta-signature,
  hex) and ``signature-algorithm`` (SHA256withRSA, that is RSASSA-PKCS1-v1_5 over SHA-256).
- The signed string is ``digestEndTime + "\\n" + digestS3Bucket + "/" + digestS3Object + "\\n" +
  hex(SHA-256(uncompressed digest file)) + "\\n" + previousDigestSignature`` (the text ``null`` in the first
  digest of a chain).
- The public key (DER, PKCS#1 RSA; one per region and period) is the one whose fingerprint is
  ``digestPublicKeyFingerprint``. AWS serves them through ``aws cloudtrail list-public-keys``, which cannot be
  asked from here, so they come from the configuration.
- Each digest names the digest before it for the same trail (``previousDigestS3Object``, its signature and
  hash): a deleted or replaced digest breaks that chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "Digest",
    "DigestError",
    "DigestStore",
    "IntegrityFailure",
    "S3Client",
    "load_public_keys",
    "parse_digest",
    "signing_string",
    "verify_digests",
    "verify_new_digests",
    "verify_signature",
]

SIGNATURE_ALGORITHM = "SHA256withRSA"
# The fields the AWS CLI requires before it validates a digest.
_REQUIRED = (
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
)
# A digest lists one hour of log files (a few hundred lines of JSON); anything far larger is not one.
MAX_DIGEST_BYTES = 64 * 1024 * 1024


class S3Client(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class IntegrityFailure:
    """One thing validation found wrong; `kind` is the label of eventlog_cloudtrail_integrity_failures_total.

    Kinds: ``log_hash`` (a log file's content differs from its digest), ``log_missing`` (a digest lists a log
    file that is not in the bucket), ``digest_format`` (not a digest, or moved from where it was delivered),
    ``digest_signature`` (no signature, unknown key, or the signature does not verify), ``digest_chain`` (the
    previous digest is missing or is not the one this digest names).
    """

    kind: str
    key: str
    error: str
    expected: str | None = None
    actual: str | None = None
    imported: bool = False  # a log_hash found after the file was imported, its digest having come later

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "key": self.key, "error": self.error}
        if self.kind == "log_hash":
            out.update(expected=self.expected, actual=self.actual, imported=self.imported)
        return out


class DigestError(ValueError):
    """A digest file that fails validation; `kind` is an IntegrityFailure kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Digest:
    bucket: str
    key: str
    end_time: str
    fingerprint: str
    algorithm: str
    previous_bucket: str | None
    previous_key: str | None
    previous_signature: str | None
    previous_hash: str | None
    log_files: tuple[tuple[str, str, str], ...]  # (bucket, key, hex SHA-256 of the uncompressed content)
    signature: str  # hex, from the object's metadata
    signature_algorithm: str
    sha256: str  # of the uncompressed digest file: what the signature covers
    sha256_compressed: str


# -- pure parts ----------------------------------------------------------------------------------------------------


def _inflate(data: bytes) -> bytes:
    """Gunzip (every member), refusing output beyond MAX_DIGEST_BYTES."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        chunk = inflater.decompress(data, MAX_DIGEST_BYTES + 1 - size)
        size += len(chunk)
        out.append(chunk)
        if size > MAX_DIGEST_BYTES or inflater.unconsumed_tail:
            raise ValueError(f"uncompressed it is larger than {MAX_DIGEST_BYTES} bytes")
        if not inflater.eof:
            raise ValueError("the gzip stream is truncated")
        data = inflater.unused_data
    return b"".join(out)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_digest(bucket: str, key: str, compressed: bytes, metadata: Mapping[str, str]) -> Digest:
    """A digest object as CloudTrail delivered it; DigestError("digest_format" or "digest_signature") if not one."""
    try:
        content = _inflate(compressed)
        data = orjson.loads(content)
    except (ValueError, zlib.error) as exc:  # orjson.JSONDecodeError is a ValueError
        raise DigestError("digest_format", f"not a gzip JSON digest file: {exc}") from None
    if not isinstance(data, dict):
        raise DigestError("digest_format", "not a digest file: the JSON is not an object")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise DigestError("digest_format", f"not a digest file: no {', '.join(missing)}")
    if data["digestS3Bucket"] != bucket or data["digestS3Object"] != key:
        raise DigestError(
            "digest_format",
            f"moved from where it was delivered (s3://{data['digestS3Bucket']}/{data['digestS3Object']})",
        )
    for name in ("digestEndTime", "digestPublicKeyFingerprint"):
        if not isinstance(data[name], str):
            raise DigestError("digest_format", f"{name} is not a string")
    log_files: list[tuple[str, str, str]] = []
    entries = data.get("logFiles") or []
    if not isinstance(entries, list):
        raise DigestError("digest_format", "logFiles is not a list")
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(f), str) for f in ("s3Object", "hashValue")):
            raise DigestError("digest_format", f"a logFiles entry lacks s3Object or hashValue: {entry!r:.200}")
        if entry.get("hashAlgorithm", "SHA-256") != "SHA-256":
            raise DigestError("digest_format", f"unsupported hashAlgorithm {entry['hashAlgorithm']!r}")
        log_files.append((str(entry.get("s3Bucket") or bucket), entry["s3Object"], entry["hashValue"].lower()))
    # The AWS CLI refuses a digest object without these two metadata entries as an invalid signature.
    lowered = {k.lower(): v for k, v in metadata.items()}
    signature = lowered.get("signature")
    signature_algorithm = lowered.get("signature-algorithm")
    if not signature or not signature_algorithm:
        raise DigestError("digest_signature", "the object has no signature metadata (x-amz-meta-signature)")
    return Digest(
        bucket=bucket,
        key=key,
        end_time=data["digestEndTime"],
        fingerprint=data["digestPublicKeyFingerprint"],
        algorithm=str(data.get("digestSignatureAlgorithm") or signature_algorithm),
        previous_bucket=_str_or_none(data.get("previousDigestS3Bucket")),
        previous_key=_str_or_none(data.get("previousDigestS3Object")),
        previous_signature=_str_or_none(data["previousDigestSignature"]),
        previous_hash=(_str_or_none(data.get("previousDigestHashValue")) or "").lower() or None,
        log_files=tuple(log_files),
        signature=signature.lower(),
        signature_algorithm=signature_algorithm,
        sha256=hashlib.sha256(content).hexdigest(),
        sha256_compressed=hashlib.sha256(compressed).hexdigest(),
    )


def signing_string(digest: Digest) -> bytes:
    """The string CloudTrail signs; the first digest of a chain has the text "null" as previous signature."""
    previous = digest.previous_signature if digest.previous_signature is not None else "null"
    return f"{digest.end_time}\n{digest.bucket}/{digest.key}\n{digest.sha256}\n{previous}".encode()


def verify_signature(digest: Digest, keys: Mapping[str, rsa.RSAPublicKey]) -> None:
    """DigestError("digest_signature") unless the metadata signature verifies with the configured key."""
    for algorithm in (digest.algorithm, digest.signature_algorithm):
        if algorithm != SIGNATURE_ALGORITHM:
            raise DigestError("digest_signature", f"unsupported signature algorithm {algorithm!r}")
    key = keys.get(digest.fingerprint.lower())
    if key is None:
        raise DigestError(
            "digest_signature",
            f"no public key configured for fingerprint {digest.fingerprint} "
            "(add it to EVENTLOG_CLOUDTRAIL_DIGEST_PUBLIC_KEYS from `aws cloudtrail list-public-keys`)",
        )
    try:
        signature = binascii.unhexlify(digest.signature)
        key.verify(signature, signing_string(digest), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        raise DigestError("digest_signature", "the signature does not verify: the digest was altered") from None


@dataclass(frozen=True, slots=True)
class Link:
    """What the next digest of a chain says about this one."""

    signature: str | None
    sha256: str | None
    sha256_compressed: str | None


def check_link(digest: Digest, previous: Link | None) -> None:
    """DigestError("digest_chain") unless `previous` is the digest this one names (None: it is not in the bucket)."""
    if digest.previous_key is None:
        return  # the first digest of a chain (or after the trail was stopped): nothing to link to
    if previous is None:
        raise DigestError("digest_chain", f"the previous digest {digest.previous_key} is missing")
    if digest.previous_signature is None or digest.previous_signature.lower() != previous.signature:
        raise DigestError(
            "digest_chain",
            f"previousDigestSignature is not the signature of {digest.previous_key}: that digest was replaced",
        )
    # The AWS documentation does not say whether this hash is of the compressed or the uncompressed previous
    # digest; both identify the same object, so either is accepted.
    if digest.previous_hash is not None and digest.previous_hash not in (previous.sha256, previous.sha256_compressed):
        raise DigestError(
            "digest_chain", f"previousDigestHashValue is not the hash of {digest.previous_key}: that digest was altered"
        )


def _read_file(text: str) -> bytes | None:
    """The bytes of the file `text` names, or None when it names none (a key given inline)."""
    try:
        path = Path(text)
        return path.read_bytes() if path.is_file() else None
    except (OSError, ValueError):  # a base64 key is no file name: too long, or not a valid path
        return None


def load_public_keys(config: Mapping[str, str]) -> dict[str, rsa.RSAPublicKey]:
    """Fingerprint -> RSA key, from the setting: base64 DER (as list-public-keys prints it), PEM, or a file of either.

    Raises ValueError naming the fingerprint whose key cannot be read.
    """
    keys: dict[str, rsa.RSAPublicKey] = {}
    for fingerprint, value in config.items():
        text = value.strip()
        data = _read_file(text) if not text.startswith("-----BEGIN") else None
        if data is None:
            data = text.encode()
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                key: Any = serialization.load_pem_public_key(data)
            else:
                try:
                    der = base64.b64decode(data, validate=True)
                except binascii.Error:
                    der = data  # a binary DER file
                key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"CloudTrail digest public key {fingerprint}: cannot read it: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"CloudTrail digest public key {fingerprint}: not an RSA key")
        keys[fingerprint.lower()] = key
    return keys


# -- what has been checked: cloudtrail.db ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    bucket TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    signature TEXT, sha256 TEXT, sha256_compressed TEXT, checked_at TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS digest_log_files (
    bucket TEXT NOT NULL, key TEXT NOT NULL, sha256 TEXT NOT NULL, digest_key TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
"""


class DigestStore:
    """Digests checked and the log-file hashes their valid ones vouch for, in cloudtrail.db next to the checkpoints.

    digest_log_files.state: ``pending`` (hash known, file not compared yet), ``valid``, ``mismatch``, ``missing``.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(_SCHEMA)

    def seen(self, bucket: str, folder: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT key FROM digests WHERE bucket = ? AND key >= ? AND key < ?", (bucket, folder, folder + "\uffff")
        )
        return {str(r[0]) for r in rows}

    def checked(self, bucket: str, key: str) -> bool:
        """Whether the digest `key` was checked before (valid or not): it is never checked twice."""
        row = self._conn.execute("SELECT 1 FROM digests WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        return row is not None

    def link(self, bucket: str, key: str) -> Link | None:
        row = self._conn.execute(
            "SELECT signature, sha256, sha256_compressed FROM digests WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return None if row is None else Link(row[0], row[1], row[2])

    def record(self, bucket: str, key: str, digest: Digest | None, error: DigestError | None, *, trusted: bool) -> None:
        """Store a checked digest; when `trusted`, its log files' hashes become pending comparisons."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO digests (bucket, key, status, error, signature, sha256, sha256_compressed,"
                " checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bucket,
                    key,
                    "valid" if error is None else error.kind,
                    None if error is None else str(error),
                    digest.signature if digest else None,
                    digest.sha256 if digest else None,
                    digest.sha256_compressed if digest else None,
                    now,
                ),
            )
            if digest is not None and trusted:
                # A log file listed twice (a backfill digest) keeps the first hash it was given.
                self._conn.executemany(
                    "INSERT OR IGNORE INTO digest_log_files (bucket, key, sha256, digest_key, state)"
                    " VALUES (?, ?, ?, ?, 'pending')",
                    [(b, k, h, key) for b, k, h in digest.log_files],
                )

    def pending(self, bucket: str, folder: str) -> dict[str, str]:
        """Log key -> expected hex SHA-256, for the files under `folder` not compared yet."""
        rows = self._conn.execute(
            "SELECT key, sha256 FROM digest_log_files WHERE bucket = ? AND key >= ? AND key < ? AND state = 'pending'",
            (bucket, folder, folder + "\uffff"),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def expected(self, bucket: str, key: str) -> str | None:
        row = self._conn.execute(
            "SELECT sha256 FROM digest_log_files WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def settle(self, bucket: str, key: str, state: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE digest_log_files SET state = ? WHERE bucket = ? AND key = ?", (state, bucket, key)
            )


# -- reading the digests of one folder -----------------------------------------------------------------------------


def _no_such_key(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def _fetch(s3: S3Client, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    answer = s3.get_object(Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        data: bytes = body.read(MAX_DIGEST_BYTES + 1)
    finally:
        body.close()
    return data, dict(answer.get("Metadata") or {})


def _previous_link(s3: S3Client, store: DigestStore, bucket: str, digest: Digest) -> Link | None:
    """The link of the digest `digest` names: from the store, else read from the bucket (None: not there)."""
    assert digest.previous_key is not None
    previous_bucket = digest.previous_bucket or bucket
    known = store.link(previous_bucket, digest.previous_key)
    if known is not None:
        return known
    try:
        data, metadata = _fetch(s3, previous_bucket, digest.previous_key)
    except ClientError as exc:
        if _no_such_key(exc):
            return None
        raise
    lowered = {k.lower(): v for k, v in metadata.items()}
    try:
        content_hash: str | None = hashlib.sha256(_inflate(data)).hexdigest()
    except (ValueError, zlib.error):
        content_hash = None
    signature = lowered.get("signature")
    return Link(signature.lower() if signature else None, content_hash, hashlib.sha256(data).hexdigest())


def _list(s3: S3Client, bucket: str, folder: str, start_after: str) -> Iterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder, StartAfter=start_after):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".json.gz"):
                yield item["Key"]


def verify_new_digests(
    s3: S3Client,
    *,
    bucket: str,
    folder: str,
    start_after: str,
    keys: Mapping[str, rsa.RSAPublicKey],
    store: DigestStore,
) -> tuple[int, list[IntegrityFailure]]:
    """Check every digest under `folder` not checked before, oldest first; returns (valid ones, failures)."""
    seen = store.seen(bucket, folder)
    # Keys sort by day, then trail name, then end time: each trail's digests come oldest first, so a digest's
    # predecessor is usually in the store by the time it is checked.
    new = (key for key in _list(s3, bucket, folder, start_after) if key not in seen)
    return verify_digests(s3, bucket=bucket, digest_keys=new, keys=keys, store=store)


def verify_digests(
    s3: S3Client,
    *,
    bucket: str,
    digest_keys: Iterable[str],
    keys: Mapping[str, rsa.RSAPublicKey],
    store: DigestStore,
) -> tuple[int, list[IntegrityFailure]]:
    """Check each of `digest_keys` (not checked before) in that order; returns (valid ones, failures).

    A digest whose signature verifies vouches for its log files' hashes, even when its chain is broken (the
    break says an earlier digest was deleted or replaced, not that this one lies). One that does not verify
    vouches for nothing. S3 errors other than a missing previous digest propagate.
    """
    valid = 0
    failures: list[IntegrityFailure] = []
    for key in digest_keys:
        data, metadata = _fetch(s3, bucket, key)
        digest: Digest | None = None
        try:
            digest = parse_digest(bucket, key, data, metadata)
            verify_signature(digest, keys)
        except DigestError as exc:
            failures.append(IntegrityFailure(exc.kind, key, str(exc)))
            store.record(bucket, key, digest, exc, trusted=False)
            continue
        try:
            if digest.previous_key is not None:
                check_link(digest, _previous_link(s3, store, bucket, digest))
        except DigestError as exc:
            failures.append(IntegrityFailure(exc.kind, key, str(exc)))
            store.record(bucket, key, digest, exc, trusted=True)
            continue
        store.record(bucket, key, digest, None, trusted=True)
        valid += 1
    return valid, failures
