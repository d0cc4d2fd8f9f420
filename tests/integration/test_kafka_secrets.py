"""Kafka secrets against a real broker with SASL: a second local broker, started here, with a
SASL_PLAINTEXT listener (PLAIN users, and OAUTHBEARER checked by Kafka's unsecured JWT validator) beside
the PLAINTEXT one the test itself uses.

Shows: a job run as a process reads through SASL with its password from a file, and no process of its
tree (the job, the Prism runner it starts) has the password in its command line or environment while
it runs; the CLI does the same from TOCSIN_KAFKA_SASL_PASSWORD_FILE; OAUTHBEARER works with both
clients (kafka-python and the jobs' librdkafka source) through one provider and a real token endpoint,
and the broker refuses a token without the scope it requires.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from typer.testing import CliRunner

from tests.conftest import ROOT, wait_for
from tests.token_endpoint import TokenEndpoint
from tocsin.cli import app
from tocsin.config import KafkaSettings
from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port
from tocsin.pipelines.io.consumer import PartitionConsumer, librdkafka_config

pytestmark = pytest.mark.integration

USER, PASSWORD = "tocsin-job", "sasl-pw-7f3c9e1d"
CLIENT_SECRET = "oidc-secret-5b2a8c4e"


@dataclass(frozen=True)
class SaslBroker(LocalBroker):
    """The local broker with a SASL_PLAINTEXT listener too: PLAIN for `users`, and OAUTHBEARER tokens
    checked by Kafka's unsecured validator, which requires the scope `kafka`."""

    sasl_port: int = 0
    users: tuple = ()

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def server_properties(self) -> str:
        listeners = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
        }
        lines = [
            f"{key}={listeners[key]}" if (key := line.split("=", 1)[0]) in listeners else line
            for line in super().server_properties().splitlines()
        ]
        users = " ".join(f'user_{name}="{password}"' for name, password in self.users)
        prefix = "listener.name.sasl_plaintext"
        return "\n".join(
            [
                *lines,
                "sasl.enabled.mechanisms=PLAIN,OAUTHBEARER",
                f"{prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                f"required {users};",
                # The broker's own login on this listener needs a subject; clients' tokens need the scope.
                f"{prefix}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer."
                'OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker" '
                'unsecuredValidatorRequiredScope="kafka";',
                "",
            ]
        )


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    cache = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache"))
    broker = SaslBroker(
        libs_dir=cache / f"kafka-{KAFKA_VERSION}" / "libs",
        data_dir=tmp_path_factory.mktemp("kafka-sasl"),
        port=free_port(),
        controller_port=free_port(),
        sasl_port=free_port(),
        users=((USER, PASSWORD),),
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def make_topics(broker: SaslBroker, *stems: str) -> list[str]:
    names = [f"test.{stem}.{time.monotonic_ns()}.v1" for stem in stems]
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    admin.create_topics([NewTopic(name, 1, 1) for name in names])
    admin.close()
    return names


def process_tree(root: int) -> dict[int, tuple[bytes, bytes]]:
    """{pid: (command line, environment)} of `root` and every process under it, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    found = {}
    for pid in tree:
        try:
            found[pid] = (
                Path(f"/proc/{pid}/cmdline").read_bytes(),
                Path(f"/proc/{pid}/environ").read_bytes(),
            )
        except OSError:
            continue
    return found


def test_a_job_reads_through_sasl_and_no_process_shows_the_password(
    sasl_broker, password_file, start_pipeline
):
    tin, tout, dlq = make_topics(sasl_broker, "in", "out", "dlq")
    base = (int(time.time() * 1000) // 60_000 - 60) * 60_000
    producer = KafkaProducer(bootstrap_servers=sasl_broker.bootstrap_servers)
    for i in range(30):  # three 10 s windows of key k
        producer.send(tin, key=b"k", value=b"e", timestamp_ms=base + i * 1000)
    producer.flush()
    producer.close()
    job = start_pipeline(
        "-m",
        "tocsin.pipelines.window_count",
        f"--input-topic={tin}",
        f"--output-topic={tout}",
        "--window=10s",
        f"--bootstrap-servers={sasl_broker.sasl_bootstrap}",  # the SASL listener only
        "--kafka-security-protocol=SASL_PLAINTEXT",
        "--kafka-sasl-mechanism=PLAIN",
        f"--kafka-sasl-username={USER}",
        f"--kafka-sasl-password-file={password_file}",
        f"--group-id=g-{tin}",
        f"--dead-letter-topic={dlq}",
        "--idle-timeout=2s",
        "--close-when-idle",
    )
    reader = KafkaConsumer(
        tout,
        bootstrap_servers=sasl_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    counts: dict[str, int] = {}
    seen: dict[int, tuple[bytes, bytes]] = {}

    def windows_counted() -> bool:
        seen.update(process_tree(job.pid))  # while it runs: every process it started, as ps sees it
        for message in reader:
            counts[message.key.decode()] = json.loads(message.value)["count"]
        return len(counts) == 3 or not job.alive()

    try:
        wait_for(windows_counted, 180, interval=1, message="the job's windows")
        assert job.alive(), job.log_tail()
        seen.update(process_tree(job.pid))
    finally:
        reader.close()
    assert counts == {f"k@{base + w * 10_000}": 10 for w in range(3)}  # it read every record, through SASL
    commands = [command for command, _ in seen.values()]
    assert any(b"tocsin.pipelines.window_count" in c for c in commands)
    assert any(b"prism" in c for c in commands), commands  # the runner it started was looked at too
    assert any(str(password_file).encode() in c for c in commands)  # the file is named, not its text
    for command, environment in seen.values():
        assert PASSWORD.encode() not in command
        assert PASSWORD.encode() not in environment
    assert PASSWORD not in job.log_path.read_text()


def test_a_command_reads_its_password_from_the_file_the_environment_names(
    sasl_broker, password_file, monkeypatch
):
    topic = f"tocsin.secrets.x{time.monotonic_ns()}.v1"
    topics = password_file.parent / "topics.yaml"
    topics.write_text(
        f"topics:\n  - {{name: {topic}, schema: LedgerEntry, partitions: 1, retention_ms: -1, "
        "cleanup: delete, purpose: test}\n"
    )
    monkeypatch.setenv("TOCSIN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_USERNAME", USER)
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_MECHANISM", "PLAIN")
    args = ["topics", "create", "-b", sasl_broker.sasl_bootstrap, "--topics-file", str(topics)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["created", topic]
    assert PASSWORD not in result.output


def oauth_settings(broker: SaslBroker, endpoint: TokenEndpoint, secret_file: Path, scope: str | None):
    return KafkaSettings(
        bootstrap_servers=broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauthbearer_token_endpoint_url=endpoint.url,
        sasl_oauthbearer_client_id=USER,
        sasl_oauthbearer_client_secret_file=secret_file,
        sasl_oauthbearer_scope=scope,
    )


def test_oauthbearer_tokens_from_one_provider_serve_both_clients(sasl_broker, tmp_path):
    (topic,) = make_topics(sasl_broker, "oauth")
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET)
    with TokenEndpoint(USER, CLIENT_SECRET) as endpoint:
        client = oauth_settings(sasl_broker, endpoint, secret_file, "kafka").client_config()
        producer = KafkaProducer(**client)  # kafka-python, as connectors, router and sinks
        producer.send(topic, key=b"k", value=b"through a token").get(timeout=30)
        producer.close()
        source = PartitionConsumer(client, f"g-{topic}")  # librdkafka, as the jobs' source
        try:
            source.assign({(topic, 0): 0})
            records = []
            wait_for(lambda: records.extend(source.read(10, 1.0)[0].get((topic, 0), [])) or records, 30)
        finally:
            source.close()
    assert [m.value() for m in records] == [b"through a token"]
    # One provider: the token kafka-python got served librdkafka too (it expires in an hour).
    assert len(endpoint.requests) == 1
    assert endpoint.requests[0]["form"] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


def test_the_broker_refuses_a_token_without_the_scope_it_requires(sasl_broker, tmp_path):
    # Asked of librdkafka, which reports the broker's answer every time (kafka-python at times sees only
    # the connection closed after it).
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET)
    refused = []
    with TokenEndpoint(USER, CLIENT_SECRET) as endpoint:
        client = oauth_settings(sasl_broker, endpoint, secret_file, None).client_config()
        consumer = Consumer({**librdkafka_config(client), "group.id": "g", "error_cb": refused.append})
        try:
            with pytest.raises(KafkaException):
                consumer.list_topics(timeout=3)
        finally:
            consumer.close()
    assert endpoint.requests  # a token was granted and sent: the broker's validator refused it
    assert 'SASL authentication error: {"status":"insufficient_scope", "scope":"[kafka]"}' in refused[0].str()
