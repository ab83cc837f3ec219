"""Real syslog receivers for integration tests: rsyslog and syslog-ng from Debian packages.

Each receiver runs unprivileged in the foreground with its own configuration,
pid, state and output files under a work directory, listening on free
loopback ports: plain TCP, TLS and UDP. It writes every message it receives
as one JSON line with the RFC 5424 fields it parsed; `Receiver.received()`
reads them back in one shape for both:

    pri, facility, severity (int), timestamp (str), hostname, app_name,
    procid, msgid, structured_data (the raw SD text as the receiver shows it),
    sd ({sd-id: {name: value}}, values unescaped by the receiver),
    msg (str, without the BOM), bom (whether the receiver kept a BOM in msg).

rsyslog's receiving part (parse, JSON template, output file) is deploy/rsyslog/eventlog.conf,
the file docker-compose.yml mounts into its rsyslog container; the configuration written here
adds only the work directory and the loopback inputs around it.

rsyslog comes from `apt-get install rsyslog rsyslog-gnutls`. syslog-ng-core
conflicts with rsyslog in Debian (both provide system-log-daemon), so when no
`syslog-ng` is installed the tests run the binary from the package unpacked
by scripts/provision.sh into $EVENTLOG_CACHE_DIR/syslog-ng/root (default
~/.cache/eventlog), with its libraries and modules from there.

`start_receiver()` raises ReceiverUnavailable, saying what to install, when a
receiver cannot be started.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.processes import terminate

__all__ = ["Receiver", "ReceiverKind", "ReceiverUnavailable", "TlsFiles", "make_tls_files", "start_receiver"]

ReceiverKind = Literal["rsyslog", "syslog-ng"]

RSYSLOG_HINT = (
    "rsyslog with TLS is needed for the `syslog` tests: `apt-get install rsyslog rsyslog-gnutls` "
    "(or run scripts/provision.sh as root)."
)
SYSLOG_NG_HINT = (
    "syslog-ng is needed for the `syslog` tests: run scripts/provision.sh as root (it installs syslog-ng's "
    "libraries and unpacks the syslog-ng-core package into $EVENTLOG_CACHE_DIR/syslog-ng, since it conflicts "
    "with rsyslog), or `apt-get install syslog-ng-core` on a machine without rsyslog."
)
START_TIMEOUT_S = 20.0
# The receiving part of rsyslog's configuration (parse, template, output file) is the file
# docker-compose.yml mounts into its rsyslog container; the output file comes from this variable.
RSYSLOG_SHARED_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "rsyslog" / "eventlog.conf"
RSYSLOG_OUTPUT_VARIABLE = "RSYSLOG_RECEIVED_FILE"
STOP_TIMEOUT_S = 20.0
MAX_MESSAGE_BYTES = 262_144


class ReceiverUnavailable(RuntimeError):
    """The receiver could not be started; the message says what to install or where its log is."""


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, a server certificate for localhost / 127.0.0.1, and one for another host, all PEM."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """ECDSA keys: a CA signs certificates and CRLs, a server signs and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, names: list[x509.GeneralName], now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = str(names[0].value)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventlog test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server, server_key = _leaf(
        ca_key, ca_name, [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], now
    )
    wrong, wrong_key = _leaf(ca_key, ca_name, [x509.DNSName("wrong.example")], now)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        wrong_host_cert=directory / "wrong-host.pem",
        wrong_host_key=directory / "wrong-host.key",
    )
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.wrong_host_cert.write_bytes(wrong.public_bytes(serialization.Encoding.PEM))
    _write_key(files.server_key, server_key)
    _write_key(files.wrong_host_key, wrong_key)
    return files


# -- receivers ----------------------------------------------------------------------------------


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports() -> tuple[int, int, int]:
    """TCP, TLS and UDP ports; the UDP one is also free for TCP so that the three differ."""
    tcp, tls = _free_port(), _free_port()
    while tls == tcp:
        tls = _free_port()
    udp = _free_port(socket.SOCK_DGRAM)
    while udp in (tcp, tls):
        udp = _free_port(socket.SOCK_DGRAM)
    return tcp, tls, udp


