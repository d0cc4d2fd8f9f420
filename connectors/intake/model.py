"""The reporter-facing input model: one report as JSON (`ReportIn`), parsed with every error listed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

INT_MAX = 2**31 - 1  # Avro int
FUTURE_SKEW = dt.timedelta(minutes=15)  # reporters' clocks and offsets are not exact
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)  # as the pipelines' normaliser: older is no report


def _iso_string(value: Any) -> Any:
    # pydantic would also take epoch numbers; a reporter's clock time needs its written offset.
    if not isinstance(value, str):
        raise PydanticCustomError("iso_datetime", "Input should be an ISO 8601 date-time string with offset")
    return value


def _not_future(value: dt.datetime) -> dt.datetime:
    if value < EARLIEST:  # e.g. 0001-01-01T00:00+14:00, which no consumer could decode (year 0 in UTC)
        raise PydanticCustomError("too_early", "Input should not be before 1900")
    if value > dt.datetime.now(dt.UTC) + FUTURE_SKEW:
        raise PydanticCustomError("future_datetime", "Input should not be in the future")
    return value


def _country(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or pycountry.countries.get(alpha_3=code) is None:
        raise PydanticCustomError(
            "country_code", "'{value}' is not an ISO 3166-1 alpha-3 country code", {"value": value}
        )
    return code


def _language(value: str) -> str:
    code = value.lower()
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        raise PydanticCustomError(
            "language_code", "'{value}' is not an ISO 639-1 language code", {"value": value}
        )
    return code


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "Input should not be blank")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
EventCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]+:\S+$", max_length=100)]
Count = Annotated[int, Field(ge=0, le=INT_MAX, strict=True)]


class FatalitiesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    best: Count
    low: Count | None = None
    high: Count | None = None
    civilians: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FatalitiesIn:
        if self.low is not None and self.low > self.best:
            raise PydanticCustomError("fatalities_order", "low should not exceed best")
        if self.high is not None and self.high < self.best:
            raise PydanticCustomError("fatalities_order", "high should not be below best")
        if self.civilians is not None and self.civilians > self.best:
            raise PydanticCustomError("fatalities_order", "civilians should not exceed best")
        return self


class ReportIn(BaseModel):
    """One incident as a field monitor or civil-society organisation reports it."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text, StringConstraints(max_length=500)]
    description: Annotated[Text, StringConstraints(max_length=20_000)] | None = None
    event_time: Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_not_future)]
    country: Annotated[str, AfterValidator(_country)]
    admin1: Annotated[Text, StringConstraints(max_length=200)] | None = None
    location_name: Annotated[Text, StringConstraints(max_length=500)] | None = None
    # strict: JSON true is not a coordinate, nor "13.5" (pydantic's lax mode would take both)
    latitude: Annotated[float, Field(ge=-90, le=90, strict=True)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180, strict=True)] | None = Field(
        None, validate_default=True
    )
    language: Annotated[str, AfterValidator(_language)] | None = None
    url: Annotated[HttpUrl, Field(max_length=2048)] | None = None
    event_codes: Annotated[list[EventCode], Field(max_length=50)] = []
    fatalities: FatalitiesIn | None = None
    # repr=False: the identity must not surface in a repr, a traceback or a debugger dump.
    reporter: Annotated[str, StringConstraints(max_length=500), AfterValidator(_not_blank)] = Field(
        repr=False
    )
    coarsen_km: Annotated[float, Field(gt=0, le=1000, strict=True)] | None = None
    source_type: Literal["FIELD_MONITOR", "CIVIL_SOCIETY"]

    @field_validator("longitude")
    @classmethod
    def _with_latitude(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Runs after latitude (field order); skipped when latitude itself failed, which has its own error.
        if "latitude" in info.data and (info.data["latitude"] is None) != (value is None):
            raise PydanticCustomError("coordinates", "latitude and longitude should be given together")
        return value


class BadRequest(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def error_list(exc: ValidationError) -> list[str]:
    """Every validation error as '<field path>: <message>' (no input values: they may identify someone)."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_report(body: bytes) -> ReportIn:
    """Parse and validate a request body; BadRequest lists every error."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest(["body: invalid JSON: not UTF-8"]) from None
    except RecursionError:  # ~1,000 nested arrays: the parser's own limit, not a server error
        raise BadRequest(["body: invalid JSON: nested too deep"]) from None
    except json.JSONDecodeError as exc:
        raise BadRequest([f"body: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
    except ValueError as exc:
        raise BadRequest([f"body: invalid JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise BadRequest(["body: should be a JSON object"])
    try:  # a \ud800 escape decodes to a lone surrogate: no UTF-8 (so no topic, no log) can hold it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadRequest(["body: invalid JSON: nested too deep"]) from None
    except UnicodeEncodeError:
        raise BadRequest(
            ["body: a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"]
        ) from None
    try:
        return ReportIn.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(error_list(exc)) from None
