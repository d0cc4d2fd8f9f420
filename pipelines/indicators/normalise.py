"""Raw records -> observations (schemas/observation.avsc): pure functions, one per raw record type.

An observation says what happened where and when, from which source, in which words or codes; the
classifier and the windows read nothing else. Two keys come with it:

- `dedup_key`: records with the same key are one event. Structured sources (conflict and event data) keep
  their own record id, so a re-ingested record never counts twice; text sources (news, field and
  civil-society reports, UN reports) use the country and a fingerprint of the title, so many articles with a
  near-identical headline on one country are one event within a window (the windows bound the merge).
- `origin`: who published it (the article's web host when there is a link, else the connector), so the
  number of distinct origins behind an event or a signal measures corroboration.

The observation id is a digest of the dedup key: the same event always gets the same id.

What a source says of itself is kept: its own count of sources (`distinct_sources`: UCDP
number_of_sources, GDELT NumSources), the civilians among the deaths whatever the type of violence, and the
span of days the event is only known to lie in (UCDP date_prec 2-5: a week, a month, a year), so that a
year's deaths are not put on one day. Text sources carry no count of deaths, but their headlines often
do: "Fighting kills 37" gives 37 (`casualties.read_deaths`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import lru_cache
from urllib.parse import urlsplit

import pycountry

from tocsin.pipelines.indicators.casualties import read_deaths
from tocsin.pipelines.indicators.folding import fold
from tocsin.serde.avro import decode_plain
from tocsin.timestamps import epoch_ms
from tocsin.timestamps import now_ms as now

STRUCTURED = frozenset({"CONFLICT_DATA", "EVENT_DATA"})
MAX_TEXT = 4000

# Words that carry no meaning in a headline (English and French), left out of title fingerprints so that
# "Troops attack the village" and "Troops attack village" are the same headline.
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or as is are was were be been has have had it its this
    that after over into than amid says say said new le la les l de des du d un une et ou en au aux a pour par
    sur dans avec est sont ete qui que se sa son ses ces ce cette apres selon""".split()
)
WORD = re.compile(r"\w+")
# A trailing " - Publisher" or " | Publisher" of at most four words, as news aggregators append.
PUBLISHER_SUFFIX = re.compile(r"\s+[-|\u2013\u2014]\s+[^-|\u2013\u2014]{1,60}$")


class NormaliseError(ValueError):
    """A raw record that cannot become an observation; `errors` lists every reason."""

    reason = "normalise-error"  # the dead letter's reason

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def title_fingerprint(title: str) -> str:
    """The headline's significant words, folded (case, accents), de-duplicated and sorted."""
    stripped = PUBLISHER_SUFFIX.sub("", title.strip())
    if len(stripped) < len(title.strip()) // 3:  # the "suffix" was most of the title: keep it whole
        stripped = title
    words = {w for w in WORD.findall(fold(stripped)) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}
    return " ".join(sorted(words))


def origin_of(source: str, url: str | None) -> str:
    """Who published the record: the link's host without 'www.', else the connector name."""
    if url:
        host = (urlsplit(url).hostname or "").lower()
        if host.startswith("www."):
            host = host[4:]
        if host:
            return host
    return source


# Hosts that republish others' reports: behind them, the report's own publisher (its author organisation,
# as the ReliefWeb API names it) is the origin, so reports of OCHA and of UNMISS are two sources, not one.
AGGREGATOR_HOSTS = frozenset({"reliefweb.int"})


def news_origin(record: dict) -> str:
    origin = origin_of(record["source"], record.get("link"))
    authors = [a.strip() for a in record.get("authors") or () if isinstance(a, str) and a.strip()]
    if origin in AGGREGATOR_HOSTS and authors:
        return " ".join(fold(authors[0]).split())
    return origin


def dedup_key(source_type: str, record_id: str, country: str | None, title: str | None) -> str:
    if source_type in STRUCTURED or not title:
        return f"record:{record_id}"
    fingerprint = title_fingerprint(title)
    if not fingerprint:
        return f"record:{record_id}"
    return f"title:{country or '-'}:{fingerprint}"


def observation_id(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=10).hexdigest()


def _text(*parts: str | None) -> str | None:
    text = "\n".join(p.strip() for p in parts if p and p.strip())
    return text[:MAX_TEXT] or None


def _required(record: dict, fields: tuple[str, ...]) -> list[str]:
    return [f"{name}: missing" for name in fields if record.get(name) in (None, "")]


# Kosovo has no ISO 3166-1 code; sources (UCDP through country_converter, the EU) use this user-assigned one.
USER_ASSIGNED_COUNTRIES = frozenset({"XKX"})
EARLIEST_EVENT_MS = -2_208_988_800_000  # 1900-01-01: older than any source tocsin reads
FUTURE_SKEW_MS = 86_400_000  # a day: clocks and time zones, not reports from the future


@lru_cache(maxsize=512)
def _is_country(code: str) -> bool:
    return code in USER_ASSIGNED_COUNTRIES or pycountry.countries.get(alpha_3=code) is not None


