"""Digest files: parsing, the signed string, the signature, the chain link, the configured keys.

Digests are made by tests/cloudtrail_signer.py, which follows the AWS documentation on its own.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from ingest.cloudtrail.digest import (
    DigestError,
    Link,
    check_link,
    load_public_keys,
    parse_digest,
    signing_string,
    verify_signature,
)
from tests.cloudtrail_signer import DigestObject, TrailSigner, private_key

BUCKET = "trail-bucket"
END = datetime(2026, 11, 27, 15, 1, 31, tzinfo=UTC)
LOG_KEY = (
    "AWSLogs/111111111111/CloudTrail/eu-west-1/2026/11/27/111111111111_CloudTrail_eu-west-1_20261127T1455Z_x.json.gz"
)
LOG_BODY = gzip.compress(b'{"Records": []}')


def _signer() -> TrailSigner:
    return TrailSigner(BUCKET, "111111111111", "eu-west-1")


def _parse(made: DigestObject, *, key: str | None = None, metadata: dict[str, str] | None = None) -> Any:
    return parse_digest(BUCKET, key or made.key, made.body, made.metadata if metadata is None else metadata)


def _keys(signer: TrailSigner) -> dict[str, Any]:
    return load_public_keys({signer.fingerprint: signer.public_key_der_b64})


def test_parse_reads_the_documented_fields() -> None:
    signer = _signer()
    first = signer.digest(END, [(LOG_KEY, LOG_BODY)])
    digest = _parse(first)
    assert digest.end_time == "2026-11-27T15:01:31Z"
    assert digest.fingerprint == signer.fingerprint
    assert digest.previous_key is None
    assert digest.previous_signature is None
    assert digest.log_files == ((BUCKET, LOG_KEY, hashlib.sha256(b'{"Records": []}').hexdigest()),)
    assert digest.sha256 == hashlib.sha256(gzip.decompress(first.body)).hexdigest()
    second = _parse(signer.digest(END + timedelta(hours=1), []))
    assert second.previous_key == first.key
    assert second.previous_signature == first.metadata["signature"]


def test_signing_string_is_end_time_path_hash_and_previous_signature() -> None:
    signer = _signer()
    first = _parse(signer.digest(END, []))
    assert signing_string(first) == (f"2026-11-27T15:01:31Z\n{BUCKET}/{first.key}\n{first.sha256}\nnull".encode())
    second = _parse(signer.digest(END + timedelta(hours=1), []))
    assert signing_string(second).endswith(f"\n{second.sha256}\n{first.signature}".encode())


def test_a_digest_signed_as_cloudtrail_signs_verifies() -> None:
    signer = _signer()
    for hour in range(3):
        verify_signature(_parse(signer.digest(END + timedelta(hours=hour), [(LOG_KEY, LOG_BODY)])), _keys(signer))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"logFiles": []}, "does not verify", id="log-list-altered"),
        pytest.param({"digestEndTime": "2026-11-27T16:01:31Z"}, "does not verify", id="end-time-altered"),
        pytest.param({"digestSignatureAlgorithm": "SHA1withRSA"}, "unsupported", id="algorithm"),
        pytest.param({"digestPublicKeyFingerprint": "0" * 32}, "no public key configured", id="unknown-key"),
    ],
)
def test_an_altered_digest_does_not_verify(change: dict[str, Any], message: str) -> None:
    signer = _signer()
    digest = _parse(signer.digest(END, [(LOG_KEY, LOG_BODY)], tamper=change))
    with pytest.raises(DigestError, match=message) as failed:
        verify_signature(digest, _keys(signer))
    assert failed.value.kind == "digest_signature"


def test_a_signature_by_another_key_does_not_verify() -> None:
    signer = _signer()
    other = TrailSigner(BUCKET, "111111111111", "eu-west-1", key_index=1)
    digest = _parse(signer.digest(END, []))
    keys = {signer.fingerprint: load_public_keys({"x": other.public_key_der_b64})["x"]}
    with pytest.raises(DigestError, match="does not verify"):
        verify_signature(digest, keys)


@pytest.mark.parametrize(
    ("body", "metadata", "kind", "message"),
    [
        pytest.param(b"not gzip", None, "digest_format", "gzip", id="not-gzip"),
        pytest.param(gzip.compress(b"[1]"), None, "digest_format", "not an object", id="not-an-object"),
        pytest.param(
            gzip.compress(b'{"Records": []}'), None, "digest_format", "no digestPublicKeyFingerprint", id="a-log"
        ),
        pytest.param(None, {}, "digest_signature", "no signature metadata", id="no-metadata"),
    ],
)
def test_parse_refuses_what_is_not_a_signed_digest(
    body: bytes | None, metadata: dict[str, str] | None, kind: str, message: str
) -> None:
    made = _signer().digest(END, [])
    with pytest.raises(DigestError, match=message) as failed:
        parse_digest(
            BUCKET, made.key, made.body if body is None else body, made.metadata if metadata is None else metadata
        )
    assert failed.value.kind == kind


def test_a_digest_moved_from_where_it_was_delivered_is_refused() -> None:
    made = _signer().digest(END, [])
    with pytest.raises(DigestError, match="moved") as failed:
        _parse(made, key=made.key.replace("2026/11/27", "2026/11/28"))
    assert failed.value.kind == "digest_format"


def test_chain_link() -> None:
    signer = _signer()
    first = signer.digest(END, [])
    second = _parse(signer.digest(END + timedelta(hours=1), []))
    plain = hashlib.sha256(gzip.decompress(first.body)).hexdigest()
    compressed = hashlib.sha256(first.body).hexdigest()
    check_link(second, Link(first.metadata["signature"], plain, compressed))
    # The documentation does not say which form previousDigestHashValue hashes: either is taken.
    other_form = _parse(
        TrailSigner(BUCKET, "111111111111", "eu-west-1").digest(
            END,
            [],
            tamper={
                "previousDigestS3Object": first.key,
                "previousDigestSignature": first.metadata["signature"],
                "previousDigestHashValue": compressed,
            },
        )
    )
    check_link(other_form, Link(first.metadata["signature"], plain, compressed))
    with pytest.raises(DigestError, match="missing") as missing:
        check_link(second, None)
    assert missing.value.kind == "digest_chain"
    with pytest.raises(DigestError, match="previousDigestSignature"):
        check_link(second, Link("00" * 256, plain, compressed))
    with pytest.raises(DigestError, match="previousDigestHashValue"):
        check_link(second, Link(first.metadata["signature"], "0" * 64, "1" * 64))
    check_link(_parse(first), None)  # the first digest of a chain links to nothing


def test_public_keys_from_list_public_keys_pem_or_files(tmp_path: Path) -> None:
    public = private_key().public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    (tmp_path / "key.der").write_bytes(der)
    keys = load_public_keys(
        {
            "AA": base64.b64encode(der).decode(),
            "bb": pem.decode(),
            "cc": str(tmp_path / "key.pem"),
            "dd": str(tmp_path / "key.der"),
        }
    )
    assert set(keys) == {"aa", "bb", "cc", "dd"}  # fingerprints compare in lower case
    assert {k.public_numbers() for k in keys.values()} == {public.public_numbers()}
    with pytest.raises(ValueError, match="ee"):
        load_public_keys({"ee": "not a key"})
    with pytest.raises(ValueError, match="ff"):
        load_public_keys({"ff": str(tmp_path / "missing.pem")})
