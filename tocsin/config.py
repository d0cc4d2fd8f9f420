"""Process-wide settings, from the environment (`TOCSIN_*`) or CLI flags, validated once at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin import client_properties
from tocsin.credentials import Secret, SecretError, from_file
from tocsin.durations import Duration
from tocsin.oidc import ClientCredentials, endpoint_problem

# The Kafka secrets: each read from its file (`<name>_file`, a flag of the jobs) or from its environment
# variable (TOCSIN_KAFKA_<NAME>), never from a command line (tocsin.credentials says why).
KAFKA_SECRETS = ("sasl_password", "ssl_password", "sasl_oauthbearer_client_secret")
_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseSettings):
    """How to reach Kafka: the one model behind every command's `--bootstrap-servers` (tocsin.cli_options)
    and the Beam jobs' Kafka options (tocsin.pipelines.options, which derives its flags from these fields).
    Each field also reads TOCSIN_KAFKA_<FIELD>. The secrets are read from their files or their variables
    only (KAFKA_SECRETS; no job flag), the SASL settings and the client-properties file are checked at
    load with every problem listed (README, Kafka security).
    """

    model_config = SettingsConfigDict(env_prefix="TOCSIN_KAFKA_", extra="forbid")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the clients talk to the brokers"
    )
    # GSSAPI is a choice only to be refused with its reason (_mechanism_problems), not pydantic's list.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None = (
        Field(None, description="SASL mechanism (with a SASL_* protocol; GSSAPI is not supported)")
    )
    sasl_username: str | None = Field(None, description="SASL user name (PLAIN, SCRAM)")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password, from this environment variable only (or sasl_password_file)"
    )
    sasl_password_file: Path | None = Field(None, description="File holding the SASL password (PLAIN, SCRAM)")
    sasl_oauthbearer_token_endpoint_url: str | None = Field(
        None, description="OAUTHBEARER: the OAuth 2.0 token endpoint (client-credentials grant), https"
    )
    sasl_oauthbearer_client_id: str | None = Field(None, description="OAUTHBEARER: the client id")
    sasl_oauthbearer_client_secret: SecretStr | None = Field(
        None, description="OAUTHBEARER: the client secret, from this environment variable only (or its file)"
    )
    sasl_oauthbearer_client_secret_file: Path | None = Field(
        None, description="OAUTHBEARER: file holding the client secret"
    )
    sasl_oauthbearer_scope: str | None = Field(None, description="OAUTHBEARER: scope asked for, if any")
    ssl_cafile: Path | None = Field(None, description="CA certificate file (PEM)")
    ssl_certfile: Path | None = Field(None, description="Client certificate file (PEM)")
    ssl_keyfile: Path | None = Field(None, description="Client private key file (PEM)")
    ssl_password: SecretStr | None = Field(
        None, description="Password of the client's private key, from this environment variable only"
    )
    ssl_password_file: Path | None = Field(None, description="File holding the client private key's password")
    client_properties: Path | None = Field(
        None, description="Kafka client-properties file (key=value lines) for what tocsin does not name"
    )
    client_id: str = Field("tocsin", description="Client id the brokers log and quota by")
    # kafka-python waits 30 s for its first broker; an operator who mistyped the address should hear
    # about it sooner (TOCSIN_KAFKA_BOOTSTRAP_TIMEOUT=30s for a slow network). Written as text, since
    # BaseSettings validates its defaults.
    bootstrap_timeout: Duration = Field("5s", description="How long a client waits for its first broker")

    # Read at load: the secrets (tocsin.credentials.Secret) and the client-properties file's settings.
    _secrets: dict[str, Secret] = PrivateAttr(default_factory=dict)
    _properties: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_secrets_and_properties(self) -> KafkaSettings:
        """Every problem of the secrets, the SASL settings and the properties file, listed at once."""
        problems = []
        for name in KAFKA_SECRETS:
            env, path = getattr(self, name), getattr(self, f"{name}_file")
            variable = f"TOCSIN_KAFKA_{name.upper()}"
            if env is not None and path is not None:
                problems.append(f"{name}: given by both {variable} and {name}_file; give one")
            elif path is not None:
                try:
                    self._secrets[name] = from_file(path)
                except SecretError as error:
                    problems.append(f"{name}_file: {error}")
            elif env is not None and not env.get_secret_value():
                problems.append(f"{name}: {variable} is empty")
            elif env is not None:
                self._secrets[name] = Secret(env.get_secret_value(), f"env:{variable}")
        problems += self._mechanism_problems()
        if self.client_properties is not None:
            self._properties, bad = client_properties.load(self.client_properties)
            if bad:
                problems.append(f"client_properties: {self.client_properties}: {'; '.join(bad)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _mechanism_problems(self) -> list[str]:
        mechanism, sasl = self.sasl_mechanism, self.security_protocol.startswith("SASL_")
        if mechanism and not sasl:
            return [f"sasl_mechanism: {mechanism} needs security_protocol SASL_PLAINTEXT or SASL_SSL"]
        if sasl and not mechanism:
            return [f"security_protocol: {self.security_protocol} needs sasl_mechanism"]
        if mechanism == "GSSAPI":
            # confluent-kafka's wheels bundle a librdkafka built without Cyrus SASL, which refuses GSSAPI
            # ("No provider for SASL mechanism GSSAPI"), and kafka-python needs the gssapi package and a
            # system Kerberos: the jobs' source could not connect, so no stage is let to.
            return [
                "sasl_mechanism: GSSAPI (Kerberos) is not supported: the jobs' librdkafka is built without "
                "it; use SCRAM-SHA-512, PLAIN over SASL_SSL, or OAUTHBEARER"
            ]
        needed = {
            "password": ("sasl_username", "sasl_password"),
            "OAUTHBEARER": (
                "sasl_oauthbearer_token_endpoint_url",
                "sasl_oauthbearer_client_id",
                "sasl_oauthbearer_client_secret",
            ),
        }.get("password" if mechanism in _PASSWORD_MECHANISMS else mechanism, ())
        problems = []
        for name in needed:
            # A secret given but unreadable was reported with its file; one not given at all is said here.
            if (
                name in KAFKA_SECRETS
                and getattr(self, name) is None
                and getattr(self, f"{name}_file") is None
            ):
                problems.append(
                    f"{name}: {mechanism} needs it, from {name}_file or TOCSIN_KAFKA_{name.upper()}"
                )
            elif name not in KAFKA_SECRETS and not getattr(self, name):
                problems.append(f"{name}: {mechanism} needs it")
        url = self.sasl_oauthbearer_token_endpoint_url
        if mechanism == "OAUTHBEARER" and url and endpoint_problem(url):
            problems.append(f"sasl_oauthbearer_token_endpoint_url: {endpoint_problem(url)}")
        return problems

    def client_config(self) -> dict:
        """Keyword arguments for kafka-python's producer, consumer and admin clients (the jobs' librdkafka
        source translates them: tocsin.pipelines.io.consumer). Secrets are tocsin.credentials.Secret, so
        a config that is logged or pickled into a Beam job holds where they are read, not what they are."""
        config: dict = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "bootstrap_timeout_ms": self.bootstrap_timeout * 1000,
        }
        if self.sasl_mechanism in _PASSWORD_MECHANISMS:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = self._secrets["sasl_password"]
        elif self.sasl_mechanism == "OAUTHBEARER":
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_oauth_token_provider"] = ClientCredentials(
                self.sasl_oauthbearer_token_endpoint_url,
                self.sasl_oauthbearer_client_id,
                self._secrets["sasl_oauthbearer_client_secret"],
                self.sasl_oauthbearer_scope,
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                config[name] = str(value)
        if "ssl_password" in self._secrets:
            config["ssl_password"] = self._secrets["ssl_password"]
        # The file's keys never name what is above (tocsin.client_properties refuses those).
        return {**config, **self._properties}


class SerializationSettings(BaseSettings):
    """How tocsin frames the Avro records it writes, where it resolves registry schema ids, and the
    CloudEvents source its events name: the one model behind every command's `--serialization`,
    `--schema-registry-url` and `--cloudevents-source` (tocsin.cli_options) and the Beam jobs' (tocsin.
    pipelines.options). Each field also reads TOCSIN_<FIELD>.

    Readers take both framings whatever `serialization` says (tocsin.serde.framing); a registry-framed
    record needs `schema_registry_url` to be read.
    """

    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore", frozen=True)

    serialization: Literal["single-object", "registry"] = Field(
        "single-object",
        description="single-object: Avro single-object encoding (C3 01 + fingerprint); registry: the "
        "schema registry's wire format (00 + schema id), registering the schemas under <topic>-value",
    )
    schema_registry_url: str | None = Field(
        None,
        description="URL of a schema registry's Confluent API, e.g. http://127.0.0.1:8081 (Apicurio: "
        "http://host:8080/apis/ccompat/v7)",
    )

    cloudevents_source: str = Field(
        "tocsin",
        min_length=1,
        description="CloudEvents `source` of what this deployment emits (the ce_source header of its alert "
        "records, the source of its webhook CloudEvents): a URI-reference that tells deployments apart, "
        "e.g. urn:tocsin:ocha-prod",
    )

    @model_validator(mode="after")
    def _registry_needs_url(self) -> SerializationSettings:
        if self.serialization == "registry" and not self.schema_registry_url:
            raise ValueError(
                "--serialization registry needs --schema-registry-url (TOCSIN_SCHEMA_REGISTRY_URL)"
            )
        return self


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    log_format: Literal["json", "console"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int | None = Field(
        None, description="Port of the Prometheus /metrics endpoint; none to disable"
    )


def cache_dirs() -> list[Path]:
    """Where tocsin looks for what `make` builds or downloads (Prism, the Flink job server, Kafka):
    TOCSIN_CACHE alone when it is set; otherwise the `.cache` of the checkout tocsin runs from (so a
    command finds it from any working directory), then `.cache` in the working directory."""
    if os.environ.get("TOCSIN_CACHE"):
        return [Path(os.environ["TOCSIN_CACHE"]).resolve()]
    checkout = Path(__file__).resolve().parents[1]
    found = [checkout / ".cache"] if (checkout / "pyproject.toml").is_file() else []
    here = Path(".cache").resolve()
    return found + ([here] if here not in found else [])


def find_in_cache(relative: str | Path) -> tuple[Path | None, list[Path]]:
    """(the first cache folder's `relative` that exists, or None; every path looked at)."""
    looked = [folder / relative for folder in cache_dirs()]
    return next((path for path in looked if path.exists()), None), looked
