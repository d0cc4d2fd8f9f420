"""The indicator pipeline on the real broker and the local streaming runner (Prism).

End to end: the 32 real GDELT export files and the UCDP GED sample go in through the connectors, the
streaming pipeline turns them into signals, and every signal's count, deaths and distinct sources match a
computation done here, independently, over the same files: CAMEO codes, Goldstein scores, UCDP types of
violence, deaths and dates are read from the files with the csv module, matched against the catalogue's
codes read from its YAML, and windowed by hand. Only the place (country, first-level region) and the
article URL are taken from the connectors' records, by record id: geocoding is the connectors' job and
their own tests check it.

Lateness: records behind the watermark by more than the allowed lateness go to the dead-letter topic with
reason too-late and are counted in tocsin_source_late_records_total; records within it update their window
in a late pane; records that cannot be normalised are dead letters too; a killed pipeline restarts without
losing or double counting a window.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer

from tests.conftest import DATA, connect, wait_for
from tocsin.formats.gdelt import COLUMNS
from tocsin.kafka.local_broker import free_port
from tocsin.kafka.read import read_topic
from tocsin.pipelines.indicators.catalogue import packaged_catalogue_path
from tocsin.serde.avro import decode, default_registry, encode

pytestmark = [pytest.mark.integration, pytest.mark.runner]

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
GDELT = DATA / "gdelt2" / "export_15min"
DAY_MS = 86_400_000
WINDOWS = ((DAY_MS, DAY_MS), (7 * DAY_MS, DAY_MS))


def pipeline_args(bootstrap: str, topics: dict, group: str, *extra: str) -> list[str]:
    return [
        "-m",
        "tocsin.pipelines.indicators.job",
        "--input-topic",
        topics["raw"],
        "--observations-topic",
        topics["observations"],
        "--signals-topic",
        topics["signals"],
        "--bootstrap-servers",
        bootstrap,
        "--group-id",
        group,
        "--dead-letter-topic",
        topics["dlq"],
        *extra,
    ]


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def latest_signals(bootstrap: str, topic: str) -> dict[str, dict]:
    """The topic's meaning: the last pane per signal id (one key always lands on one partition)."""
    out = {}
    for record in read_topic({"bootstrap_servers": bootstrap}, topic):
        out[record.key.decode()] = decode(record.value)
    return out


# ---------------------------------------------------------------------------------------------- expected


def code_rules(catalogue: dict) -> dict[str, dict]:
    """Per enabled indicator: its CAMEO codes by level, Goldstein ceiling, UCDP types and minimum deaths."""
    rules = {}
    for indicator in catalogue["indicators"]:
        if indicator.get("enabled", True) is False:
            continue
        match = indicator["match"]
        cameo = match.get("cameo") or {}
        rules[indicator["id"]] = {
            "event": set(cameo.get("event", {})),
            "base": set(cameo.get("base", {})),
            "root": set(cameo.get("root", {})),
            "goldstein_max": match.get("goldstein_max"),
            "ucdp": set(match.get("ucdp_violence_types", [])),
            "min_deaths": match.get("min_deaths"),
        }
    return rules


def gdelt_rows():
    for path in sorted(GDELT.glob("*.export.CSV")):
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for values in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                yield dict(zip(COLUMNS, values, strict=True))


