"""docker-compose.yml, the Dockerfile and deploy/: what can be checked without a Docker engine.

No Docker engine runs on the project's machines, so the stack is never started here. These
tests hold the files to the code instead: the compose file parses and wires every service
with health checks and ordered start-up, every host path it mounts exists, every EVENTLOG_*
variable it sets is a valid setting, the two eventlog nodes differ only in their stream and
volume, the two OpenSearch nodes form one cluster, HAProxy reads the deploy/haproxy.cfg the
HAProxy tests run, the rsyslog configuration it mounts is the one the `syslog` tests run, and
the Dockerfile copies what `pip install .` needs. (It was
validated once with Docker Compose v2.40 `config`; Debian's docker-compose 1.29 predates the
Compose Specification and cannot read it.)
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from eventlog.app.cli import build_parser
from eventlog.settings import Settings
from tests.haproxy import CONFIG as HAPROXY_CONFIG
from tests.haproxy import SERVERS as HAPROXY_SERVERS
from tests.opensearch_node import DEFAULT_VERSION
from tests.syslog_receivers import (
    MAX_MESSAGE_BYTES,
    RSYSLOG_OUTPUT_VARIABLE,
    RSYSLOG_SHARED_CONFIG,
    ReceiverUnavailable,
    _rsyslog_binary,
    _rsyslog_config,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
EVENTLOG_NODES = ("eventlog-a", "eventlog-b")
OPENSEARCH_NODES = ("opensearch", "opensearch-2")
LONG_RUNNING = {*OPENSEARCH_NODES, "opensearch-dashboards", "rsyslog", "s3", *EVENTLOG_NODES, "lb"}
ONE_SHOT = {"s3-init", "dashboards-import"}
SHARED_IN_CONTAINER = "/etc/rsyslog.d/eventlog.conf"


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return compose


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _environment(service: str) -> dict[str, str]:
    env = _services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping, so that a merge key can share it"
    return {str(k): str(v) for k, v in env.items()}


def _mounts(service: str) -> list[tuple[str, str]]:
    pairs = []
    for volume in _services()[service].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        pairs.append((source, target))
    return pairs


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_the_stack_has_its_services() -> None:
    assert set(_services()) == LONG_RUNNING | ONE_SHOT


def test_long_running_services_have_health_checks() -> None:
    for name in LONG_RUNNING:
        check = _services()[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("test"), f"{name} has no healthcheck test"


def test_one_shot_services_run_once() -> None:
    for name in ONE_SHOT:
        assert _services()[name].get("restart") == "no", name


def test_start_up_waits_for_health_and_completion() -> None:
    services = _services()
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, (name, target)
            waits_for = rule["condition"]
            if waits_for == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            else:
                assert waits_for == "service_completed_successfully", (name, target, waits_for)
                assert target in ONE_SHOT, (name, target)

    def condition(name: str, target: str) -> str:
        return str(services[name]["depends_on"][target]["condition"])

    assert condition("opensearch-dashboards", "opensearch") == "service_healthy"
    for node in EVENTLOG_NODES:
        for opensearch in OPENSEARCH_NODES:
            assert condition(node, opensearch) == "service_healthy"
        assert condition(node, "rsyslog") == "service_healthy"
        assert condition(node, "s3-init") == "service_completed_successfully"
        assert condition("lb", node) == "service_healthy"
    assert condition("s3-init", "s3") == "service_healthy"
    assert condition("dashboards-import", "opensearch-dashboards") == "service_healthy"


def test_every_host_path_and_build_context_exists() -> None:
    named = set(_compose().get("volumes") or {})
    for name, service in _services().items():
        for source, _ in _mounts(name):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in named, f"{name} uses volume {source}, not declared under volumes:"
        if "build" in service:
            context = REPO / str(service["build"])
            assert (context / "Dockerfile").is_file(), f"{name} builds {context} without a Dockerfile"


def test_eventlog_variables_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = set(Settings.model_fields)
    for name in _services():
        for variable in _environment(name):
            if variable.startswith("EVENTLOG_"):
                field = variable.removeprefix("EVENTLOG_").lower()
                assert field in fields, f"{name}: {variable} is not a setting of eventlog.settings.Settings"
    for variable in list(os.environ):
        if variable.startswith("EVENTLOG_"):
            monkeypatch.delenv(variable)
    for variable, value in _environment("eventlog-a").items():
        monkeypatch.setenv(variable, value)
    settings = Settings()  # validates every value as the container will

    def host_port(url: str | None) -> tuple[str | None, int | None]:
        split = urlsplit(url or "")
        return split.hostname, split.port

    assert host_port(settings.opensearch_url) == ("opensearch", 9200)
    assert host_port(settings.syslog_url) == ("rsyslog", 514)
    assert host_port(settings.cloudtrail_endpoint_url) == ("s3", 5000)
    assert host_port(settings.archive_endpoint_url) == ("s3", 5000)
    assert settings.stream, "a fixed stream name, so a recreated container goes on with its chain"
    assert settings.opensearch.replicas >= 1, "a copy of each shard on the second OpenSearch node"
    lb_address = _services()["lb"]["networks"]["default"]["ipv4_address"]
    assert settings.trusted_proxies == [lb_address], "the nodes believe HAProxy's X-Forwarded-For, and only its"
    buckets_made = " ".join(str(part) for part in _services()["s3-init"]["command"])
    for bucket in (settings.cloudtrail_bucket, settings.archive_bucket):
        assert bucket
        assert f'"{bucket}"' in buckets_made, f"s3-init does not create the bucket {bucket}"


def test_syslog_url_reaches_an_input_of_the_mounted_rsyslog_config() -> None:
    config = (REPO / "deploy" / "rsyslog" / "rsyslog.conf").read_text()
    ports = set(re.findall(r'input\(type="im(?:tcp|udp)" port="(\d+)"', config))
    assert ports == {"514"}
    for node in EVENTLOG_NODES:
        assert _environment(node)["EVENTLOG_SYSLOG_URL"] == "syslog+tcp://rsyslog:514"


def test_rsyslog_mounts_the_receiving_config_the_syslog_tests_run() -> None:
    mounts = dict(_mounts("rsyslog"))
    assert mounts["./deploy/rsyslog/eventlog.conf"] == SHARED_IN_CONTAINER
    assert (REPO / "deploy/rsyslog/eventlog.conf").resolve() == RSYSLOG_SHARED_CONFIG
    assert mounts["./deploy/rsyslog/rsyslog.conf"] == "/etc/rsyslog.conf"
    assert f'include(file="{SHARED_IN_CONTAINER}")' in (REPO / "deploy/rsyslog/rsyslog.conf").read_text()
    generated = _rsyslog_config(Path("/work"), (1, 2, 3), Path("c.pem"), Path("k.pem"), Path("ca.pem"))
    assert f'include(file="{RSYSLOG_SHARED_CONFIG}")' in generated
    # Both name the output file through the same variable, which the shared file reads.
    assert RSYSLOG_OUTPUT_VARIABLE in _environment("rsyslog")
    assert f"`echo ${RSYSLOG_OUTPUT_VARIABLE}`" in RSYSLOG_SHARED_CONFIG.read_text()
    assert f'maxMessageSize="{MAX_MESSAGE_BYTES}"' in RSYSLOG_SHARED_CONFIG.read_text()


@pytest.mark.syslog
def test_rsyslog_accepts_the_compose_config(tmp_path: Path) -> None:
    """rsyslogd -N1 checks a configuration without starting: the compose one, with paths of this machine."""
    try:
        binary = _rsyslog_binary()
    except ReceiverUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    config = (REPO / "deploy/rsyslog/rsyslog.conf").read_text()
    config = config.replace(SHARED_IN_CONTAINER, str(RSYSLOG_SHARED_CONFIG)).replace(
        "/var/spool/rsyslog", str(tmp_path)
    )
    (tmp_path / "rsyslog.conf").write_text(config)
    env = {**os.environ, RSYSLOG_OUTPUT_VARIABLE: str(tmp_path / "received.json")}
    check = subprocess.run(
        [binary, "-N1", "-f", str(tmp_path / "rsyslog.conf")], capture_output=True, text=True, env=env, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_dashboards_import_runs_the_cli_against_the_dashboards_service() -> None:
    service = _services()["dashboards-import"]
    command = service["command"]
    assert command[0] == "eventlog"
    args = build_parser().parse_args(command[1:])
    split = urlsplit(args.url)
    assert (split.hostname, split.port) == ("opensearch-dashboards", 5601)
    assert "127.0.0.1:5601:5601" in _services()["opensearch-dashboards"]["ports"]
    assert args.wait_seconds > 0
    # The objects must point at the alias the service writes to.
    prefix = "EVENTLOG_OPENSEARCH_INDEX_PREFIX"
    assert _environment("dashboards-import").get(prefix) == _environment("eventlog-a").get(prefix)


def test_images_are_pinned_to_the_tested_opensearch_line() -> None:
    tested = ".".join(DEFAULT_VERSION.split(".")[:2])  # tests/opensearch_node.py's 2.19
    for name, service in _services().items():
        image = str(service.get("image", ""))
        assert image, f"{name} has no image name"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: pin {image} to a version"
        assert tag not in ("", "latest"), f"{name}: pin {image} to a version"
        if repository.startswith("opensearchproject/"):
            assert tag.startswith(tested + "."), f"{name}: {image}, the tests run OpenSearch {DEFAULT_VERSION}"
    opensearch = _services()["opensearch"]["image"].rpartition(":")[2]
    assert _services()["opensearch-dashboards"]["image"].rpartition(":")[2] == opensearch
    assert _environment("opensearch")["DISABLE_SECURITY_PLUGIN"] == "true"
    assert _environment("opensearch-dashboards")["DISABLE_SECURITY_DASHBOARDS_PLUGIN"] == "true"


def test_dockerfile_copies_what_pip_install_needs() -> None:
    instructions = _dockerfile_instructions(REPO / "Dockerfile")
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for word, rest in instructions:
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f".dockerignore drops {source}"
                copied.add(source)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"pip install . needs {sorted(packages - copied)}"
    assert pyproject["project"]["readme"] in copied

    def last(word: str) -> str:
        return [rest for w, rest in instructions if w == word][-1]

    assert last("FROM") == "python:3.12-slim"
    assert last("USER") not in ("root", "0")
    assert last("EXPOSE") == "8080"
    assert "127.0.0.1:8080:8080" in _services()["lb"]["ports"]
    assert "/healthz" in last("HEALTHCHECK")
    assert json.loads(last("CMD"))[:4] == ["eventlog", "serve", "--host", "0.0.0.0"]  # exec form


def test_eventlog_nodes_differ_only_in_stream_and_volume() -> None:
    a, b = (_environment(node) for node in EVENTLOG_NODES)
    assert a["EVENTLOG_STREAM"] != b["EVENTLOG_STREAM"], "each node's journal is its own hash-chain stream"
    assert {k: v for k, v in a.items() if k != "EVENTLOG_STREAM"} == {
        k: v for k, v in b.items() if k != "EVENTLOG_STREAM"
    }
    assert a["EVENTLOG_OPENSEARCH_URL"] == "http://opensearch:9200"
    volumes = [dict(_mounts(node)) for node in EVENTLOG_NODES]
    sources = [source for mounts in volumes for source, target in mounts.items() if target == a["EVENTLOG_DATA_DIR"]]
    assert len(set(sources)) == 2, f"each node its own data volume, not {sources}"
    services = _services()
    for key in ("build", "image", "healthcheck", "depends_on", "restart"):
        assert services["eventlog-a"][key] == services["eventlog-b"][key], key
    for node in EVENTLOG_NODES:
        assert "ports" not in services[node], f"{node} is reached through lb only"


def test_opensearch_nodes_form_one_cluster() -> None:
    envs = [_environment(node) for node in OPENSEARCH_NODES]
    names = [env["node.name"] for env in envs]
    assert len(set(names)) == 2
    for env in envs:
        assert "discovery.type" not in env, "single-node discovery would make two clusters"
        assert env["cluster.name"] == envs[0]["cluster.name"]
        assert env["discovery.seed_hosts"].split(",") == list(OPENSEARCH_NODES)
        assert env["cluster.initial_cluster_manager_nodes"].split(",") == names
    services = _services()
    assert services["opensearch"]["image"] == services["opensearch-2"]["image"]
    data = [dict(_mounts(node)) for node in OPENSEARCH_NODES]
    sources = {source for mounts in data for source, target in mounts.items() if target == "/usr/share/opensearch/data"}
    assert len(sources) == 2, "each node its own data volume"


def test_lb_runs_the_haproxy_config_the_tests_run() -> None:
    lb = _services()["lb"]
    mounts = dict(_mounts("lb"))
    assert mounts["./deploy/haproxy.cfg"] == "/usr/local/etc/haproxy/haproxy.cfg"  # the image's default path
    assert (REPO / "deploy/haproxy.cfg").resolve() == HAPROXY_CONFIG
    env = _environment("lb")
    config = "\n".join(line for line in HAPROXY_CONFIG.read_text().splitlines() if not line.lstrip().startswith("#"))
    read = set(re.findall(r'"\$\{(\w+)\}"', config))
    assert read == set(env), f"deploy/haproxy.cfg reads {sorted(read)}; lb sets {sorted(env)}"
    # One server line per eventlog node, in the order tests/haproxy.py fills them.
    servers = re.findall(r'^\s*server (\w+) "\$\{(LB_NODE\d)\}"', config, flags=re.MULTILINE)
    assert [name for name, _ in servers] == list(HAPROXY_SERVERS)
    assert [env[variable] for _, variable in servers] == [f"{node}:8080" for node in EVENTLOG_NODES]
    assert "http-check send meth GET uri /readyz" in config
    assert env["LB_BIND"] == ":8080"
    assert "127.0.0.1:8080:8080" in lb["ports"]
    stats_port = env["LB_STATS_BIND"].rpartition(":")[2]
    assert f"127.0.0.1:{stats_port}:{stats_port}" in lb["ports"]
    subnet = _compose()["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(lb["networks"]["default"]["ipv4_address"]) in ipaddress.ip_network(subnet)
