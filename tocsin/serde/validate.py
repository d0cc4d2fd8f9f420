"""Validate a Python datum against an Avro schema and report every error with its field path.

fastavro's own validator stops at the first failing field; operators fixing a rejected report (and the
HTTP intake answering a 400) need the whole list, so this walks the schema itself.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class ValidationFailed(ValueError):
    """A datum does not match its schema; `errors` lists every problem as 'path: message'."""

    def __init__(self, schema_name: str, errors: list[str]):
        self.schema_name = schema_name
        self.errors = errors
        super().__init__(f"{schema_name} is invalid: " + "; ".join(errors))


def validate(datum: Any, schema: Any) -> list[str]:
    """Return every error of `datum` against a parsed fastavro schema (empty when valid)."""
    errors: list[str] = []
    _check(datum, schema, "", errors)
    return errors


def _name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, list):
        return " or ".join(_name(s) for s in schema)
    if isinstance(schema, dict):
        if schema["type"] in ("record", "enum", "fixed"):
            return schema["name"].rsplit(".", 1)[-1]
        if schema.get("logicalType"):
            return schema["logicalType"]
        return schema["type"]
    return str(schema)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _matches(datum: Any, schema: Any) -> bool:
    probe: list[str] = []
    _check(datum, schema, "", probe)
    return not probe


def _check(datum: Any, schema: Any, path: str, errors: list[str]) -> None:
    where = path or "<root>"
    if isinstance(schema, list):
        if not any(_matches(datum, branch) for branch in schema):
            if datum is None:
                errors.append(f"{where}: must not be null")
                return
            non_null = [b for b in schema if b != "null"]
            if len(non_null) == 1:  # an optional field: report the inner errors, more useful
                _check(datum, non_null[0], path, errors)
            else:
                errors.append(f"{where}: {_describe(datum)} matches none of {_name(schema)}")
        return
    if isinstance(schema, str):
        _check_primitive(datum, schema, where, errors)
        return
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        if isinstance(datum, dt.datetime):
            if datum.tzinfo is None:
                errors.append(f"{where}: datetime must be timezone-aware")
            return
        _check_primitive(datum, "long", where, errors)
        return
    if kind == "record":
        if not isinstance(datum, Mapping):
            errors.append(f"{where}: expected {_name(schema)} record, got {_describe(datum)}")
            return
        known = set()
        for field in schema["fields"]:
            known.add(field["name"])
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in datum:
                if "default" not in field:
                    errors.append(f"{sub}: required field missing")
                continue
            _check(datum[field["name"]], field["type"], sub, errors)
        for extra in sorted(set(datum) - known):
            sub = f"{path}.{extra}" if path else str(extra)
            errors.append(f"{sub}: unknown field")
    elif kind == "enum":
        if datum not in schema["symbols"]:
            errors.append(f"{where}: {datum!r} is not one of {', '.join(schema['symbols'])}")
    elif kind == "array":
        if isinstance(datum, (str, bytes)) or not isinstance(datum, Sequence):
            errors.append(f"{where}: expected array, got {_describe(datum)}")
            return
        for i, item in enumerate(datum):
            _check(item, schema["items"], f"{path}[{i}]", errors)
    elif kind == "map":
        if not isinstance(datum, Mapping):
            errors.append(f"{where}: expected map, got {_describe(datum)}")
            return
        for key, value in datum.items():
            if not isinstance(key, str):
                errors.append(f"{where}: map key {key!r} is not a string")
            _check(value, schema["values"], f"{path}[{key!r}]", errors)
    elif kind == "fixed":
        if not isinstance(datum, bytes) or len(datum) != schema["size"]:
            errors.append(f"{where}: expected {schema['size']} bytes, got {_describe(datum)}")
    else:
        _check_primitive(datum, kind, where, errors)


def _check_primitive(datum: Any, kind: str, where: str, errors: list[str]) -> None:
    ok = True
    if kind == "null":
        ok = datum is None
    elif kind == "boolean":
        ok = isinstance(datum, bool)
    elif kind in ("int", "long"):
        lo, hi = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
        if isinstance(datum, bool) or not isinstance(datum, numbers.Integral):
            ok = False
        elif not lo <= datum <= hi:
            errors.append(f"{where}: {datum} is out of range for {kind}")
            return
    elif kind in ("float", "double"):
        ok = isinstance(datum, numbers.Real) and not isinstance(datum, bool)
    elif kind == "string":
        ok = isinstance(datum, str)
    elif kind == "bytes":
        ok = isinstance(datum, (bytes, bytearray))
    else:  # a named type fastavro already resolved elsewhere; nothing more to check here
        return
    if not ok:
        errors.append(f"{where}: expected {kind}, got {_describe(datum)}")
