"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests.

Its jars come from Maven Central: ``mvn`` resolves interop/kafka-broker/pom.xml into
~/.m2 and writes the classpath; nothing is committed. The broker listens on
127.0.0.1 with free ports and a temporary log directory, and is stopped at the end.

``ApacheKafka(workdir)`` has one PLAINTEXT listener. ``ApacheKafka(workdir,
security=BrokerSecurity(...))`` adds a listener per secured protocol beside it
(SASL_PLAINTEXT, and SSL and SASL_SSL when given a key store): ``bootstrap(protocol)``
is the address of each. PLAIN users live in the listeners' JAAS entries; SCRAM users
are written into the cluster metadata when the storage is formatted
(``kafka-storage format --add-scram``), so they exist before the first client
connects; OAUTHBEARER uses Kafka's unsecured-JWS validator (development only).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamcore._cluster_id import new_cluster_id

ROOT = Path(__file__).resolve().parent.parent
POM_DIR = ROOT / "interop" / "kafka-broker"

_LOG4J = """\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
"""


class ToolMissing(RuntimeError):
    """A tool the real-Kafka fixture needs (java, mvn) is not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_classpath() -> str:
    """Resolve the broker's jars with mvn (cached in ~/.m2) and return the classpath."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is required to run a real Apache Kafka broker for interop tests")
    out = POM_DIR / "target" / "classpath.txt"
    if not out.exists() or out.stat().st_mtime < (POM_DIR / "pom.xml").stat().st_mtime:
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
            cwd=POM_DIR,
            check=True,
            timeout=600,
        )
    return out.read_text().strip()


_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_LOGIN_MODULE = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}


@dataclass
class BrokerSecurity:
    """Secured listeners for ``ApacheKafka``.

    ``keystore_pem``: the broker's unencrypted PKCS#8 key followed by its certificate
    chain (PEM); with it the SSL and SASL_SSL listeners are added. ``truststore_pem``:
    the CAs that sign client certificates, which the SSL listener requires when
    ``ssl_client_auth`` is "required" (the SASL_SSL listener never asks for one).
    ``plain_users`` and ``scram_users`` map user names to passwords; SCRAM users get
    SCRAM-SHA-256 and SCRAM-SHA-512 credentials. ``mechanisms`` are the SASL
    mechanisms the SASL listeners enable. ``max_reauth_ms`` limits SASL sessions
    (KIP-368 ``connections.max.reauth.ms``) per "LISTENER-MECHANISM" key, such as
    "SASL_PLAINTEXT-SCRAM-SHA-256"; the others never expire.
    """

    keystore_pem: Path | None = None
    truststore_pem: Path | None = None
    ssl_client_auth: str = "required"
    plain_users: dict[str, str] = field(default_factory=dict)
    scram_users: dict[str, str] = field(default_factory=dict)
    mechanisms: tuple[str, ...] = _SASL_MECHANISMS
    max_reauth_ms: dict[str, int] = field(default_factory=dict)

    @property
    def protocols(self) -> tuple[str, ...]:
        """The secured listeners this configuration adds."""
        return ("SASL_PLAINTEXT", "SSL", "SASL_SSL") if self.keystore_pem is not None else ("SASL_PLAINTEXT",)

    def properties(self, ports: dict[str, int]) -> list[str]:
        """The server.properties lines of the secured listeners."""
        lines = [f"sasl.enabled.mechanisms={','.join(self.mechanisms)}"]
        for listener in ("SASL_PLAINTEXT", "SASL_SSL"):
            if listener not in ports:
                continue
            for mech in self.mechanisms:
                options = ""
                if mech == "PLAIN":
                    options = " ".join(f'user_{u}="{p}"' for u, p in self.plain_users.items())
                entry = f"{_LOGIN_MODULE[mech]} required {options}".rstrip() + ";"
                prefix = f"listener.name.{listener.lower()}.{mech.lower()}"
                lines.append(f"{prefix}.sasl.jaas.config={entry}")
                reauth = self.max_reauth_ms.get(f"{listener}-{mech}")
                if reauth is not None:
                    lines.append(f"{prefix}.connections.max.reauth.ms={reauth}")
        if self.keystore_pem is not None:
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.keystore_pem}"]
            if self.truststore_pem is not None:
                lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.truststore_pem}"]
            lines.append(f"listener.name.ssl.ssl.client.auth={self.ssl_client_auth}")
        return lines

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM credentials."""
        out: list[str] = []
        for user, password in self.scram_users.items():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                out += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        return out


class ApacheKafka:
    """One KRaft broker process; ``bootstrap_servers`` once ``start()`` returns."""

    def __init__(self, workdir: Path, security: BrokerSecurity | None = None) -> None:
        self.workdir = workdir
        self.security = security
        self.port = _free_port()
        self.controller_port = _free_port()
        #: Port of each listener by security protocol (PLAINTEXT is ``port``).
        self.ports: dict[str, int] = {"PLAINTEXT": self.port}
        if security is not None:
            for protocol in security.protocols:
                self.ports[protocol] = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bootstrap(self, protocol: str = "PLAINTEXT") -> str:
        """Address of the listener of ``protocol`` (KeyError when it has none)."""
        return f"127.0.0.1:{self.ports[protocol]}"

    def start(self, timeout_s: float = 120.0) -> ApacheKafka:
        cp = kafka_classpath()
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        # The PLAINTEXT listener stays first: it is the inter-broker listener.
        listeners = ",".join(f"{p}://127.0.0.1:{port}" for p, port in self.ports.items())
        protocol_map = ",".join(f"{p}:{p}" for p in self.ports)
        secured = self.security.properties(self.ports) if self.security is not None else []
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners={listeners},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners={listeners}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={protocol_map},CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    *secured,
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "num.partitions=1",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        cluster_id = new_cluster_id()
        java = ["java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-cp", cp]
        scram = self.security.format_arguments() if self.security is not None else []
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *scram],
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = open(self.workdir / "kafka.log", "wb")
        env = dict(os.environ, LOG_DIR=str(self.workdir))
        self.proc = subprocess.Popen(
            [
                *java,
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        waiting = list(self.ports.values())
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Apache Kafka exited at start: {(self.workdir / 'kafka.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5):
                    waiting.pop(0)
                    if not waiting:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Apache Kafka did not listen within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
