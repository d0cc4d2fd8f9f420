"""Privacy and the record: the reporter pseudonymised, coordinates coarsened, an IncidentReport built."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import unicodedata
import uuid

from tocsin.connectors.intake.model import ReportIn

KM_PER_DEGREE = 2 * math.pi * 6371.0088 / 360  # mean Earth radius


def pseudonym(secret: str, organisation: str, reporter: str) -> str:
    """Keyed pseudonym of a reporter within an organisation: hex HMAC-SHA256(secret, 'org:reporter').

    Whitespace around the identity and Unicode composition do not change it; without the secret it can be
    neither reversed nor recomputed from a guessed identity.
    """
    identity = unicodedata.normalize("NFC", reporter.strip())
    message = f"{organisation}:{identity}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def coarsen(latitude: float, longitude: float, km: float) -> tuple[float, float]:
    """Snap a point to the nearest node of a grid with `km` spacing north-south and east-west.

    The east-west spacing in degrees uses the snapped latitude, not the true one, so the grid itself does
    not reveal the true latitude.
    """
    lat_step = km / KM_PER_DEGREE
    lat = max(-90.0, min(90.0, round(latitude / lat_step) * lat_step))
    lon_step = min(360.0, km / (KM_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-9)))
    lon = round(longitude / lon_step) * lon_step
    lon = ((lon + 180.0) % 360.0) - 180.0 if not -180.0 <= lon <= 180.0 else lon
    return round(lat, 6), round(lon, 6)


def to_record(
    report: ReportIn,
    organisation: str,
    secret: str,
    *,
    record_uuid: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """The IncidentReport for a validated report, with the reporter pseudonymised."""
    rid = str(record_uuid or uuid.uuid4())
    attributes = {"organisation": organisation}
    latitude, longitude = report.latitude, report.longitude
    if report.coarsen_km is not None and latitude is not None and longitude is not None:
        latitude, longitude = coarsen(latitude, longitude, report.coarsen_km)
        attributes["coarsen_km"] = f"{report.coarsen_km:g}"  # consumers must know the point is approximate
    return {
        "id": f"intake:{rid}",
        "source": f"intake:{organisation}",
        "source_type": report.source_type,
        "source_record_id": rid,
        "event_time": report.event_time,
        "event_time_precision": None,
        "ingested_at": now or dt.datetime.now(dt.UTC),
        "country": report.country,
        "admin1": report.admin1,
        "location_name": report.location_name,
        "latitude": latitude,
        "longitude": longitude,
        "location_precision": None,
        "title": report.title,
        "description": report.description,
        "language": report.language,
        "url": str(report.url) if report.url is not None else None,
        "event_codes": list(report.event_codes),
        "fatalities": report.fatalities.model_dump() if report.fatalities else None,
        "reporter": pseudonym(secret, organisation, report.reporter),
        "attributes": attributes,
    }
