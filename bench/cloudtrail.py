"""CloudTrail import benchmark: records/s from gzip log files in S3 to events committed in the journal.

Generates N realistic CloudTrail records (AssumedRole / IAMUser / AWSService identities with session
contexts, request parameters, response elements, TLS details, resources, some errors; about 1.5 kB of JSON
each) into gzip files laid out as CloudTrail delivers them
(``bench/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<unique>.json.gz``,
two accounts x two regions) and uploads them to moto's standalone S3 server, started as tests/s3_server.py
does (or ``S3_ENDPOINT_URL`` when set).

The clock starts when `import_cloudtrail` starts (listing included) and stops when it returns, that is
when every event has been acknowledged by the journal writer (committed, fsync included) and every file
checkpointed. The journal, checkpoint store and mapping are eventlog's own (ingest/cloudtrail/importer.py and the
modules it uses), with the default settings; as `eventlog cloudtrail import` does, what was built before the
import is frozen out of the garbage collector's sight (gc.freeze). Rate = N / that time. The run checks that
the journal holds N events.

The figure is only worth something on a quiet machine: the run prints the CPU time this process, the S3
server and every other process used meanwhile (from /proc), so a figure taken while others were busy can
be told apart.

Target: >= 20 000 records/s.

Run from the repository root:
  .venv/bin/python -m bench.cloudtrail
  .venv/bin/python -m bench.cloudtrail --records 20000 --records-per-file 500
Exit status: 0 target met, 2 target missed, 1 error.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson

from bench.harness.cpu import CpuMeter, CpuUse, own_cpu_seconds, process_cpu_seconds
from bench.harness.report import at_least, print_results
from bench.harness.run import benchmark_parser
from eventlog.journal import Journal
from eventlog.settings import Settings
from ingest.cloudtrail.checkpoints import CheckpointStore
from ingest.cloudtrail.importer import ImportOptions, import_cloudtrail
from ingest.cloudtrail.mapping import limits_of
from tests.s3_server import start_s3

TARGET_RECORDS_PER_S = 20_000.0
ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("eu-west-1", "us-east-1")
PREFIX = "bench"

_CALLS = (
    ("s3.amazonaws.com", "GetObject", "AWS::S3::Object"),
    ("s3.amazonaws.com", "PutObject", "AWS::S3::Object"),
    ("ec2.amazonaws.com", "DescribeInstances", None),
    ("ec2.amazonaws.com", "RunInstances", "AWS::EC2::Instance"),
    ("iam.amazonaws.com", "CreateAccessKey", "AWS::IAM::User"),
    ("sts.amazonaws.com", "AssumeRole", "AWS::IAM::Role"),
    ("kms.amazonaws.com", "Decrypt", "AWS::KMS::Key"),
    ("lambda.amazonaws.com", "Invoke", "AWS::Lambda::Function"),
    ("dynamodb.amazonaws.com", "PutItem", "AWS::DynamoDB::Table"),
    ("signin.amazonaws.com", "ConsoleLogin", None),
)
_AGENTS = (
    "aws-cli/2.15.10 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/s3.cp",
    "Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.141.0",
)


def make_record(rng: random.Random, account: str, region: str, when: datetime) -> dict[str, Any]:
    source, name, resource_type = rng.choice(_CALLS)
    role = f"role-{rng.randrange(40)}"
    principal = f"AROA{rng.randrange(10**16):016d}:{'session-' + str(rng.randrange(1000))}"
    kind = rng.choices(("AssumedRole", "IAMUser", "AWSService"), weights=(7, 2, 1))[0]
    identity: dict[str, Any]
    if kind == "AWSService":
        identity = {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}
        ip: str = "lambda.amazonaws.com"
    else:
        identity = {
            "type": kind,
            "principalId": principal,
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/session-{rng.randrange(1000)}",
            "accountId": account,
            "accessKeyId": f"ASIA{rng.randrange(10**16):016d}",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": principal.split(":")[0],
                    "arn": f"arn:aws:iam::{account}:role/{role}",
                    "accountId": account,
                    "userName": role,
                },
                "attributes": {"creationDate": (when - timedelta(minutes=5)).isoformat(), "mfaAuthenticated": "false"},
            },
        }
        ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    failed = rng.random() < 0.05
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": rng.choice(_AGENTS),
        "requestParameters": {
            "bucketName": f"data-{rng.randrange(100)}",
            "key": f"exports/{rng.randrange(10**6)}/part-{rng.randrange(100):05d}.parquet",
            "maxResults": rng.randrange(1, 1000),
            "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]},
        },
        "responseElements": None if failed else {"requestId": str(uuid.UUID(int=rng.getrandbits(128)))},
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": name.startswith(("Get", "Describe")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        },
    }
    if failed:
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = f"User is not authorized to perform: {source.split('.')[0]}:{name}"
    if resource_type is not None:
        record["resources"] = [
            {
                "accountId": account,
                "type": resource_type,
                "ARN": f"arn:aws:{source.split('.')[0]}:::{rng.randrange(10**6)}",
            }
        ]
    return record


def make_files(records: int, per_file: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(key, gzip body) of `records` records in files of `per_file`, spread over accounts and regions."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    files: list[tuple[str, bytes]] = []
    made = 0
    index = 0
    while made < records:
        count = min(per_file, records - made)
        account = ACCOUNTS[index % len(ACCOUNTS)]
        region = REGIONS[(index // len(ACCOUNTS)) % len(REGIONS)]
        stamp = now - timedelta(hours=2) + timedelta(minutes=index)
        batch = [make_record(rng, account, region, stamp + timedelta(milliseconds=i)) for i in range(count)]
        unique = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        key = (
            f"{PREFIX}/AWSLogs/{account}/CloudTrail/{region}/{stamp:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{stamp:%Y%m%dT%H%M}Z_{unique}.json.gz"
        )
        files.append((key, gzip.compress(orjson.dumps({"Records": batch}))))
        made += count
        index += 1
    return files


def _children_cpu() -> float:
    """CPU seconds of this process's child processes still running (the S3 server)."""
    return sum(
        process_cpu_seconds(int(pid))
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    )


