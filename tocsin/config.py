"""Process-wide settings, from the environment (`TOCSIN_*`) or CLI flags, validated once at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.durations import Duration


class KafkaSettings(BaseSettings):
    """How to reach Kafka: the one model behind every command's `--bootstrap-servers` (tocsin.cli_options)
    and the Beam jobs' Kafka options (tocsin.pipelines.options, which derives its flags from these fields).
    Each field also reads TOCSIN_KAFKA_<FIELD>; the security settings pass straight through to the clients.
    """

    model_config = SettingsConfigDict(env_prefix="TOCSIN_KAFKA_", extra="forbid")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the clients talk to the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        None, description="SASL mechanism (with a SASL_* protocol)"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (the environment variable keeps it off command lines)"
    )
    ssl_cafile: Path | None = Field(None, description="CA certificate file (PEM)")
    ssl_certfile: Path | None = Field(None, description="Client certificate file (PEM)")
    ssl_keyfile: Path | None = Field(None, description="Client private key file (PEM)")
    client_id: str = Field("tocsin", description="Client id the brokers log and quota by")
    # kafka-python waits 30 s for its first broker; an operator who mistyped the address should hear
    # about it sooner (TOCSIN_KAFKA_BOOTSTRAP_TIMEOUT=30s for a slow network). Written as text, since
    # BaseSettings validates its defaults.
    bootstrap_timeout: Duration = Field("5s", description="How long a client waits for its first broker")

    def client_config(self) -> dict:
        """Keyword arguments for kafka-python's producer, consumer and admin clients."""
        config: dict = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "bootstrap_timeout_ms": self.bootstrap_timeout * 1000,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                config[name] = str(value)
        return config


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
