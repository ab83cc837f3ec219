"""The OpenSearch client, built from Settings: basic auth, TLS with a CA file, or AWS SigV4."""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch, RequestsHttpConnection

from eventlog.settings import OpenSearchSettings


def build_client(settings: OpenSearchSettings) -> OpenSearch:
    if settings.url is None:
        raise ValueError("EVENTLOG_OPENSEARCH_URL is not set")
    options: dict[str, Any] = {
        "hosts": [settings.url],
        "timeout": settings.timeout_seconds,
        # The fan-out retries with backoff and keeps its cursor; the client must not retry on its own.
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": settings.verify_tls,
        "ssl_show_warn": settings.verify_tls,
        "http_compress": False,
        # API reads and the sink's bulks share the client; one pooled connection would churn.
        "pool_maxsize": 16,
    }
    if settings.ca_file is not None:
        options["ca_certs"] = str(settings.ca_file)
    if settings.aws_region:
        import boto3
        from opensearchpy import AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ValueError("EVENTLOG_OPENSEARCH_AWS_REGION is set but boto3 finds no AWS credentials")
        options["http_auth"] = AWSV4SignerAuth(credentials, settings.aws_region, "es")
        options["connection_class"] = RequestsHttpConnection
    elif settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        options["http_auth"] = (settings.username, password)
    return OpenSearch(**options)