async def _import(s3: Any, bucket: str, data_dir: Path, settings: Settings) -> tuple[float, dict[str, Any], CpuUse]:
    """(seconds, summary, CPU seconds used meanwhile by this process, the S3 server and the machine)."""
    journal = Journal(data_dir / "journal.db", stream="bench", max_group_events=settings.group_commit_max_events)
    checkpoints = CheckpointStore(data_dir / "cloudtrail.db")
    journal.open()
    gc.collect()
    gc.freeze()
    try:
        cpu = CpuMeter({"own": own_cpu_seconds, "s3 server": _children_cpu})
        cpu.start()
        started = time.perf_counter()
        options = ImportOptions(
            bucket=bucket,
            prefix=PREFIX,
            append=journal.append,
            checkpoints=checkpoints,
            tenants={account: f"tenant-{account[0]}" for account in ACCOUNTS},
            limits=limits_of(settings.retention, settings.limits),
        )
        stats = await import_cloudtrail(s3, options)
        elapsed = time.perf_counter() - started
        used = cpu.stop()
    finally:
        journal.close()
        checkpoints.close()
    return elapsed, stats.as_dict(), used


def _stored(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "journal.db")
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser("cloudtrail", __doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records to generate (default 100000)")
    parser.add_argument("--records-per-file", type=int, default=1_000, help="records in one log file (default 1000)")
    args = parser.parse_args(argv)
    if args.records < 1 or args.records_per_file < 1:
        parser.error("--records and --records-per-file must be positive")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        endpoint, stop = start_s3()
    except RuntimeError as exc:
        print(f"bench.cloudtrail: {exc}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-cloudtrail-"))
    try:
        settings = Settings(data_dir=work)
        files = make_files(args.records, args.records_per_file)
        size = sum(len(body) for _, body in files)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), files))
        print(
            f"generated {args.records} records in {len(files)} gzip files ({size / 1e6:.1f} MB compressed), "
            f"uploaded to {endpoint}"
        )
        elapsed, summary, used = asyncio.run(_import(s3, bucket, work, settings))
        gc.unfreeze()
        stored = _stored(work)
        rate = args.records / elapsed
        print(
            f"imported: files {summary['files']}, records {summary['records']}, imported {summary['imported']}, "
            f"duplicates {summary['duplicates']}, skipped {summary['skipped'] or 'none'}, "
            f"malformed {len(summary['malformed_files'])}; journal holds {stored} events"
        )
        print(f"time: {elapsed:.2f} s from S3 objects to committed events")
        print(
            f"cpu meanwhile: this process {used.seconds['own']:.2f} s, S3 server {used.seconds['s3 server']:.2f} s, "
            f"other processes {used.other:.2f} s (of {os.cpu_count()} CPUs x {elapsed:.2f} s)"
        )
        print(f"rate: {rate:,.0f} records/s (target >= {TARGET_RECORDS_PER_S:,.0f} records/s): ", end="")
        if stored != args.records or summary["imported"] != args.records:
            print("ERROR, not every record was stored")
            return 1
        met = rate >= TARGET_RECORDS_PER_S
        print("met" if met else "MISSED")
    finally:
        stop()
        shutil.rmtree(work, ignore_errors=True)
    return print_results([at_least("cloudtrail_records_per_s", rate, "records/s", TARGET_RECORDS_PER_S)])


if __name__ == "__main__":
    sys.exit(main())
