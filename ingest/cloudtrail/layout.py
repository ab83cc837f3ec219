"""CloudTrail's S3 key layout: the trails under a bucket and prefix, their log files not read yet, and where a
key a notification names lies.

Layout read (AWS CloudTrail user guide)::

    [prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz

Insights (``CloudTrail-Insight/``) are not read; digest files lie in ``CloudTrail-Digest/<region>/`` next to
``CloudTrail/`` (see ingest/cloudtrail/digest.py). Listing restarts one day before the newest key read, so late
deliveries into a day already read are still picked up.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from ingest.cloudtrail.digest import S3Client

__all__ = ["NotifiedKey", "Trail", "discover_trails", "list_new_files", "locate_key", "start_day"]

_LOOKBACK = timedelta(days=1)

_ACCOUNT = re.compile(r"^\d{12}\Z")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}\Z")
_KEY_DAY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/[^/]+\Z")


@dataclass(frozen=True, slots=True)
class Trail:
    """One (account, region) folder of CloudTrail files."""

    account: str
    region: str
    folder: str  # ends with "/", e.g. "p/AWSLogs/o-abc/111111111111/CloudTrail/eu-west-1/"

    @property
    def digest_folder(self) -> str:
        """Where CloudTrail puts the digest files of this folder's log files."""
        root = self.folder.removesuffix(f"CloudTrail/{self.region}/")
        return f"{root}CloudTrail-Digest/{self.region}/"


def _base(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"


def _subfolders(s3: S3Client, bucket: str, under: str) -> Iterator[str]:
    """The names of the 'folders' directly under `under`."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=under, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            yield common["Prefix"][len(under) :].rstrip("/")


def discover_trails(s3: S3Client, bucket: str, prefix: str, *, digests: bool = False) -> list[Trail]:
    """Every account/region folder under the bucket and prefix, organization trails included.

    With `digests`, a region that has only digest files counts too: its log files may all have been deleted.
    """
    base = _base(prefix)
    account_roots: list[tuple[str, str]] = []
    for name in _subfolders(s3, bucket, base):
        if _ACCOUNT.match(name):
            account_roots.append((name, f"{base}{name}/"))
        elif _ORG.match(name):
            account_roots.extend(
                (member, f"{base}{name}/{member}/")
                for member in _subfolders(s3, bucket, f"{base}{name}/")
                if _ACCOUNT.match(member)
            )
    trails: set[Trail] = set()
    for account, root in account_roots:
        folder = f"{root}CloudTrail/"
        regions = set(_subfolders(s3, bucket, folder))
        if digests:
            regions.update(_subfolders(s3, bucket, f"{root}CloudTrail-Digest/"))
        trails.update(Trail(account, region, f"{folder}{region}/") for region in regions)
    return sorted(trails, key=lambda t: t.folder)


@dataclass(frozen=True, slots=True)
class NotifiedKey:
    """Where a key named by a notification lies in the layout: its trail, and whether it is a digest file."""

    trail: Trail
    digest: bool


@functools.lru_cache(maxsize=16)
def _layout(prefix: str) -> re.Pattern[str]:
    """The keys discover_trails and list_new_files would find under `prefix`, log and digest files alike."""
    return re.compile(
        re.escape(_base(prefix))
        + r"(?P<root>(?:o-[a-z0-9]{10,32}/)?(?P<account>\d{12})/)"
        + r"(?P<kind>CloudTrail|CloudTrail-Digest)/(?P<region>[^/]+)/.+\.json\.gz"
    )


def locate_key(prefix: str, key: str) -> NotifiedKey | None:
    """The trail of a CloudTrail log or digest file key under `prefix`; None for any other key.

    The same keys the listing reads: ``.json.gz`` under an account's (or an organization member's)
    ``CloudTrail/<region>/`` or ``CloudTrail-Digest/<region>/`` folder; ``CloudTrail-Insight/`` is not one.
    """
    match = _layout(prefix).fullmatch(key)
    if match is None:
        return None
    region = match["region"]
    folder = f"{_base(prefix)}{match['root']}CloudTrail/{region}/"
    return NotifiedKey(Trail(match["account"], region, folder), match["kind"] == "CloudTrail-Digest")


def _key_day(key: str) -> date | None:
    match = _KEY_DAY.search(key)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def start_day(last_key: str | None, since: date | None) -> date | None:
    """The first day to list: one day before the checkpoint's, or `since`, whichever is later."""
    starts: list[date] = []
    last_day = _key_day(last_key) if last_key else None
    if last_day is not None:
        starts.append(last_day - _LOOKBACK)
    if since is not None:
        starts.append(since)
    return max(starts) if starts else None


def list_new_files(
    s3: S3Client, bucket: str, trail: Trail, *, last_key: str | None, since: date | None, seen: set[str]
) -> Iterator[str]:
    """Keys of log files in `trail`, oldest first, from one day before the checkpoint (or `since`), not yet read."""
    start = start_day(last_key, since)
    # "YYYY/MM/DD" sorts just before every key of that day: StartAfter it lists the day and what follows.
    start_after = f"{trail.folder}{start:%Y/%m/%d}" if start else ""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=trail.folder, StartAfter=start_after):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith(".json.gz") and key not in seen:
                yield key