def expected_signals(rules: dict, places: dict[str, dict]) -> dict[str, tuple[int, int, int]]:
    """signal id -> (count, fatalities, distinct sources), computed from the files.

    Distinct sources: the distinct publishers of a window's events, or the largest number of sources one
    of them reports for itself (UCDP number_of_sources, GDELT NumSources) when that is larger. An event
    known only within a span of days longer than a window is not in that window."""
    events = []  # (record id, event ms, deaths, indicator ids, reported sources, span in days)
    for row in gdelt_rows():
        record_id = f"gdelt2:{row['GLOBALEVENTID']}"
        code, goldstein = row["EventCode"], float(row["GoldsteinScale"])
        matched = [
            i
            for i, r in rules.items()
            if (code in r["event"] or code[:3] in r["base"] or code[:2] in r["root"])
            and (r["goldstein_max"] is None or goldstein <= r["goldstein_max"])
        ]
        day = dt.datetime.strptime(row["SQLDATE"], "%Y%m%d").replace(tzinfo=dt.UTC)
        events.append((record_id, int(day.timestamp() * 1000), 0, matched, int(row["NumSources"] or 1), 1))
    with UCDP.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            record_id = f"ucdp-ged:{row['id']}"
            violence, deaths = int(row["type_of_violence"]), int(row["best"])
            matched = [
                i
                for i, r in rules.items()
                if violence in r["ucdp"] and (r["min_deaths"] is None or deaths >= r["min_deaths"])
            ]
            start = dt.datetime.fromisoformat(row["date_start"][:10]).replace(tzinfo=dt.UTC)
            end = dt.datetime.fromisoformat(row["date_end"][:10]).replace(tzinfo=dt.UTC)
            span = (end - start).days + 1
            sources = int(row["number_of_sources"]) if row["number_of_sources"].strip() else 1
            events.append((record_id, int(start.timestamp() * 1000), deaths, matched, sources, span))

    ids, deaths_by, origins = defaultdict(set), defaultdict(int), defaultdict(set)
    reported = defaultdict(lambda: 1)
    for record_id, event_ms, deaths, matched, sources, span in events:
        place = places.get(record_id)
        if place is None or not place["country"] or not matched:
            continue  # rejected by its connector, or not located, or no indicator
        host = (urlsplit(place["url"]).hostname or "").removeprefix("www.") if place["url"] else ""
        origin = host or record_id.split(":")[0]
        keys = [place["country"]] + ([f"{place['country']}/{place['admin1']}"] if place["admin1"] else [])
        for size, period in WINDOWS:
            if span > 1 and span * 86_400_000 > size:
                continue  # a month-long span cannot be placed in a week
            last_start = event_ms - event_ms % period
            for start in range(last_start - size + period, last_start + 1, period):
                for indicator in matched:
                    for where in keys:
                        sid = f"{indicator}:{where}:{start}-{start + size}"
                        ids[sid].add(record_id)
                        deaths_by[sid] += deaths
                        origins[sid].add(origin)
                        reported[sid] = max(reported[sid], sources)
    return {sid: (len(ids[sid]), deaths_by[sid], max(len(origins[sid]), reported[sid])) for sid in ids}


# ---------------------------------------------------------------------------------------------- tests


@pytest.fixture
def topics(make_topic):
    return {
        "raw": make_topic("incidents", 3),
        "observations": make_topic("observations", 3),
        "signals": make_topic("signals", 3),
        "dlq": make_topic("dlq"),
        "connector_dlq": make_topic("connector-dlq"),
        "state": make_topic("state"),
    }


def codes_only_catalogue(tmp_path: Path) -> Path:
    """The packaged catalogue without its keyword rules: the codes the independent computation checks."""
    catalogue = yaml.safe_load(packaged_catalogue_path().read_text(encoding="utf-8"))
    kept = []
    for indicator in catalogue["indicators"]:
        indicator["match"].pop("keywords", None)
        if indicator["match"].get("cameo") or indicator["match"].get("ucdp_violence_types"):
            kept.append(indicator)
    catalogue["indicators"] = kept
    catalogue["external_lexicons"] = {}
    path = tmp_path / "codes.yaml"
    path.write_text(yaml.safe_dump(catalogue, allow_unicode=True), encoding="utf-8")
    return path


