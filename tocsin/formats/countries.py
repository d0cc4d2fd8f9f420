"""Country normalisation to ISO 3166-1 alpha-3 with country_converter (a maintained library).

UCDP gives Gleditsch-Ward codes; GDELT gives FIPS 10-4 codes, which no maintained Python library maps,
so GDELT places are converted from the country name that ends their full name ("Helmand, Helmand,
Afghanistan"), and the FIPS code is kept verbatim in the record's attributes.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import pycountry

_converter = None


def _coco():
    global _converter
    if _converter is None:
        # Imported on first use, not at module top: importing country_converter takes 0.65-0.95 s
        # (measured; most of it pandas), which every importer of this module (each parser, the back-test's
        # episodes) would pay even when it converts no name.
        import country_converter  # noqa: PLC0415 (0.7 s of pandas, paid only when a name is converted)

        logging.getLogger("country_converter").setLevel(logging.ERROR)  # "not found" is our None
        _converter = country_converter.CountryConverter()
    return _converter


def _one(value) -> str | None:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) and len(value) == 3 and value.isalpha() else None


@lru_cache(maxsize=4096)
def iso3_from_gw(code: int) -> str | None:
    """Gleditsch-Ward state number (UCDP country_id, gwnoa) -> ISO alpha-3."""
    return _one(_coco().convert(code, src="GWcode", to="ISO3", not_found=None))


@lru_cache(maxsize=4096)
def iso3_from_name(name: str) -> str | None:
    name = name.strip()
    if not name:
        return None
    return _one(_coco().convert(name, to="ISO3", not_found=None))


@lru_cache(maxsize=4096)
def iso3_from_place(full_name: str) -> str | None:
    """Country of a GDELT place name 'City, Region, Country' (the country may hold a comma itself:
    'Seoul, Seoul-t'ukpyolsi, Korea, Republic Of')."""
    parts = [p.strip() for p in full_name.split(",") if p.strip()]
    if not parts:
        return None
    if len(parts) == 1:
        return iso3_from_name(parts[0])
    return iso3_from_name(parts[-1]) or iso3_from_name(", ".join(parts[-2:])) or iso3_from_name(parts[-2])


@lru_cache(maxsize=4096)
def iso3_checked(code: str) -> str | None:
    """An ISO alpha-3 code if it is one (CAMEO actor country codes are mostly ISO alpha-3; some, such
    as AFR or EUR, are regions)."""
    return code if len(code) == 3 and pycountry.countries.get(alpha_3=code.upper()) else None
