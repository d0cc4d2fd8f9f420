"""Avro schema compatibility: can a reader schema read data written with a writer schema?

Implements the schema-resolution rules of the Avro specification (records by field name or alias,
defaults for added fields, numeric promotions, enum symbols, unions, arrays, maps, fixed), and reports
every incompatibility with its path, e.g. `IncidentReport.country: field added without a default`.
"""

from __future__ import annotations

from typing import Any

from fastavro.schema import expand_schema

PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return schema["type"]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def reader_problems(writer: Any, reader: Any) -> list[str]:
    """Every reason why `reader` cannot read what `writer` wrote (raw JSON schemas); empty if it can."""
    problems: list[str] = []
    w, r = expand_schema(writer), expand_schema(reader)
    _resolve(w, r, _short(r["name"]) if isinstance(r, dict) and "name" in r else "<root>", problems)
    return problems


def _resolve(w: Any, r: Any, path: str, out: list[str]) -> None:
    wk, rk = _kind(w), _kind(r)
    if wk == "union":
        # Every branch the writer may have used must be readable.
        for branch in w:
            sub: list[str] = []
            _resolve(branch, r, path, sub)
            out.extend(sub)
        return
    if rk == "union":
        for branch in r:
            probe: list[str] = []
            _resolve(w, branch, path, probe)
            if not probe:
                return
        out.append(f"{path}: writer type {_describe(w)} is not in reader union")
        return
    if wk in PROMOTIONS and rk in PROMOTIONS:
        if rk not in PROMOTIONS[wk]:
            out.append(f"{path}: {wk} cannot be read as {rk}")
        return
    if wk != rk:
        out.append(f"{path}: {_describe(w)} cannot be read as {_describe(r)}")
        return
    if wk == "record":
        if _short(w["name"]) != _short(r["name"]) and _short(w["name"]) not in r.get("aliases", []):
            out.append(f"{path}: record name {_short(w['name'])} differs from {_short(r['name'])}")
        writer_fields = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            match = next((writer_fields[n] for n in names if n in writer_fields), None)
            sub_path = f"{path}.{field['name']}"
            if match is None:
                if "default" not in field:
                    out.append(f"{sub_path}: field added without a default")
                continue
            _resolve(match["type"], field["type"], sub_path, out)
    elif wk == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            out.append(
                f"{path}: enum symbols {', '.join(missing)} unknown to the reader, which has no default"
            )
    elif wk == "array":
        _resolve(w["items"], r["items"], f"{path}[]", out)
    elif wk == "map":
        _resolve(w["values"], r["values"], f"{path}{{}}", out)
    elif wk == "fixed":
        if w["size"] != r["size"]:
            out.append(f"{path}: fixed size {w['size']} cannot be read as size {r['size']}")


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        return (
            schema.get("name", schema["type"])
            if schema["type"] in ("record", "enum", "fixed")
            else schema["type"]
        )
    if isinstance(schema, list):
        return "union"
    return schema


def compatibility_problems(old: Any, new: Any, mode: str = "full") -> list[str]:
    """Problems with replacing schema `old` by `new` under a compatibility mode.

    backward: consumers on `new` read data written with `old`; forward: consumers still on `old` read
    data written with `new`; full: both (the default for tocsin's topics, whose producers and consumers
    are upgraded independently).
    """
    problems: list[str] = []
    if mode in ("backward", "full"):
        problems += [f"backward: {p}" for p in reader_problems(old, new)]
    if mode in ("forward", "full"):
        problems += [f"forward: {p}" for p in reader_problems(new, old)]
    if mode not in ("backward", "forward", "full"):
        raise ValueError(f"unknown compatibility mode {mode!r}: use backward, forward or full")
    return problems
