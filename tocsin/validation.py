"""Validation messages shared by every YAML file tocsin loads (catalogue, rules, routes): each pydantic
error as '<dotted path>: <message>', the message of a validator's ValueError as it was written."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


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
