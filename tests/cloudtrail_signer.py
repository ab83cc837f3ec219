"""Digest files made and signed the way CloudTrail makes them, for tests (no AWS private key can be had).

Written from the AWS CloudTrail user guide ("CloudTrail digest file structure", "Custom implementations of
CloudTrail log file integrity validation"), not from ingest/cloudtrail/digest.py, so that the tests check
that module against the documented format rather than against itself:

- the digest is gzip JSON at
  ``[prefix/]AWSLogs/[o-id/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/``
  ``<account>_CloudTrail-Digest_<region>_<trail>_<region>_<YYYYMMDDTHHmmssZ>.json.gz``;
- each log file's ``hashValue`` is the hex SHA-256 of its uncompressed content;
- the signature (hex, SHA256withRSA) of ``digestEndTime\\n<bucket>/<key>\\n<hex SHA-256 of the uncompressed
  digest>\\n<previousDigestSignature or "null">`` goes into the object metadata ``signature`` (with
  ``signature-algorithm``), not into the file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["DigestObject", "TrailSigner", "private_key"]


@cache
def private_key(index: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key per index, made once per test session (it takes a tenth of a second)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DigestObject:
    key: str
    body: bytes  # gzip
    metadata: dict[str, str]
    content: dict[str, Any]


@dataclass
class TrailSigner:
    """Signs the digest chain of one trail for one account and region."""

    bucket: str
    account: str
    region: str
    prefix: str = ""
    org: str | None = None
    trail: str = "management-events"
    key_index: int = 0
    previous: DigestObject | None = field(default=None, init=False)

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return private_key(self.key_index)

    @property
    def public_key_der_b64(self) -> str:
        """As `aws cloudtrail list-public-keys` prints a key's Value: base64 of DER PKCS#1."""
        der = self.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return base64.b64encode(der).decode()

    @property
    def fingerprint(self) -> str:
        der = self.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return hashlib.md5(der).hexdigest()  # a name for the key, 32 hex digits like CloudTrail's

    def _root(self) -> str:
        parts = [p for p in (self.prefix.strip("/"), "AWSLogs", self.org, self.account) if p]
        return "/".join(parts)

    def digest_key(self, end: datetime) -> str:
        return (
            f"{self._root()}/CloudTrail-Digest/{self.region}/{end:%Y/%m/%d}/"
            f"{self.account}_CloudTrail-Digest_{self.region}_{self.trail}_{self.region}_{end:%Y%m%dT%H%M%SZ}.json.gz"
        )

    def sign(self, text: str) -> str:
        return self.key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()

    def digest(
        self,
        end: datetime,
        log_files: list[tuple[str, bytes]],
        *,
        previous_signature: str | None = None,
        tamper: dict[str, Any] | None = None,
    ) -> DigestObject:
        """The next digest of the chain, listing `log_files` (key, gzip body); `tamper` changes it after signing."""
        key = self.digest_key(end)
        previous = self.previous
        content: dict[str, Any] = {
            "awsAccountId": self.account,
            "digestStartTime": _stamp(end - timedelta(hours=1)),
            "digestEndTime": _stamp(end),
            "digestS3Bucket": self.bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": self.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": _stamp(end - timedelta(minutes=5)),
            "oldestEventTime": _stamp(end - timedelta(minutes=55)),
            "previousDigestS3Bucket": self.bucket if previous else None,
            "previousDigestS3Object": previous.key if previous else None,
            "previousDigestHashValue": (
                hashlib.sha256(gzip.decompress(previous.body)).hexdigest() if previous else None
            ),
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous.metadata["signature"] if previous else None,
            "logFiles": [
                {
                    "s3Bucket": self.bucket,
                    "s3Object": log_key,
                    "hashValue": hashlib.sha256(gzip.decompress(body)).hexdigest(),
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": _stamp(end - timedelta(minutes=5)),
                    "oldestEventTime": _stamp(end - timedelta(minutes=55)),
                }
                for log_key, body in log_files
            ],
        }
        if previous_signature is not None:
            content["previousDigestSignature"] = previous_signature
        raw = json.dumps(content).encode()
        signed = (
            f"{content['digestEndTime']}\n{self.bucket}/{key}\n{hashlib.sha256(raw).hexdigest()}\n"
            f"{content['previousDigestSignature'] or 'null'}"
        )
        metadata = {"signature": self.sign(signed), "signature-algorithm": "SHA256withRSA"}
        if tamper:
            content = {**content, **tamper}
            raw = json.dumps(content).encode()
        made = DigestObject(key, gzip.compress(raw), metadata, content)
        self.previous = made
        return made