def test_real_gdelt_and_ucdp_data_through_connectors_become_the_expected_signals(
    bootstrap, topics, start_pipeline, tmp_path
):
    connect(bootstrap, topics, "ucdp", str(UCDP))
    connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    raw = [decode(r.value) for r in read_topic({"bootstrap_servers": bootstrap}, topics["raw"])]
    places = {r["id"]: {"country": r["country"], "admin1": r["admin1"], "url": r["url"]} for r in raw}
    assert len(raw) > 9000

    catalogue_path = codes_only_catalogue(tmp_path)
    expected = expected_signals(code_rules(yaml.safe_load(catalogue_path.read_text())), places)
    assert len(expected) > 1000

    # UCDP events from 1989 on arrive after newer ones: the allowed out-of-orderness (47 years) holds the
    # watermark back while the data is read, so every record is on time; once a partition is fully read,
    # --close-when-idle moves its watermark to its latest event, and every window ending by then closes
    # with an on-time pane. (Late data has its own test below.)
    pipeline = start_pipeline(
        *pipeline_args(bootstrap, topics, "g-e2e"),
        "--catalogue", str(catalogue_path),
        "--window", "1d/1d",
        "--window", "7d/1d",
        "--early-after", "0",
        "--max-out-of-orderness", "1500000000s",
        "--close-when-idle",
        "--idle-timeout", "2s",
    )  # fmt: skip
    # The watermark ends at the earliest of the partitions' latest events: windows ending after it
    # stay open.
    latest_by_partition = defaultdict(int)
    for record in read_topic({"bootstrap_servers": bootstrap}, topics["raw"]):
        latest_by_partition[record.partition] = max(
            latest_by_partition[record.partition], _ms(decode(record.value)["event_time"])
        )
    closed_by = min(latest_by_partition.values())
    expected = {k: v for k, v in expected.items() if int(k.rsplit("-", 1)[1]) <= closed_by}

    def actual():
        got = latest_signals(bootstrap, topics["signals"])
        return got, {k: (v["count"], v["fatalities"], v["distinct_sources"]) for k, v in got.items()}

    try:
        wait_for(lambda: not pipeline.alive() or actual()[1] == expected, 300, interval=3, message="signals")
    except AssertionError:
        pass  # the comparison below says which signals differ
    assert pipeline.alive(), pipeline.log_tail()
    got, found = actual()
    missing = sorted(set(expected) - set(found))[:5]
    extra = sorted(set(found) - set(expected))[:5]
    wrong = [
        (k, found[k], expected[k]) for k in sorted(set(found) & set(expected)) if found[k] != expected[k]
    ]
    assert (missing, extra, wrong[:5]) == ([], [], [])

    # Evidence points back to source records, and every raw record became one observation.
    sample = got[max(got, key=lambda k: got[k]["count"])]
    assert set(sample["evidence_ids"]) <= set(places)
    assert [e["source_id"] for e in sample["evidence"]] == sample["evidence_ids"]
    observations = read_topic({"bootstrap_servers": bootstrap}, topics["observations"])
    assert {decode(o.value)["source_ids"][0] for o in observations} == set(places)


# ---------------------------------------------------------------------------------------------- lateness

T0 = 1_605_225_600_000  # 2020-11-13T00:00:00Z


def incident(n: int, event_ms: int, country: str = "MLI", source: str = "gdelt2") -> bytes:
    return encode(
        default_registry().get("IncidentReport"),
        {
            "id": f"{source or 'x'}:{n}",
            "source": source,
            "source_type": "EVENT_DATA",
            "source_record_id": str(n),
            "event_time": event_ms,
            "ingested_at": event_ms,
            "country": country,
            "url": f"https://press{n % 2}.example.org/{n}",
            "event_codes": ["cameo:190", "cameo-base:190", "cameo-root:19"],
            "goldstein": -10.0,
        },
    )


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def dead_letters(bootstrap: str, topic: str) -> list[dict]:
    return [decode(r.value) for r in read_topic({"bootstrap_servers": bootstrap}, topic)]


def test_late_records_update_their_window_and_too_late_ones_are_dead_letters(
    bootstrap, topics, start_pipeline
):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    port = free_port()
    pipeline = start_pipeline(
        *pipeline_args(bootstrap, topics, "g-late"),
        "--window", "1d/1d",
        "--allowed-lateness", "1d",
        "--early-after", "0",
        "--max-out-of-orderness", "0s",
        "--idle-timeout", "3s",  # the empty partitions stop holding the watermark back
        "--metrics-port", str(port),
    )  # fmt: skip
    day0 = f"rf1.armed_conflict:MLI:{T0}-{T0 + DAY_MS}"
    for n, at in enumerate([T0 + 1000, T0 + 2000, T0 + DAY_MS + 60_000]):  # day 1 starts: day 0 on time
        producer.send(topics["raw"], key=b"k", value=incident(n, at), partition=0)
    producer.flush()
    wait_for(lambda: day0 in latest_signals(bootstrap, topics["signals"]) or not pipeline.alive(), 120)
    assert pipeline.alive(), pipeline.log_tail()
    first = latest_signals(bootstrap, topics["signals"])[day0]
    assert (first["pane"], first["count"]) == ("ON_TIME", 2)

    producer.send(topics["raw"], key=b"k", value=incident(3, T0 + 3_600_000), partition=0)  # late, < 1 day
    producer.send(topics["raw"], key=b"k", value=incident(4, T0 + 3 * DAY_MS), partition=0)  # wm: day 3
    producer.flush()
    wait_for(
        lambda: latest_signals(bootstrap, topics["signals"])[day0]["count"] == 3, 60, message="late pane"
    )
    assert latest_signals(bootstrap, topics["signals"])[day0]["pane"] == "LATE"

    before = metric(port, "tocsin_source_late_records_total")
    producer.send(topics["raw"], key=b"k", value=incident(5, T0 + 6000), partition=0)  # 3 days behind
    producer.send(topics["raw"], key=b"k", value=incident(6, T0 + 7000, source=""), partition=0)  # bad
    producer.flush()

    def letters():
        return {d["reason"]: d for d in dead_letters(bootstrap, topics["dlq"])}

    found = wait_for(lambda: len(letters()) == 2 and letters(), 60, message="two dead letters")
    assert found["too-late"]["errors"] == [
        f"event time {T0 + 6000} ms is more than 86400 s (the allowed lateness) behind the watermark"
    ]
    assert decode(found["too-late"]["payload"])["id"] == "gdelt2:5"
    assert found["normalise-error"]["errors"] == ["source: missing"]
    assert metric(port, "tocsin_source_late_records_total") == before + 1
    assert latest_signals(bootstrap, topics["signals"])[day0]["count"] == 3  # the too-late one never counted


