"""The Kafka client-properties file (--kafka-client-properties, TOCSIN_KAFKA_CLIENT_PROPERTIES): Java-style
lines, translated for kafka-python and given as written to librdkafka, the same for every command and
job; every key a client would not take refused at load, each with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import ValidationError
from typer.testing import CliRunner

from tocsin import client_properties
from tocsin.cli import app
from tocsin.config import KafkaSettings
from tocsin.pipelines.io.consumer import librdkafka_config
from tocsin.pipelines.options import KafkaOptions, kafka_client_config
from tocsin.validation import error_messages

GOOD = """\
# tuning that tocsin does not name, as an operator writes it
reconnect.backoff.ms=250
metadata.max.age.ms : 60000
! Java's other comment mark
client.dns.lookup=use_all_dns_ips
ssl.endpoint.identification.algorithm=
"""


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch):
    for name in KafkaSettings.model_fields:
        monkeypatch.delenv(f"TOCSIN_KAFKA_{name.upper()}", raising=False)


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return path


def test_the_file_is_translated_for_kafka_python_and_typed_as_its_defaults(tmp_path):
    client = KafkaSettings(client_properties=written(tmp_path, GOOD)).client_config()
    assert client == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
        "client_id": "tocsin",
        "bootstrap_timeout_ms": 5000,
        "reconnect_backoff_ms": 250,
        "metadata_max_age_ms": 60_000,
        "client_dns_lookup": "use_all_dns_ips",
        "ssl_check_hostname": False,
    }


def test_every_kafka_python_client_takes_the_translated_settings(tmp_path):
    client = KafkaSettings(bootstrap_servers="127.0.0.1:1", client_properties=written(tmp_path, GOOD))
    settings = {k: v for k, v in client.client_config().items() if k != "bootstrap_servers"}
    for kind in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        # Each refuses a setting it does not know with "Unrecognized configs": none is refused here.
        unknown = set(settings) - set(kind.DEFAULT_CONFIG)
        assert unknown == set(), kind


def test_librdkafka_is_given_the_same_settings_by_their_dotted_names(tmp_path):
    client = KafkaSettings(client_properties=written(tmp_path, GOOD)).client_config()
    assert librdkafka_config(client) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
        "client.id": "tocsin",
        "reconnect.backoff.ms": "250",
        "metadata.max.age.ms": "60000",
        "client.dns.lookup": "use_all_dns_ips",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_the_jobs_take_the_same_file_by_their_flag(tmp_path):
    path = written(tmp_path, "reconnect.backoff.ms=250\n")
    opts = PipelineOptions([f"--kafka-client-properties={path}"]).view_as(KafkaOptions)
    assert kafka_client_config(opts)["reconnect_backoff_ms"] == 250


BAD = """\
reconnect.backoff.ms=250
security.protocol=SASL_SSL
sasl.password=hunter2
max.poll.records=10
request.timeout.ms=1000
socket.keepalive.enable=true
metadata.max.age.ms=soon
client.dns.lookup=sometimes
reconnect.backoff.ms=300
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\
just words
sasl.kerberos.name=kafka
ssl.endpoint.identification.algorithm=maybe
retry.backoff.ms=100
"""


def test_every_bad_line_is_listed_at_load_with_its_reason(tmp_path):
    path = written(tmp_path, BAD)
    with pytest.raises(ValidationError) as raised:
        KafkaSettings(client_properties=path)
    assert error_messages(raised.value) == [
        f"<root>: client_properties: {path}: "
        "line 2: security.protocol: tocsin's own setting security_protocol (TOCSIN_KAFKA_SECURITY_PROTOCOL): "
        "set it there; "
        "line 3: sasl.password: tocsin's own setting sasl_password_file (TOCSIN_KAFKA_SASL_PASSWORD_FILE): "
        "set it there; "
        "line 4: max.poll.records: kafka-python takes it for some of its clients only; the file's go to "
        "every client; "
        "line 5: request.timeout.ms: set by tocsin on the clients that need it; not taken from the file; "
        "line 6: socket.keepalive.enable: kafka-python has no such setting (socket_keepalive_enable); "
        "line 7: metadata.max.age.ms: 'soon': a whole number; "
        'line 8: client.dns.lookup: librdkafka: Invalid value "sometimes" for configuration property '
        '"client.dns.lookup"; '
        "line 9: reconnect.backoff.ms: set again (first on line 1); "
        "line 10: sasl.jaas.config: continued lines are not supported (one key=value a line); "
        "line 11: not key=value; "
        "line 12: sasl.kerberos.name: kafka-python has no such setting (sasl_kerberos_name); "
        "line 13: ssl.endpoint.identification.algorithm: 'maybe': https, none or empty"
    ]


def test_a_key_only_kafka_python_knows_is_refused_in_librdkafkas_words(tmp_path):
    path = written(tmp_path, "metrics.num.samples=3\n")
    with pytest.raises(ValidationError) as raised:
        KafkaSettings(client_properties=path)
    assert error_messages(raised.value) == [
        f"<root>: client_properties: {path}: line 1: metrics.num.samples: librdkafka: No such configuration "
        'property: "metrics.num.samples"'
    ]


def test_librdkafka_is_asked_whether_its_consumer_would_ignore_a_key():
    assert client_properties.librdkafka_problem("linger.ms", "5") == (
        "librdkafka's consumer ignores it (not a consumer setting)"
    )
    assert client_properties.librdkafka_problem("reconnect.backoff.ms", "250") is None


def test_a_file_that_cannot_be_read_is_one_problem(tmp_path):
    with pytest.raises(ValidationError) as raised:
        KafkaSettings(client_properties=tmp_path / "absent.properties")
    assert error_messages(raised.value) == [
        f"<root>: client_properties: {tmp_path / 'absent.properties'}: {tmp_path / 'absent.properties'}: "
        "No such file or directory"
    ]


@pytest.mark.parametrize(
    "command",
    [["topics", "create"], ["connect", "ucdp", "x.csv"], ["ledger", "show", "alert-1"]],
    ids=["cli", "connector", "router"],
)
def test_every_command_takes_the_file_and_says_its_problems_in_one_line(tmp_path, command):
    path = written(tmp_path, "max.poll.records=10\n")
    result = CliRunner().invoke(app, [*command, "--kafka-client-properties", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: Kafka settings (TOCSIN_KAFKA_*): client_properties: {path}: line 1: max.poll.records: "
        "kafka-python takes it for some of its clients only; the file's go to every client"
    )
