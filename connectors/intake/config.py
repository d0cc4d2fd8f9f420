"""The intake's configuration (YAML or JSON): parsed strictly at load, every error listed with its path.

`intake.example.yaml` beside this module shows every key with its default. The organisations are the
core's (`tocsin.organisations`), written as in the router's config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from tocsin.durations import Duration
from tocsin.kafka.topics import INCIDENTS
from tocsin.organisations import Organisations
from tocsin.validation import ConfigErrors, StrictModel, error_messages, read_yaml

SECRET_ENV = "TOCSIN_INTAKE_SECRET"
EXAMPLE = Path(__file__).with_name("intake.example.yaml")


class IntakeConfigError(ConfigErrors):
    kind = "intake config"


def _strong_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 32:
        raise PydanticCustomError("secret", "should have at least 32 characters (e.g. openssl rand -hex 32)")
    return value


class IntakeConfig(StrictModel):
    organisations: Organisations
    secret: Annotated[SecretStr, AfterValidator(_strong_secret)]  # the pseudonyms' key
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    topic: str = INCIDENTS
    max_body_bytes: int = Field(64 * 1024, gt=0)
    rate_per_second: float = Field(1.0, gt=0)
    burst: int = Field(10, ge=1)
    send_timeout: Duration = 10  # how long a request waits for Kafka's acknowledgement
    request_timeout: Duration = 30  # for a request to arrive, headers and body (else 408)
    max_connections: int = Field(1000, ge=1)  # connections and requests at once; past it, 503 at once


def load_config(path: Path | str, **overrides: Any) -> IntakeConfig:
    """Read a YAML or JSON file; TOCSIN_INTAKE_SECRET and non-None `overrides` take precedence.

    IntakeConfigError lists every problem, each as '<dotted path>: <message>'.
    """
    return parse_config(read_yaml(path, IntakeConfigError), **overrides)


def parse_config(data: Any, **overrides: Any) -> IntakeConfig:
    """The config of a parsed document (None: an empty file); the same precedence as load_config."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IntakeConfigError(["<root>: the intake config must be a mapping"])
    data = dict(data)
    if os.environ.get(SECRET_ENV):
        data["secret"] = os.environ[SECRET_ENV]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return IntakeConfig.model_validate(data)
    except ValidationError as error:
        raise IntakeConfigError(error_messages(error)) from None
