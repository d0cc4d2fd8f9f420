"""Validation messages shared by every YAML file tocsin loads (catalogue, rules, routes): each pydantic
error as '<dotted path>: <message>', the message of a validator's ValueError as it was written."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigErrors(ValueError):
    """Every problem of a config file, each as '<dotted path>: <message>'; subclasses name the file kind."""

    kind = "config"

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__(f"invalid {self.kind}:\n" + "\n".join(f"  {e}" for e in self.errors))


class StrictModel(BaseModel):
    """Unknown keys are errors; a parsed config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def error_messages(error: ValidationError, prefix: tuple = ()) -> list[str]:
    out = []
    for item in error.errors():
        loc = [*prefix, *(str(p) for p in item["loc"] if p != "[key]")]
        message = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
        out.append(f"{'.'.join(loc) or '<root>'}: {message}")
    return out


def str_keys(value: Any) -> list[str]:
    """The string keys of a mapping found in raw YAML (nothing if it is not one)."""
    return [k for k in value if isinstance(k, str)] if isinstance(value, dict) else []