def test_a_killed_pipeline_restarts_without_losing_or_double_counting_a_window(
    bootstrap, topics, start_pipeline
):
    """Sliding windows (2 days every day): after a crash, windows still open are rebuilt whole."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    expected: dict[str, int] = defaultdict(int)
    n = 0

    def produce(first_hour: int, last_hour: int):
        nonlocal n
        for hour in range(first_hour, last_hour):
            for country in ("MLI", "BFA"):
                n += 1
                at = T0 + hour * 3_600_000
                producer.send(topics["raw"], key=str(n).encode(), value=incident(n, at, country))
                day = at - at % DAY_MS
                for start in (day - DAY_MS, day):
                    expected[f"rf1.armed_conflict:{country}:{start}-{start + 2 * DAY_MS}"] += 1
        producer.flush()

    group = f"g-restart-{topics['raw']}"
    args = pipeline_args(bootstrap, topics, group) + [
        "--window", "2d/1d",
        "--allowed-lateness", "0",
        "--early-after", "1s",  # windows still open at the end show their value too
        "--max-out-of-orderness", "0s",
        "--idle-timeout", "3s",
        "--no-regions",
    ]  # fmt: skip
    produce(0, 24 * 4)
    first = start_pipeline(*args)
    wait_for(lambda: len(latest_signals(bootstrap, topics["signals"])) >= 6 or not first.alive(), 120)
    assert first.alive(), first.log_tail()
    # More input arrives while the pipeline runs: days 4-6, so the windows ending by day 6 close and
    # the offsets of days 0-3 can be committed (the runner holds the sink's watermark at the earliest
    # element of a window still open, so commits trail the input by a window size).
    produce(24 * 4, 24 * 7)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        wait_for(lambda: admin.list_group_offsets(group).get(group), 60, message="a first commit")
    finally:
        admin.close()
    first.kill()  # ...and once it has committed, it is killed mid-stream, like a crash
    produce(24 * 7, 24 * 9)  # input keeps arriving while it is down
    second = start_pipeline(*args)

    def counts():
        return {k: v["count"] for k, v in latest_signals(bootstrap, topics["signals"]).items()}

    try:
        wait_for(lambda: counts() == expected or not second.alive(), 180, interval=1, message="full counts")
    except AssertionError:
        pass
    assert second.alive(), second.log_tail()
    assert counts() == dict(expected)


# ---------------------------------------------------------------------------------------------- batch


def test_batch_mode_over_the_files_gives_the_same_signals(tmp_path):
    """The same transforms in batch over the files themselves: every window closes at the end of input."""
    import io as io_
    import subprocess
    import sys

    from tocsin.formats import gdelt, ucdp

    parsed = [item for _, item in ucdp.parse_csv(io_.StringIO(UCDP.read_text(encoding="utf-8")))]
    for path in gdelt.export_files(GDELT):
        parsed += [item for _, item in gdelt.parse_text(gdelt.read_export(path))]
    places = {
        r["id"]: {"country": r["country"], "admin1": r["admin1"], "url": r["url"]}
        for r in parsed
        if isinstance(r, dict)
    }
    catalogue_path = codes_only_catalogue(tmp_path)
    expected = expected_signals(code_rules(yaml.safe_load(catalogue_path.read_text())), places)
    out = tmp_path / "signals.jsonl"
    args = [
        "-m", "tocsin.pipelines.indicators.job", "--batch",
        "--from-file", str(UCDP), "--from-file", str(GDELT),
        "--catalogue", str(catalogue_path),
        "--window", "1d/1d", "--window", "7d/1d",
        "--output-file", str(out),
    ]  # fmt: skip
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    latest = {}
    for line in out.read_text().splitlines():
        signal = json.loads(line)
        latest[signal["id"]] = (signal["count"], signal["fatalities"], signal["distinct_sources"])
    assert latest == expected
