"""UCDP GED, ReliefWeb listing and GDELT 2.0 files through the real broker: counts, fields, dead letters,
resumption."""

from __future__ import annotations

import collections
import functools
import http.server
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile

import pytest
from typer.testing import CliRunner

from tests.conftest import DATA, FIXTURES, ROOT, wait_for
from tocsin.cli import app
from tocsin.kafka.read import read_topic
from tocsin.serde.avro import decode

pytestmark = pytest.mark.integration

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
GDELT = DATA / "gdelt2" / "export_15min"
LISTING = FIXTURES / "reliefweb" / "South_Sudan_excerpt.csv"


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    """Every committed record of a topic, decoded (read_committed, as every tocsin consumer reads)."""
    return [(r.key, decode(r.value)) for r in read_topic({"bootstrap_servers": bootstrap}, topic)]


@pytest.fixture
def topics(make_topic):
    return {"topic": make_topic("incidents", 3), "dlq": make_topic("dlq"), "state": make_topic("state")}


def topic_flags(bootstrap: str, topics: dict) -> list[str]:
    return [
        "-b",
        bootstrap,
        "--topic",
        topics["topic"],
        "--dead-letter-topic",
        topics["dlq"],
        "--state-topic",
        topics["state"],
    ]


def connect(bootstrap, topics, *args) -> str:
    result = CliRunner().invoke(app, ["connect", *args, *topic_flags(bootstrap, topics)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def produced_metric(connector: str) -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value(
            "tocsin_connector_records_total", {"connector": connector, "outcome": "produced"}
        )
        or 0.0
    )


def test_ucdp_sample_lands_once_with_its_fields(bootstrap, topics):
    before = produced_metric("ucdp-ged")
    out = connect(bootstrap, topics, "ucdp", str(UCDP))
    assert produced_metric("ucdp-ged") - before == 1000
    assert out.strip().endswith("1000 produced, 0 dead letters, 0 already done")
    records = read_all(bootstrap, topics["topic"])
    assert len(records) == 1000 and len({k for k, _ in records}) == 1000
    by_id = {r["id"]: r for _, r in records}
    bhunya = by_id["ucdp-ged:14863"]
    assert (bhunya["country"], bhunya["admin1"], bhunya["location_name"]) == (
        "SWZ",
        "Manzini district",
        "Bhunya town",
    )
    assert bhunya["violence_type"] == 3 and bhunya["event_codes"] == ["ucdp:type_of_violence:3"]
    assert bhunya["fatalities"] == {"best": 1, "low": 1, "high": 1, "civilians": 1}
    assert bhunya["actors"] == [
        {"name": "Government of South Africa", "role": "side_a", "country": "ZAF"},
        {"name": "Civilians", "role": "side_b", "country": None},
    ]
    assert (
        bhunya["event_time_precision"] == "day"
        and bhunya["event_time"].isoformat() == "1989-02-12T00:00:00+00:00"
    )
    violence = collections.Counter(r["violence_type"] for r in by_id.values())
    assert violence == {1: 707, 2: 133, 3: 160}  # the counts the data README gives
    assert all(r["country"] for r in by_id.values())
    # Running the same file again produces nothing: the cursor says it is done.
    again = connect(bootstrap, topics, "ucdp", str(UCDP))
    assert again.strip().endswith("0 produced, 0 dead letters, 1000 already done")
    assert len(read_all(bootstrap, topics["topic"])) == 1000


def test_ucdp_rows_that_cannot_be_parsed_go_to_the_dead_letter_topic(bootstrap, topics, tmp_path):
    lines = UCDP.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].split(",")
    broken = tmp_path / "ucdp_broken.csv"
    rows = lines[1:4]
    bad_date = rows[1].split(",")
    bad_date[header.index("date_start")] = "someday"
    bad_best = rows[2].split(",")
    bad_best[header.index("best")] = "many"
    broken.write_text(lines[0] + rows[0] + ",".join(bad_date) + ",".join(bad_best), encoding="utf-8")
    out = connect(bootstrap, topics, "ucdp", str(broken))
    assert out.strip().endswith("1 produced, 2 dead letters, 0 already done")
    letters = [r for _, r in read_all(bootstrap, topics["dlq"])]
    assert [(d["reason"], d["errors"], d["offset"]) for d in letters] == [
        ("parse-error", ["line 3: date_start: 'someday' is not a date"], 3),
        ("parse-error", ["line 4: best: 'many' is not a number"], 4),
    ]
    assert all(d["stage"] == "connector.ucdp-ged" and d["source"] == "ucdp_broken.csv" for d in letters)
    assert letters[0]["payload"].decode().startswith(bad_date[0])


def test_a_reliefweb_listing_lands_once_oldest_first(bootstrap, make_topic):
    # One partition, so the topic's order is the replay's order.
    topics = {"topic": make_topic("news", 1), "dlq": make_topic("dlq"), "state": make_topic("state")}
    before = produced_metric("reliefweb-csv")
    out = connect(bootstrap, topics, "reliefweb-csv", str(LISTING), "--country", "SSD", "--batch-size", "10")
    assert out.strip().endswith("29 produced, 0 dead letters, 0 already done")
    assert produced_metric("reliefweb-csv") - before == 29
    records = [r for _, r in read_all(bootstrap, topics["topic"])]
    assert len(records) == 29 and len({r["id"] for r in records}) == 29
    times = [r["event_time"] for r in records]
    assert times == sorted(times) and times[0].isoformat() == "1974-01-01T00:00:00+00:00"
    newest = records[-1]  # the listing's last row of its newest day (it is newest first)
    assert (newest["id"], newest["source"], newest["country"]) == ("reliefweb:633030", "reliefweb", "SSD")
    assert newest["title"] == "ICRC reconnects more 650 people with their families"
    assert newest["link"] == "http://reliefweb.int/node/633030" and newest["attributes"] == {"row": "108"}
    cursors = [r for _, r in read_all(bootstrap, topics["state"])]
    assert len(cursors) == 3  # one per transaction of 10
    assert cursors[-1]["instance"] == "reliefweb-csv/South_Sudan_excerpt.csv"
    assert cursors[-1]["cursor_json"] == (
        '{"file": "South_Sudan_excerpt.csv", "order": "event_time", "position": 29}'
    )
    # Running the same file again produces nothing: the cursor says it is done.
    again = connect(bootstrap, topics, "reliefweb-csv", str(LISTING), "--country", "SSD")
    assert again.strip().endswith("0 produced, 0 dead letters, 29 already done")
    assert len(read_all(bootstrap, topics["topic"])) == 29


