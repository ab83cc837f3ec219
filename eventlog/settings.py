"""The one settings object, built once in the composition root and passed down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventlog.tenant import TenantName, check_tenant

SyslogFacility = Literal[
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "audit",
    "alert",
    "clock",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
]


def _tenant_or_all(value: str) -> str:
    return value if value == "*" else check_tenant(value)


class Section(BaseModel):
    """The fields of Settings that share `PREFIX`, without it: what one component takes.

    Settings validates them; a section is a typed view built from it (`Settings.opensearch`, ...),
    and a unit test keeps its fields equal to Settings' fields of that prefix.
    """

    model_config = ConfigDict(frozen=True)
    PREFIX: ClassVar[str]
    TITLE: ClassVar[str]


class OpenSearchSettings(Section):
    PREFIX = "opensearch_"
    TITLE = "OpenSearch"
    url: str | None
    username: str | None
    password: SecretStr | None
    ca_file: Path | None
    verify_tls: bool
    aws_region: str | None
    index_prefix: str
    shards: int
    replicas: int
    timeout_seconds: float
    bulk_max_bytes: int


class SyslogSettings(Section):
    PREFIX = "syslog_"
    TITLE = "Syslog"
    url: str | None
    ca_file: Path | None
    verify_tls: bool
    facility: SyslogFacility
    app_name: str
    hostname: str
    sd_id: str
    message_format: Literal["json", "plain"]
    framing: Literal["octet-counting", "newline"]
    max_message_bytes: int
    udp_max_message_bytes: int
    timeout_seconds: float
    confirm_seconds: float


class CloudTrailSettings(Section):
    PREFIX = "cloudtrail_"
    TITLE = "CloudTrail"
    account_tenants: Mapping[str, str]
    endpoint_url: str | None
    bucket: str | None
    prefix: str
    poll_interval_seconds: float
    sqs_queue_url: str | None
    digest_public_keys: Mapping[str, str]
    require_digest: bool


class ReadSettings(Section):
    PREFIX = "read_"
    TITLE = "Reads"
    deadline_seconds: float
    threads: int
    tenant_concurrent_reads: int
    tenant_queued_reads: int


class ArchiveSettings(Section):
    PREFIX = "archive_"
    TITLE = "Archive"
    bucket: str | None
    prefix: str
    tenants: Sequence[str]
    endpoint_url: str | None


class RetentionSettings(Section):
    PREFIX = "retention_"
    TITLE = "Retention"
    days: int
    tenant_days: Mapping[str, int]
    interval_hours: float


class LimitSettings(Section):
    """What one request and one event may hold."""

    PREFIX = "max_"
    TITLE = "Limits"
    future_seconds: int
    event_bytes: int
    request_bytes: int
    request_events: int
    details_depth: int
    details_key_chars: int
    request_discard_bytes: int


SECTIONS: tuple[type[Section], ...] = (
    RetentionSettings,
    ArchiveSettings,
    LimitSettings,
    ReadSettings,
    OpenSearchSettings,
    SyslogSettings,
    CloudTrailSettings,
)
S = TypeVar("S", bound=Section)


class Settings(BaseSettings):
    """Every knob of eventlog; environment variables use the ``EVENTLOG_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="EVENTLOG_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        Path("data"),
        description="Directory holding the journal, the embedded search store, tokens and the signing key.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port the HTTP server listens on.")
    stream: str = Field(
        "",
        max_length=64,
        description="Name of this node's hash-chain stream; empty means the host name.",
    )
    ack: Literal["local", "replicated"] = Field(
        "local",
        description="When an event is acknowledged (201): `local` once this node's journal committed it (fsync); `replicated` only once OpenSearch holds it too, with every configured copy of its shard active (needs EVENTLOG_OPENSEARCH_URL), so that losing this node's disk loses no acknowledged event.",
    )
    ack_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="With EVENTLOG_ACK=replicated: how long a request waits for OpenSearch's copies before it answers 503 (the events stay committed on the node and reach OpenSearch later; retry with the same client ids).",
    )
    retention_days: int = Field(
        14,
        ge=1,
        le=3650,
        description="Days events are kept: older ones are refused at ingest, and retention removes every UTC day that ended this many days ago or more from every store.",
    )
    retention_tenant_days: dict[TenantName, int] = Field(
        default_factory=dict,
        description='Per-tenant retention in days, overriding retention_days, JSON object (e.g. {"acme": 90}).',
    )
    retention_interval_hours: float = Field(
        24.0,
        ge=0,
        description="How often the service runs retention, in hours (one node of a cluster does it); 0 turns the in-service run off.",
    )
    archive_bucket: str | None = Field(
        None,
        description="S3 bucket expiring events are archived to (gzip NDJSON per tenant and day, with a manifest) before they are deleted; unset means no archive.",
    )
    archive_prefix: str = Field(
        "eventlog-archive",
        pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,200}$",
        description="Key prefix of the archive objects in the bucket.",
    )
    archive_tenants: list[Annotated[str, AfterValidator(_tenant_or_all)]] = Field(
        default_factory=list,
        description='Tenants whose events are archived before they expire, JSON list; ["*"] means every tenant.',
    )
    archive_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint URL of the archive (an S3-compatible server); default: AWS S3 through boto3's configuration.",
    )
    max_future_seconds: int = Field(
        300, ge=0, description="How far in the future an event's `time` may lie, in seconds."
    )
    max_event_bytes: int = Field(65_536, ge=1_024, description="Largest accepted event, as JSON, in bytes.")
    max_request_bytes: int = Field(5 * 1024 * 1024, ge=1_024, description="Largest accepted request body, in bytes.")
    max_request_events: int = Field(1_000, ge=1, description="Most events accepted in one request.")
    max_details_depth: int = Field(8, ge=1, le=32, description="Deepest nesting allowed inside `details`.")
    max_details_key_chars: int = Field(
        256,
        ge=1,
        le=1024,
        description="Longest key anywhere inside `details`, in characters; OpenSearch indexes each key path with its value as one term (at most 32 766 bytes).",
    )
    max_request_discard_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="How much of a body above max_request_bytes is still read and thrown away, in bytes, so that a client that sends its whole body before reading (no `Expect: 100-continue`) can read the 413; a larger body is answered at once.",
    )
    group_commit_max_events: int = Field(
        5_000, ge=1, description="Most events the journal writer commits in one transaction."
    )
    checkpoint_interval_seconds: float = Field(
        300.0, gt=0, description="How often the node signs a checkpoint of its chain, in seconds."
    )
    cursor_key_file: Path | None = Field(
        None,
        description="File holding the secret (32 bytes or more, e.g. `openssl rand -hex 32`) that signs search "
        "cursors; every node behind one load balancer needs the same one. Unset: cursor.key in the data dir, "
        "created on first start (mode 0600).",
    )
    fanout_batch_events: int = Field(2_000, ge=1, description="Most events a sink receives in one delivery.")
    fanout_poll_seconds: float = Field(
        1.0, gt=0, description="Longest a sink loop sleeps before looking for new events, in seconds."
    )
    fanout_max_backoff_seconds: float = Field(
        30.0, gt=0, description="Longest wait between two retries of a failing sink, in seconds."
    )
    auth_failure_limit: int = Field(
        10,
        ge=1,
        description="Failed authentications from one client network after which its failing credentials get 429.",
    )
    auth_failure_window_seconds: float = Field(
        300.0, gt=0, description="Window in which failed authentications are counted, in seconds."
    )
    auth_failure_max_networks: int = Field(
        100_000,
        ge=1,
        description="Most client networks (IPv4 addresses, IPv6 /64s) the failed-authentication limit tracks.",
    )
    tail_token_recheck_seconds: float = Field(
        5.0, gt=0, le=60, description="How often a live tail checks that its token is still valid, in seconds."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxy addresses (or CIDRs) whose X-Forwarded-For is believed; JSON list.",
    )
    log_level: str = Field("INFO", description="Level of the service's JSON logs (DEBUG, INFO, WARNING, ERROR).")
    bootstrap_tenant: TenantName = Field(
        "default", description="Tenant of the admin token printed when the service starts with no tokens."
    )

    read_deadline_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Longest one read of the search store may run (a page of a search or an export, a histogram, facets), in seconds; a read stopped at it answers 400 read_deadline_exceeded, which tells to narrow the query or the time range.",
    )
    read_threads: int = Field(
        8, ge=1, le=256, description="Threads that run the reads of the search store; reads use no others."
    )
    read_tenant_concurrent_reads: int = Field(
        2,
        ge=1,
        description="Reads one tenant may run at once, at most read_threads; below it, the other tenants' reads find a free thread while one tenant's reads are slow.",
    )
    read_tenant_queued_reads: int = Field(
        32,
        ge=0,
        description="Reads of one tenant that may wait for one of its running reads to end, each at most read_deadline_seconds; one more, or a longer wait, answers 429 with Retry-After.",
    )

    opensearch_url: str | None = Field(
        None, description="OpenSearch base URL (http[s]://host:port); when set, OpenSearch is the search store."
    )
    opensearch_username: str | None = Field(None, description="OpenSearch basic-auth user name.")
    opensearch_password: SecretStr | None = Field(None, description="OpenSearch basic-auth password.")
    opensearch_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that signs the OpenSearch certificate; default: the system store."
    )
    opensearch_verify_tls: bool = Field(True, description="Verify the OpenSearch TLS certificate and host name.")
    opensearch_aws_region: str | None = Field(
        None,
        description="Sign requests with AWS SigV4 for Amazon OpenSearch Service in this region (boto3 credentials).",
    )
    opensearch_index_prefix: str = Field(
        "eventlog",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$",
        description="Prefix of the daily indices (<prefix>-events-YYYY.MM.DD), the alias and the template.",
    )
    opensearch_shards: int = Field(1, ge=1, le=64, description="Primary shards of each daily index.")
    opensearch_replicas: int = Field(0, ge=0, le=8, description="Replicas of each daily index; raise it on a cluster.")
    opensearch_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one OpenSearch request, in seconds.")
    opensearch_bulk_max_bytes: int = Field(
        5 * 1024 * 1024, ge=65_536, description="Largest _bulk request body the sink sends, in bytes."
    )
    journal_keep_delivered_hours: float = Field(
        24.0,
        ge=0,
        description="With OpenSearch as the store, delivered events stay in the journal this long, in hours; undelivered ones always stay.",
    )

    syslog_url: str | None = Field(
        None,
        pattern=r"^syslog\+(tls|tcp|udp)://[^/?#@\s]+/?$",
        description="Syslog receiver (syslog+tls://host:port, syslog+tcp://host:port or syslog+udp://host:port); when set, every event is also forwarded there.",
    )
    syslog_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that signs the syslog receiver's certificate; default: the system store."
    )
    syslog_verify_tls: bool = Field(True, description="Verify the syslog receiver's TLS certificate and host name.")
    syslog_facility: SyslogFacility = Field(
        "local0",
        description="Facility of every syslog message, by name: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0 to local7.",
    )
    syslog_app_name: str = Field(
        "eventlog",
        pattern=r"^[!-~]{1,48}$",
        description="APP-NAME of every syslog message (printable ASCII, at most 48).",
    )
    syslog_hostname: str = Field(
        "", pattern=r"^[!-~]{0,255}$", description="HOSTNAME of every syslog message; empty means the host name."
    )
    syslog_sd_id: str = Field(
        "eventlog@32473",
        pattern=r"^[A-Za-z0-9._-]{1,20}@[0-9]{1,10}$",
        description="SD-ID of the structured-data element, name@PEN with an IANA private enterprise number (32473 is the one reserved for examples).",
    )
    syslog_message_format: Literal["json", "plain"] = Field(
        "json", description="MSG of a syslog message: json (the whole event, compact) or plain (its message text)."
    )
    syslog_framing: Literal["octet-counting", "newline"] = Field(
        "octet-counting",
        description="Framing over TCP and TLS: octet-counting (RFC 6587) or newline for receivers that want it.",
    )
    syslog_max_message_bytes: int = Field(
        8192,
        ge=480,
        le=1_048_576,
        description="Longest syslog message over TCP and TLS, in bytes; longer ones are truncated (Papertrail takes 100000).",
    )
    syslog_udp_max_message_bytes: int = Field(
        1024, ge=480, le=65_000, description="Longest syslog message over UDP, in bytes; longer ones are truncated."
    )
    syslog_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest the syslog receiver may take to accept a connection, or to take or acknowledge more of a batch, in seconds.",
    )
    syslog_confirm_seconds: float = Field(
        0.05,
        ge=0,
        le=10,
        description="A batch counts as delivered once the receiver acknowledged every byte and kept the connection open this much longer, in seconds.",
    )

    cloudtrail_account_tenants: dict[str, TenantName] = Field(
        default_factory=dict,
        description="CloudTrail import: AWS account id -> tenant its records are stored in, JSON object; records of other accounts are skipped.",
    )
    cloudtrail_endpoint_url: str | None = Field(
        None,
        description="CloudTrail import: S3 endpoint URL (an S3-compatible server); default: AWS S3 through boto3's configuration.",
    )

    cloudtrail_bucket: str | None = Field(
        None,
        description="CloudTrail poll: S3 bucket the service imports CloudTrail log files from, every cloudtrail_poll_interval_seconds; unset means no poll.",
    )
    cloudtrail_prefix: str = Field(
        "", description="CloudTrail poll: key prefix in the bucket under which the AWSLogs/ folder lies."
    )
    cloudtrail_poll_interval_seconds: float = Field(
        300.0, gt=0, description="CloudTrail poll: pause between two imports, in seconds."
    )
    cloudtrail_sqs_queue_url: str | None = Field(
        None,
        description="CloudTrail poll from a queue: URL of an SQS queue of S3 event notifications (S3 -> SQS, S3 -> SNS -> SQS, or the trail's own SNS notifications) about cloudtrail_bucket; when set, the poll long-polls it and imports the files the notifications name instead of listing the bucket. The queue URL's host is the SQS endpoint.",
    )
    cloudtrail_digest_public_keys: dict[str, str] = Field(
        default_factory=dict,
        description="CloudTrail digest validation: public key fingerprint -> key, JSON object; the key as `aws cloudtrail list-public-keys` prints it (base64 DER), PEM, or the path of a file holding either. When set, digest files are verified and every log file is checked against them.",
    )
    cloudtrail_require_digest: bool = Field(
        False,
        description="CloudTrail digest validation: import a log file only once a valid digest file lists it and its hash matches; otherwise a log file no digest lists yet is imported and counted as unvalidated.",
    )

    @model_validator(mode="after")
    def _replicated_needs_opensearch(self) -> Settings:
        if self.ack == "replicated" and self.opensearch_url is None:
            raise ValueError(
                "EVENTLOG_ACK=replicated waits for OpenSearch's copies: set EVENTLOG_OPENSEARCH_URL, or use"
                " EVENTLOG_ACK=local"
            )
        return self

    @model_validator(mode="after")
    def _tenant_share_fits(self) -> Settings:
        if self.read_tenant_concurrent_reads > self.read_threads:
            raise ValueError(
                f"read_tenant_concurrent_reads ({self.read_tenant_concurrent_reads}) must not exceed "
                f"read_threads ({self.read_threads}): one tenant's share is part of the read threads"
            )
        return self

    def section(self, kind: type[S]) -> S:
        """The fields of `kind`'s prefix as that section."""
        return kind(**{name: getattr(self, kind.PREFIX + name) for name in kind.model_fields})

    @property
    def opensearch(self) -> OpenSearchSettings:
        return self.section(OpenSearchSettings)

    @property
    def syslog(self) -> SyslogSettings:
        return self.section(SyslogSettings)

    @property
    def cloudtrail(self) -> CloudTrailSettings:
        return self.section(CloudTrailSettings)

    @property
    def reads(self) -> ReadSettings:
        return self.section(ReadSettings)

    @property
    def archive(self) -> ArchiveSettings:
        return self.section(ArchiveSettings)

    @property
    def retention(self) -> RetentionSettings:
        return self.section(RetentionSettings)

    @property
    def limits(self) -> LimitSettings:
        return self.section(LimitSettings)

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"

    @property
    def search_path(self) -> Path:
        return self.data_dir / "search.db"

    @property
    def tokens_path(self) -> Path:
        return self.data_dir / "tokens.db"

    def retention_days_for(self, tenant: str) -> int:
        return self.retention_tenant_days.get(tenant, self.retention_days)

    @property
    def holds_path(self) -> Path:
        return self.data_dir / "holds.db"

    @property
    def retention_path(self) -> Path:
        return self.data_dir / "retention.db"

    @property
    def cloudtrail_path(self) -> Path:
        return self.data_dir / "cloudtrail.db"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "signing.key"

    @property
    def cursor_key_path(self) -> Path:
        return self.cursor_key_file or self.data_dir / "cursor.key"
