"""Validation messages shared by every YAML file tocsin loads (catalogue, rules, routes): each pydantic
error as '<dotted path>: <message>', the message of a validator's ValueError as it was written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
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


def read_yaml(path: Path | str, errors: type[ConfigErrors]) -> Any:
    """The document of a YAML (or JSON) file, or `errors` with the one line that says why not."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise errors([f"<root>: cannot read {path.name}: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise errors([f"<root>: cannot read {path.name}: not UTF-8"]) from None
    except yaml.YAMLError as error:
        raise errors([f"<root>: invalid YAML: {' '.join(str(error).split())}"]) from None


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


def validate_collecting(model: type[BaseModel], data: Any) -> tuple[BaseModel | None, list[str]]:
    """(the model, []) or (a model of the valid rest, every error) or (None, every error).

    pydantic stops a document at its first bad fields; the checks that span a document (undefined
    receivers, bad matchers) would then go unreported until those are fixed, and an operator fixes a
    config one run at a time. So each bad optional field is dropped (its default stands in) and the rest
    validated again: the cross-checks run on what is valid, and every error is listed at once. A bad
    required field cannot be dropped: then only the field errors are known.
    """
    data, errors, dropped = copy.deepcopy(data), [], set()
    while True:
        try:
            return model.model_validate(data), errors
        except ValidationError as error:
            found = error.errors()
            stuck = False
            for item, message in zip(found, error_messages(error), strict=True):
                if item["type"] == "missing" and item["loc"] in dropped:
                    stuck = True  # a field that was dropped is required: its error is already listed
                elif message not in errors:
                    errors.append(message)
                if item["type"] == "missing" or not _drop(data, item["loc"]):
                    stuck = True
                dropped.add(item["loc"])
            if stuck:
                return None, errors


def _drop(data: Any, loc: tuple) -> bool:
    parent = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(parent, dict) and loc[-1] in parent:
        del parent[loc[-1]]
        return True
    return False
