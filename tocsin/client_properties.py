"""A Kafka client-properties file: the settings tocsin does not name, in the `key=value` lines (Java's and
librdkafka's dotted names) that Kafka operators already write, given to every client of every stage.

tocsin runs two Kafka clients: kafka-python (connectors, router, CLI, the jobs' sinks and commits) and
librdkafka through confluent-kafka (the jobs' source). A key is given to both, so it must mean the same
to both: librdkafka takes it as written, kafka-python by its snake_case name (`reconnect.backoff.ms` ->
`reconnect_backoff_ms`), typed as kafka-python's default is (int or str). Refused, each with its line:
  - what tocsin names itself (bootstrap servers, security, SASL, TLS files, client id): one home each,
    KafkaSettings' field, so that a flag or TOCSIN_KAFKA_* is never overridden by a file unseen;
  - what tocsin sets on a client where its guarantees or its error handling depend on it;
  - what either client does not know, or kafka-python knows only for one kind of client (a consumer
    setting would make its producers refuse to start), or librdkafka's consumer ignores.
The Java name `ssl.endpoint.identification.algorithm` (librdkafka's too) is kafka-python's
`ssl_check_hostname`: `https` checks the broker's host name, an empty value or `none` does not (and
kafka-python's own `ssl.check.hostname=false` is given to librdkafka as `none`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

# Settings of every kafka-python client (admin, consumer, producer): the only ones one file can give to all.
_KAFKA_PYTHON = (
    set(KafkaProducer.DEFAULT_CONFIG)
    & set(KafkaConsumer.DEFAULT_CONFIG)
    & set(KafkaAdminClient.DEFAULT_CONFIG)
)
_ONE_KIND = (
    set(KafkaProducer.DEFAULT_CONFIG)
    | set(KafkaConsumer.DEFAULT_CONFIG)
    | set(KafkaAdminClient.DEFAULT_CONFIG)
) - _KAFKA_PYTHON

# What tocsin names, in the spellings an operator may write (Java's, librdkafka's, kafka-python's dotted):
# the KafkaSettings field that is its one home.
NAMED = {
    "bootstrap.servers": "bootstrap_servers",
    "client.id": "client_id",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.plain.username": "sasl_username",
    "sasl.password": "sasl_password_file",
    "sasl.plain.password": "sasl_password_file",
    "ssl.ca.location": "ssl_cafile",
    "ssl.cafile": "ssl_cafile",
    "ssl.truststore.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.certfile": "ssl_certfile",
    "ssl.keystore.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.keyfile": "ssl_keyfile",
    "ssl.key.password": "ssl_password_file",
    "ssl.password": "ssl_password_file",
    "sasl.oauthbearer.token.endpoint.url": "sasl_oauthbearer_token_endpoint_url",
    "sasl.oauthbearer.client.id": "sasl_oauthbearer_client_id",
    "sasl.oauthbearer.client.secret": "sasl_oauthbearer_client_secret_file",
    "sasl.oauthbearer.scope": "sasl_oauthbearer_scope",
    "bootstrap.timeout.ms": "bootstrap_timeout",
}
# Set by tocsin on a client (kafka-python would refuse a second value): the intake's and the readiness
# probe's request timeout, the sinks' reconnect backoff, the ledger's one request in flight.
SET_BY_TOCSIN = {"request.timeout.ms", "reconnect.backoff.max.ms", "max.in.flight.requests.per.connection"}
# kafka-python settings that are objects, not text a file can hold.
_OBJECTS = {
    "kafka_client",
    "selector",
    "socket_options",
    "ssl_context",
    "metric_reporters",
    "api_version",
    "sasl_oauth_token_provider",
    "sasl_kerberos_name",
}

HOSTNAME_CHECK = "ssl.endpoint.identification.algorithm"
_HOSTNAME_VALUES = {"https": True, "": False, "none": False}


def parse(text: str) -> tuple[dict[str, tuple[int, str]], list[tuple[int, str]]]:
    """(key -> (line number, value), [(line number, problem)]) of `key=value` lines (`key: value` too);
    `#` and `!` begin a comment line, as in Java's properties files."""
    found: dict[str, tuple[int, str]] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            problems.append((number, "not key=value"))
            continue
        key, value = line[:cut].strip(), line[cut + 1 :].strip()
        if value.endswith("\\"):
            problems.append((number, f"{key}: continued lines are not supported (one key=value a line)"))
        elif key in found:
            problems.append((number, f"{key}: set again (first on line {found[key][0]})"))
        else:
            found[key] = (number, value)
    return found, problems


