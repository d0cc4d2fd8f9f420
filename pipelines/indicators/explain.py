"""`tocsin indicators explain`: which indicators an observation meets and why, and the deaths read from it.

The tool a lexicon author uses: the same classifier and death reader as the pipeline, on a text typed at the
prompt or on a file of observations (CSV with a `title` column and optional `text`, `language`,
`source_type`; or JSON lines of such objects).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tocsin.pipelines.indicators.casualties import read_deaths
from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.indicators.classify import classify

FIELDS = ("title", "text", "language", "source_type")


def observation_of(text: str, language: str | None = None, source_type: str | None = None) -> dict:
    return {"title": text, "language": language, "source_type": (source_type or "NEWS").upper()}


def explain(catalogue: Catalogue, observation: dict) -> dict:
    """{matches: [{indicator, title, risk_factors, weight, reasons}], deaths, deaths_phrase}."""
    deaths, phrase = read_deaths(observation.get("title"), observation.get("text"))
    matches = []
    for match in classify(catalogue, observation):
        indicator = catalogue.by_id(match.indicator_id)
        if indicator.match.every_report:
            continue  # the volume of reports: every report counts, which says nothing of this one
        matches.append(
            {
                "indicator": match.indicator_id,
                "title": indicator.title,
                "risk_factors": list(indicator.risk_factors),
                "weight": match.weight,
                "reasons": list(match.reasons),
            }
        )
    return {"matches": matches, "deaths": deaths, "deaths_phrase": phrase}


def describe(observation: dict, result: dict) -> str:
    lines = [observation.get("title") or observation.get("text") or ""]
    for m in result["matches"]:
        rfs = ", ".join(f"RF{n}" for n in m["risk_factors"])
        lines.append(f"  {m['indicator']} ({rfs}, weight {m['weight']:g}): {'; '.join(m['reasons'])}")
    if not result["matches"]:
        lines.append("  no indicator")
    if result["deaths"]:
        lines.append(f"  deaths read: {result['deaths']} (from '{result['deaths_phrase']}')")
    return "\n".join(lines)


class ObservationsFileError(ValueError):
    pass


def read_observations(path: Path) -> Iterator[dict]:
    """Observations from a CSV (a `title` column) or JSON-lines file; a bad file raises one line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ObservationsFileError(f"{path.name}: cannot read: {error}") from None
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ObservationsFileError(f"{path.name} line {number}: not JSON ({error.msg})") from None
            if not isinstance(item, dict):
                raise ObservationsFileError(f"{path.name} line {number}: not a JSON object")
            yield {k: item.get(k) for k in FIELDS}
        return
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "title" not in header and "text" not in header:
        shown = ", ".join(header) or "nothing"
        raise ObservationsFileError(
            f"{path.name}: a CSV needs a title or text column (the header has: {shown})"
        )
    reader.fieldnames = header
    for row in reader:
        yield {k: (row.get(k) or "").strip() or None for k in FIELDS}


def tally(results: list[dict]) -> str:
    counts = Counter(m["indicator"] for r in results for m in r["matches"])
    matched = sum(1 for r in results if r["matches"])
    with_deaths = sum(1 for r in results if r["deaths"])
    lines = [f"{len(results)} observations, {matched} matched an indicator, {with_deaths} state deaths"]
    lines += [f"  {n:6} {indicator}" for indicator, n in counts.most_common()]
    return "\n".join(lines)