def test_listing_rows_that_cannot_be_parsed_go_to_the_dead_letter_topic(bootstrap, make_topic, tmp_path):
    topics = {"topic": make_topic("news", 1), "dlq": make_topic("dlq"), "state": make_topic("state")}
    lines = LISTING.read_text(encoding="utf-8").splitlines(keepends=True)
    broken = tmp_path / "listing_broken.csv"
    broken.write_text(
        lines[0] + lines[1] + lines[2].replace("2014-01-29", "someday") + '"x","","",2014-01-29,""\n',
        encoding="utf-8",
    )
    out = connect(bootstrap, topics, "reliefweb-csv", str(broken))
    assert out.strip().endswith("1 produced, 2 dead letters, 0 already done")
    letters = [r for _, r in read_all(bootstrap, topics["dlq"])]
    assert [(d["reason"], d["errors"], d["offset"]) for d in letters] == [
        ("parse-error", ["line 3: date.created: 'someday' is not a date"], 3),
        (
            "parse-error",
            ["line 4: data.list.id: required value missing", "line 4: title: required value missing"],
            4,
        ),
    ]
    assert all(d["stage"] == "connector.reliefweb-csv" for d in letters)
    assert all(d["source"] == "listing_broken.csv" for d in letters)


def test_all_gdelt_export_files_land_with_iso3_countries(bootstrap, topics):
    out = connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    # All 9,354 rows of the 32 files are well formed: every one lands, none is a dead letter.
    assert out.strip().endswith("9354 produced, 0 dead letters, 0 already done")
    records = {r["id"]: r for _, r in read_all(bootstrap, topics["topic"])}
    assert len(records) == 9354
    assert read_all(bootstrap, topics["dlq"]) == []
    helmand = records["gdelt2:954680550"]
    assert helmand["country"] == "AFG" and helmand["admin1"] == "Helmand"
    assert helmand["event_codes"] == ["cameo:190", "cameo-base:190", "cameo-root:19"]
    assert helmand["goldstein"] == -10.0 and helmand["num_sources"] == 1
    assert helmand["actors"] == [
        {"name": "AFGHANISTAN", "role": "actor1", "country": "AFG"},
        {"name": "UNITED KINGDOM", "role": "actor2", "country": "GBR"},
    ]
    assert helmand["attributes"]["ActionGeo_CountryCode"] == "AF"  # FIPS kept verbatim
    assert helmand["url"].startswith("https://www.elystandard.co.uk/news/")
    # Countries come from place names; 25 events have no country: 14 without any place, 9 in the
    # Black Sea, 2 on the (disputed) Paracel Islands.
    missing = collections.Counter(r["location_name"] for r in records.values() if r["country"] is None)
    assert missing == {None: 14, "Black Sea, Oceans (general), Oceans": 9, "Paracel Islands": 2}
    assert all(len(r["country"]) == 3 for r in records.values() if r["country"])


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_gdelt_follows_lastupdate_txt(bootstrap, topics, tmp_path):
    name = "20201113001500.export.CSV"
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.write(GDELT / name, arcname=name)
    (tmp_path / f"{name}.zip").write_bytes(body.getvalue())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Files, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (tmp_path / "lastupdate.txt").write_text(
        f"{len(body.getvalue())} 0f0e {base}/{name}.zip\n1 ab {base}/x.mentions.CSV.zip\n"
    )
    try:
        expected = sum(1 for line in (GDELT / name).read_text().splitlines() if line.strip())
        first = connect(bootstrap, topics, "gdelt", "--url", base, "--once")
        assert f"{expected} produced, 0 dead letters" in first
        second = connect(bootstrap, topics, "gdelt", "--url", base, "--once")
        assert "0 produced, 0 dead letters" in second
        assert len(read_all(bootstrap, topics["topic"])) == expected
    finally:
        server.shutdown()


def test_replay_killed_midway_and_restarted_holds_each_record_once(bootstrap, topics, tmp_path):
    args = [
        sys.executable,
        "-m",
        "tocsin.cli",
        "connect",
        "gdelt",
        "--dir",
        str(GDELT),
        *topic_flags(bootstrap, topics),
        "--batch-size",
        "50",
        "--speed",
        "20000",
    ]
    log = open(tmp_path / "replay.log", "wb")
    first = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(
            lambda: len(read_all(bootstrap, topics["topic"])) >= 2000,
            120,
            interval=0.5,
            message="the replay to get going",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    landed = len(read_all(bootstrap, topics["topic"]))
    assert 2000 <= landed < 9354, "the replay must be killed mid-way"
    time.sleep(0.5)
    second = subprocess.run(args[:-2], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    keys = [k for k, _ in read_all(bootstrap, topics["topic"])]
    assert len(keys) == 9354 and len(set(keys)) == 9354
    assert f"{9354 - landed} produced" in second.stdout