def _semantic_errors(record: dict, now_ms: int | None = None) -> list[str]:
    """What a schema cannot say: a real country, coordinates on the globe, a time in the record era.
    Schema-valid nonsense (country ZZZ, latitude 999) would otherwise reach the windows."""
    errors = []
    country = record.get("country")
    if country is not None and not _is_country(country):
        errors.append(f"country: {country!r} is not an ISO 3166-1 alpha-3 code")
    for name, bound in (("latitude", 90), ("longitude", 180)):
        value = record.get(name)
        if value is not None and not (isinstance(value, int | float) and -bound <= value <= bound):
            errors.append(f"{name}: {value!r} is outside -{bound}..{bound}")
    when = epoch_ms(record["event_time"])
    latest = (now_ms if now_ms is not None else now()) + FUTURE_SKEW_MS
    if not EARLIEST_EVENT_MS <= when <= latest:
        errors.append(f"event_time: {when} ms is before 1900 or more than a day ahead")
    return errors


def from_incident(record: dict) -> dict:
    """An IncidentReport as an Observation (with `dedup_key` and `origin` beside the schema fields)."""
    errors = _required(record, ("id", "source", "event_time"))
    if errors or (errors := _semantic_errors(record)):
        raise NormaliseError(errors)
    source_type = record.get("source_type") or "OTHER"
    fatalities = record.get("fatalities") or {}
    key = dedup_key(source_type, record["id"], record.get("country"), record.get("title"))
    deaths = max(int(fatalities.get("best") or 0), 0)
    if not fatalities and source_type not in STRUCTURED:  # a report in words: the deaths it states
        deaths = read_deaths(record.get("title"), record.get("description"))[0]
    return {
        "id": observation_id(key),
        "source_ids": [record["id"]],
        "source": record["source"],
        "source_type": source_type,
        "event_time": epoch_ms(record["event_time"]),
        "country": record.get("country"),
        "admin1": record.get("admin1"),
        "latitude": record.get("latitude"),
        "longitude": record.get("longitude"),
        "language": record.get("language"),
        "title": record.get("title"),
        "text": _text(record.get("description")),
        "url": record.get("url"),
        "event_codes": list(record.get("event_codes") or ()),
        "violence_type": record.get("violence_type"),
        "goldstein": record.get("goldstein"),
        "fatalities": deaths,
        "distinct_sources": _reported_sources(record.get("num_sources")),
        "civilian_fatalities": min(max(int(fatalities.get("civilians") or 0), 0), deaths),
        "span_days": span_days(record),
        "dedup_key": key,
        "origin": origin_of(record["source"], record.get("url")),
    }


def _reported_sources(value) -> int:
    return value if isinstance(value, int) and value > 1 else 1


def span_days(record: dict) -> int:
    """Days from the event time to the end date the source gives (UCDP `date_end`), both included."""
    end = (record.get("attributes") or {}).get("date_end")
    if not end:
        return 1
    try:
        last = dt.datetime.fromisoformat(end.strip()[:10]).replace(tzinfo=dt.UTC)
    except ValueError:
        return 1
    days = (epoch_ms(last) - epoch_ms(record["event_time"])) // 86_400_000 + 1
    return max(int(days), 1)


def from_news(record: dict) -> dict:
    """A NewsItem as an Observation: news carries no codes, only words, and the deaths they state."""
    errors = _required(record, ("id", "source", "event_time", "title"))
    if errors or (errors := _semantic_errors(record)):
        raise NormaliseError(errors)
    key = dedup_key("NEWS", record["id"], record.get("country"), record["title"])
    return {
        "id": observation_id(key),
        "source_ids": [record["id"]],
        "source": record["source"],
        "source_type": "NEWS",
        "event_time": epoch_ms(record["event_time"]),
        "country": record.get("country"),
        "admin1": None,
        "latitude": record.get("latitude"),
        "longitude": record.get("longitude"),
        "language": record.get("language"),
        "title": record["title"],
        "text": _text(record.get("summary")),
        "url": record.get("link"),
        "event_codes": [],
        "violence_type": None,
        "goldstein": None,
        "fatalities": read_deaths(record["title"], record.get("summary"))[0],
        "distinct_sources": 1,
        "civilian_fatalities": 0,
        "span_days": 1,
        "dedup_key": key,
        "origin": news_origin(record),
    }


NORMALISERS = {"IncidentReport": from_incident, "NewsItem": from_news}


def normalise(schema_name: str, record: dict) -> dict:
    """Dispatch on the raw record's schema name (the Avro writer schema of the Kafka value)."""
    try:
        normaliser = NORMALISERS[schema_name]
    except KeyError:
        raise NormaliseError([f"no normaliser for {schema_name} records"]) from None
    return normaliser(record)


def as_observation(observation: dict) -> dict:
    """The schema fields only (drops the pipeline-internal dedup_key and origin)."""
    return {k: v for k, v in observation.items() if k not in ("dedup_key", "origin")}


class RawToObservation:
    """ReadFromKafka's decoder: a raw IncidentReport or NewsItem (by its writer schema) -> an observation.

    Normalising in the source saves a pipeline step per record; a record that cannot be normalised is a
    dead letter with reason normalise-error and every error found. A class, not a closure: runners pickle it.
    """

    def __call__(self, value: bytes):
        record, schema = decode_plain(value)
        observation = normalise(schema.name.rsplit(".", 1)[-1], record)
        return observation, observation["event_time"]