def _rsyslog_config(work: Path, ports: tuple[int, int, int], cert: Path, key: Path, ca: Path) -> str:
    """Inputs on loopback (plain TCP, TLS, UDP) around the receiving part docker-compose.yml mounts too."""
    tcp, tls, udp = ports
    tls_driver = (
        f'streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon" '
        f'streamDriver.CAFile="{ca}" streamDriver.CertFile="{cert}" streamDriver.KeyFile="{key}"'
    )
    return f"""
global(workDirectory="{work}")
include(file="{RSYSLOG_SHARED_CONFIG}")
module(load="imtcp" maxSessions="200")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="received" maxFrameSize="{MAX_MESSAGE_BYTES}")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="received" maxFrameSize="{MAX_MESSAGE_BYTES}" {tls_driver})
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="received")
"""


def _syslog_ng_config(work: Path, ports: tuple[int, int, int], cert: Path, key: Path) -> str:
    tcp, tls, udp = ports
    template = (
        "$(format-json --scope none --key .SDATA.* pri=int64($PRI) facility=int64($FACILITY_NUM) "
        "severity=int64($LEVEL_NUM) timestamp=${S_ISODATE} hostname=${HOST} app_name=${PROGRAM} procid=${PID} "
        "msgid=${MSGID} structured_data=${SDATA} msg=${MESSAGE})\\n"
    )
    return f"""@version: 3.38
options {{
  log-msg-size({MAX_MESSAGE_BYTES}); frac-digits(6); keep-timestamp(yes); use-dns(no); dns-cache(no);
  stats-freq(0); keep-hostname(yes); chain-hostnames(no); log-fifo-size(100000);
}};
source s_received {{
  syslog(ip("127.0.0.1") port({tcp}) transport("tcp") max-connections(200) log-iw-size(100000));
  syslog(ip("127.0.0.1") port({tls}) transport("tls") max-connections(200) log-iw-size(100000)
         tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted)));
  syslog(ip("127.0.0.1") port({udp}) transport("udp"));
}};
destination d_received {{
  file("{work / "received.json"}" template("{template}") ts-format(iso) frac-digits(6) time-zone("UTC"));
}};
log {{ source(s_received); destination(d_received); flags(flow-control); }};
"""


def _syslog_ng_command() -> tuple[list[str], dict[str, str]]:
    """syslog-ng's command prefix and environment: the installed one, else the unpacked package."""
    installed = shutil.which("syslog-ng") or ("/usr/sbin/syslog-ng" if Path("/usr/sbin/syslog-ng").is_file() else None)
    if installed is not None:
        return [installed], dict(os.environ)
    cache = Path(os.environ.get("EVENTLOG_CACHE_DIR") or Path.home() / ".cache" / "eventlog")
    root = cache / "syslog-ng" / "root"
    binary = root / "usr" / "sbin" / "syslog-ng"
    if not binary.is_file():
        raise ReceiverUnavailable(f"no syslog-ng on PATH and none unpacked at {binary}. {SYSLOG_NG_HINT}")
    libraries = root / "usr" / "lib" / "syslog-ng"
    modules = next(iter(sorted(libraries.glob("3.*"))), None)
    if modules is None:
        raise ReceiverUnavailable(f"the syslog-ng modules are missing under {libraries}. {SYSLOG_NG_HINT}")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(libraries), env.get("LD_LIBRARY_PATH", "")) if p)
    return [str(binary), f"--module-path={modules}"], env


def _rsyslog_binary() -> str:
    found = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").is_file() else None)
    if found is None:
        raise ReceiverUnavailable(f"no rsyslogd on PATH or in /usr/sbin. {RSYSLOG_HINT}")
    return found


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _normalize(kind: ReceiverKind, raw: dict[str, Any]) -> dict[str, Any]:
    record = dict(raw)
    if kind == "rsyslog":
        for key in ("pri", "facility", "severity"):
            record[key] = int(record[key])
        sd = record.get("sd") or ""
        record["sd"] = json.loads(sd) if sd else {}
    else:
        record["sd"] = record.pop("_SDATA", {})
        for key in ("hostname", "app_name", "procid", "msgid", "structured_data", "msg"):
            record.setdefault(key, "")
    msg: str = record.get("msg", "")
    record["bom"] = msg.startswith("\ufeff")
    record["msg"] = msg.removeprefix("\ufeff")
    return record


