"""The alert job killed (kill -9) at random points and restarted from its commits ends with exactly the
alert events of an uninterrupted run over the same signals: none lost, none twice, none changed.

Slow (minutes): marked `faults`, run by `make test-faults`. The signals are the recorded UCDP ones
(tests/fixtures/signals) and 150 days of 20 places rising and falling through the rule's levels,
spread over three partitions; TOCSIN_KILLS sets the number of kills (10).
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.conftest import settled
from tocsin.kafka.read import read_topic
from tocsin.pipelines.rules.dryrun import read_signals
from tocsin.serde.avro import decode, default_registry, encode

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.faults]

SIGNALS = Path(__file__).parents[1] / "fixtures" / "signals" / "ucdp_sample_7d_AGO_NGA_SDN.jsonl"
COUNTRIES = ("AFG", "BDI", "CAF", "COD", "ETH", "IRQ", "MLI", "MMR", "NGA", "SDN", "SOM", "SSD", "SYR", "UKR",
             "YEM", "HTI", "LBY", "MOZ", "BFA", "NER")  # fmt: skip
DAY = 86_400_000
KILLS = int(os.environ.get("TOCSIN_KILLS", "10"))
REPLAY = ("--max-out-of-orderness", "1500000000s", "--close-when-idle", "--idle-timeout", "2s")


def alert_job(bootstrap: str, signals: str, alerts: str, dlq: str, group: str) -> list[str]:
    return [
        "-m", "tocsin.pipelines.rules.job", "--signals-topic", signals, "--alerts-topic", alerts,
        "--dead-letter-topic", dlq, "--bootstrap-servers", bootstrap, "--group-id", group,
        "--start", "committed", *REPLAY,
    ]  # fmt: skip


def dense_signals(days: int = 150) -> list[dict]:
    """Daily 7-day windows of armed-conflict deaths for 20 places, rising and falling through the
    packaged rule's levels (10, 100, 1000; resolve below 5): alerts fire, update and resolve all along,
    so a kill at a random moment lands mid-output. The recorded UCDP signals are too sparse for that.

    Complete panes only: with early panes, two uninterrupted runs do not agree (the stage decides an
    early pane as it arrives, so what it raises depends on arrival order), and a restart cannot be
    compared with one. The early pane that comes before a restart's re-read history is guarded by
    tests/pipeline/test_alert_lifecycle.py instead."""
    rng = random.Random(7)
    t0 = 1_600_000_000_000 // DAY * DAY
    signals = []
    for place in COUNTRIES:
        phase, scale = rng.uniform(0, 6.3), rng.choice((30, 300, 3000))
        for d in range(1, days + 1):
            deaths = max(0, int(scale * (0.5 + 0.5 * math.sin(phase + d / 9)) - 3))
            source = f"ucdp-ged:{place}{d // 7}"
            evidence = [{"observation_id": f"{place}{d}", "source_id": source, "title": "t", "url": None,
                         "origin": "ucdp-ged", "event_time": t0 + d * DAY}]  # fmt: skip
            signals.append({
                "id": f"rf1.armed_conflict:{place}:{d}", "indicator_id": "rf1.armed_conflict",
                "country": place, "region": None,
                "window_start": t0 + (d - 7) * DAY, "window_end": t0 + d * DAY,
                "count": 1 + deaths // 10, "weighted_count": 1.0 + deaths // 10, "fatalities": deaths,
                "distinct_sources": 3, "pane": "ON_TIME", "pane_index": 0, "evidence": evidence,
                "evidence_ids": [source], "risk_factors": [1], "emitted_at": t0,
            })  # fmt: skip
    return signals


def events(bootstrap: str, topic: str) -> list[tuple]:
    found = [decode(r.value) for r in read_topic({"bootstrap_servers": bootstrap}, topic)]
    return [(a["id"], a["sequence"], a["status"], a["severity"]) for a in found]


def test_ten_kills_of_the_alert_job_change_no_alert(bootstrap, make_topic, start_pipeline):
    signals, dlq = make_topic("signals", 3), make_topic("dlq")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    schema = default_registry().get("IndicatorSignal")
    for i, signal in enumerate(read_signals(SIGNALS) + dense_signals()):
        producer.send(signals, encode(schema, signal), key=signal["id"].encode(), partition=i % 3)
    producer.flush()
    producer.close()

    calm_alerts = make_topic("alerts-calm", 3)
    calm = start_pipeline(*alert_job(bootstrap, signals, calm_alerts, dlq, "calm"))
    expected = settled(lambda: events(bootstrap, calm_alerts), calm, 45, 400)
    calm.kill()
    print(f"uninterrupted: {len(expected)} events of {len({e[0] for e in expected})} alerts")
    assert len({e[0] for e in expected}) >= 20

    killed_alerts = make_topic("alerts-killed", 3)
    rng = random.Random(20261201)
    args = alert_job(bootstrap, signals, killed_alerts, dlq, "killed")
    kills = []
    for k in range(KILLS):
        job = start_pipeline(*args)
        out = len(events(bootstrap, killed_alerts))
        if k % 2:  # at a random moment: start-up, reading, deciding, writing or idle
            time.sleep(rng.uniform(1, 15))
        else:  # while it writes: once its first new alert event is out, within the next second
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and len(events(bootstrap, killed_alerts)) == out:
                time.sleep(0.2)
            time.sleep(rng.uniform(0, 1))
        kills.append(len(events(bootstrap, killed_alerts)))
        job.kill()
    job = start_pipeline(*args)
    got = settled(lambda: events(bootstrap, killed_alerts), job, 45, 400)
    print(f"{KILLS} kills (alert events out at each: {kills}); {len(got)} events, {len(expected)} expected")
    assert len(got) == len(set(got)), "an alert event was emitted twice"
    assert sorted(got) == sorted(expected), sorted(set(got) ^ set(expected))[:5]
