"""Where CloudTrail puts its files in S3: which keys are log or digest files of which trail."""

from __future__ import annotations

import pytest

from ingest.cloudtrail.layout import Trail, locate_key
from tests.unit.ingest.cloudtrail.test_sqs import DIGEST, LOG, ROOT


def test_locate_key_finds_the_trail_of_log_and_digest_files() -> None:
    folder = f"{ROOT}/CloudTrail/eu-west-1/"
    trail = Trail("111111111111", "eu-west-1", folder)
    assert (located := locate_key("audit logs", LOG)) is not None
    assert (located.trail, located.digest) == (trail, False)
    assert (located := locate_key("/audit logs/", DIGEST)) is not None
    assert (located.trail, located.digest, located.trail.digest_folder) == (
        trail,
        True,
        f"{ROOT}/CloudTrail-Digest/eu-west-1/",
    )
    org = "AWSLogs/o-abcdefghij/222222222222/CloudTrail/us-east-1/2026/11/27/x.json.gz"
    assert (located := locate_key("", org)) is not None
    assert located.trail == Trail(
        "222222222222", "us-east-1", "AWSLogs/o-abcdefghij/222222222222/CloudTrail/us-east-1/"
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(LOG.replace("audit logs/", "other/"), id="other-prefix"),
        pytest.param(LOG.replace("/CloudTrail/", "/CloudTrail-Insight/"), id="insight"),
        pytest.param(LOG.removesuffix(".gz"), id="not-gzip-json"),
        pytest.param(LOG.replace("111111111111/", "11111111111/", 1), id="account-of-11-digits"),
        pytest.param(f"{ROOT}/CloudTrail/eu-west-1.json.gz", id="no-region-folder"),
        pytest.param("audit logs/notes/readme.txt", id="elsewhere"),
    ],
)
def test_locate_key_refuses_other_keys(key: str) -> None:
    assert locate_key("audit logs", key) is None