@dataclass
class Receiver:
    """A running receiver; `received()` reads what it wrote so far."""

    kind: ReceiverKind
    work: Path
    tcp_port: int
    tls_port: int
    udp_port: int
    _command: list[str]
    _env: dict[str, str]
    _process: subprocess.Popen[bytes] | None = None
    _log_files: list[Path] = field(default_factory=list)

    @property
    def output(self) -> Path:
        return self.work / "received.json"

    @property
    def log(self) -> Path:
        return self.work / f"{self.kind}.log"

    def url(self, transport: Literal["tcp", "tls", "udp"], host: str = "127.0.0.1") -> str:
        port = {"tcp": self.tcp_port, "tls": self.tls_port, "udp": self.udp_port}[transport]
        return f"syslog+{transport}://{host}:{port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ReceiverUnavailable(
                    f"{self.kind} exited with {self._process.returncode} at start; its log {self.log}:\n"
                    f"{_tail(self.log)}\n{RSYSLOG_HINT if self.kind == 'rsyslog' else SYSLOG_NG_HINT}"
                )
            if _accepts(self.tcp_port) and _accepts(self.tls_port):
                return
            time.sleep(0.05)
        self.stop()
        raise ReceiverUnavailable(f"{self.kind} did not listen within {START_TIMEOUT_S:g} s; log:\n{_tail(self.log)}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_S)

    def restart(self, *, right_host: bool = False) -> None:
        """Stop (SIGTERM, as `systemctl restart` does) and start again on the same ports.

        `right_host`: serve the localhost certificate from now on (after `wrong_host=True`).
        """
        self.stop()
        if right_host:
            config = self.work / f"{self.kind}.conf"
            text = config.read_text().replace("wrong-host.pem", "server.pem").replace("wrong-host.key", "server.key")
            config.write_text(text)
        self.start()

    def received(self) -> list[dict[str, Any]]:
        try:
            text = self.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # A line still being written has no newline yet; leave it for the next read.
        lines = text.split("\n")[:-1]
        return [_normalize(self.kind, json.loads(line)) for line in lines if line.strip()]

    def wait_for(
        self, count: int, timeout_seconds: float = 30.0, *, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Every record once at least `count` (matching `where`) arrived; fails after the timeout."""
        deadline = time.monotonic() + timeout_seconds
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = self.received()
            if sum(1 for r in records if where is None or where(r)) >= count:
                return records
            time.sleep(0.05)
        raise AssertionError(
            f"{self.kind} received {len(records)} messages, waited for {count} within {timeout_seconds:g} s; "
            f"its log:\n{_tail(self.log)}"
        )


def start_receiver(
    kind: ReceiverKind, work: Path, tls: TlsFiles, *, wrong_host: bool = False, attempts: int = 3
) -> Receiver:
    """Start `kind` on free loopback ports, serving the localhost certificate (or the wrong host's)."""
    work.mkdir(parents=True, exist_ok=True)
    cert, key = (tls.wrong_host_cert, tls.wrong_host_key) if wrong_host else (tls.server_cert, tls.server_key)
    last: ReceiverUnavailable | None = None
    for _ in range(attempts):
        ports = _free_ports()
        config = work / f"{kind}.conf"
        if kind == "rsyslog":
            config.write_text(_rsyslog_config(work, ports, cert, key, tls.ca_cert))
            command = [_rsyslog_binary(), "-n", "-f", str(config), "-i", str(work / "rsyslog.pid")]
            env = dict(os.environ)
            env[RSYSLOG_OUTPUT_VARIABLE] = str(work / "received.json")
        else:
            config.write_text(_syslog_ng_config(work, ports, cert, key))
            prefix, env = _syslog_ng_command()
            command = [
                *prefix,
                "-F",
                "--no-caps",
                "-f",
                str(config),
                "-R",
                str(work / "syslog-ng.persist"),
                "-p",
                str(work / "syslog-ng.pid"),
                "-c",
                str(work / "syslog-ng.ctl"),
            ]
        receiver = Receiver(kind, work, *ports, _command=command, _env=env)
        try:
            receiver.start()
        except ReceiverUnavailable as exc:
            last = exc  # another process may have taken a port in between
            continue
        return receiver
    assert last is not None
    raise last