def kafka_python_setting(key: str, value: str) -> tuple[str, object]:
    """kafka-python's (name, value) of a property, or ValueError saying why it has none."""
    if key in NAMED:
        field = NAMED[key]
        raise ValueError(f"tocsin's own setting {field} (TOCSIN_KAFKA_{field.upper()}): set it there")
    if key == "sasl.jaas.config":
        raise ValueError(
            "Java's JAAS configuration, which neither client reads: set sasl_username and sasl_password_file"
        )
    if key in SET_BY_TOCSIN:
        raise ValueError("set by tocsin on the clients that need it; not taken from the file")
    if key == HOSTNAME_CHECK:
        if value.lower() not in _HOSTNAME_VALUES:
            raise ValueError(f"{value!r}: https, none or empty")
        return "ssl_check_hostname", _HOSTNAME_VALUES[value.lower()]
    name = key.replace(".", "_")
    if name in _ONE_KIND:
        raise ValueError("kafka-python takes it for some of its clients only; the file's go to every client")
    if name not in _KAFKA_PYTHON or name in _OBJECTS:
        raise ValueError(f"kafka-python has no such setting ({name})")
    default = KafkaProducer.DEFAULT_CONFIG[name]
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"{value!r}: true or false")
        return name, value.lower() == "true"
    if not isinstance(default, int):
        return name, value
    try:
        return name, int(value)
    except ValueError:
        raise ValueError(f"{value!r}: a whole number") from None


def librdkafka_problem(key: str, value: str) -> str | None:
    """Why librdkafka's consumer refuses or ignores `key=value`, in its own words; None if it takes it.

    librdkafka is asked: a consumer made with the property alone and closed at once (no broker is named,
    so it connects nowhere; about a millisecond). It knows its properties and values for its version."""
    from confluent_kafka import Consumer, KafkaException  # noqa: PLC0415 (0.15 s, paid only with a file)

    said: list[str] = []
    quiet = logging.getLogger(f"tocsin.client_properties.check.{key}")
    quiet.propagate = False
    quiet.handlers = [_Collect(said)]
    try:
        consumer = Consumer({"group.id": "tocsin-check", key: value, "logger": quiet})
    except KafkaException as error:
        return f"librdkafka: {error.args[0].str().removeprefix('Failed to create consumer: ')}"
    consumer.poll(0)  # librdkafka's warnings about the configuration are logged on the first poll
    consumer.close()
    ignored = [line for line in said if "will be ignored" in line]
    return "librdkafka's consumer ignores it (not a consumer setting)" if ignored else None


class _Collect(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


def load(path: Path) -> tuple[dict, list[str]]:
    """(kafka-python's settings from the file, every problem as 'line N: key: why')."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        return {}, [f"{path}: {error.strerror}"]
    except UnicodeDecodeError:
        return {}, [f"{path}: not UTF-8"]
    found, problems = parse(text)
    settings = {}
    for key, (number, value) in found.items():
        try:
            name, typed = kafka_python_setting(key, value)
        except ValueError as error:
            problems.append((number, f"{key}: {error}"))
            continue
        # librdkafka is asked about what it will be given (tocsin.pipelines.io.consumer), as it is spelled.
        refused = librdkafka_problem(*librdkafka_spelling(name, typed))
        if refused:
            problems.append((number, f"{key}: {refused}"))
            continue
        settings[name] = typed
    return settings, [f"line {number}: {problem}" for number, problem in sorted(problems)]


def librdkafka_spelling(name: str, value) -> tuple[str, str] | None:
    """librdkafka's (property, value) of a kafka-python setting a properties file gave; None if the name
    is not one a file can give."""
    if name == "ssl_check_hostname":
        return HOSTNAME_CHECK, "https" if value else "none"
    if name in _KAFKA_PYTHON and name not in _OBJECTS:
        return name.replace("_", "."), str(value)
    return None
