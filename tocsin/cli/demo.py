"""`tocsin demo`: the whole system on the bundled real data, from a clean start.

Starts a local Kafka broker (unless --bootstrap-servers names a cluster), creates the topics, runs every
connector on `sample_data/` (UCDP GED, GDELT 2.0, RSS, ReliefWeb) and one field-monitor report through
the HTTP intake; then the indicator pipeline and the alert pipeline on the local streaming runner (Prism),
each as its own process; then the response router with a local webhook receiver standing for the
regional and UN offices: alerts are delivered, escalated when nobody answers, and one is acknowledged.
It ends with a summary and the ledger's verification, and stops everything it started.
"""

from __future__ import annotations

import collections
import json
import secrets
import shutil
import tempfile
import urllib.request
from pathlib import Path

from kafka import KafkaAdminClient
from rich.console import Console
from rich.table import Table

from tocsin.cli.demo_stages import demo_rules, job_args, ledger_verified, run_router, wait_settled
from tocsin.config import KafkaSettings, cache_dirs
from tocsin.connectors import reliefweb, rss
from tocsin.connectors.ingest import ingest_gdelt, ingest_ucdp
from tocsin.connectors.intake import IntakeConfig, serve
from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port
from tocsin.kafka.read import read_topic
from tocsin.kafka.topics import (
    ALERTS,
    DEAD_LETTERS,
    INCIDENTS,
    LEDGER,
    NEWS,
    SIGNALS,
    create_topics,
    load_topics,
)
from tocsin.organisations import Organisation, token_digest
from tocsin.pipelines.rules.dryrun import describe
from tocsin.processes import StageProcess
from tocsin.router.ledger import read_ledger, story
from tocsin.sample_data import SAMPLE_DIR
from tocsin.serde.avro import decode


def _read_committed(client: dict, topic: str) -> list[dict]:
    return [decode(r.value) for r in read_topic(client, topic)]


def _intake_report(client: dict, console: Console) -> str:
    """Post one field-monitor report through the real HTTP intake; return the id it answered with."""

    token = secrets.token_urlsafe(32)
    config = IntakeConfig(
        secret=secrets.token_hex(32),
        port=0,
        organisations=[Organisation(name="demo-monitors", token_sha256=token_digest(token))],
    )
    server = serve(config, client)
    try:
        body = json.dumps(
            {
                "title": "Demo field report: armed men set houses on fire in a village",
                "description": "Submitted by the tocsin demo to show the intake path; not a real report.",
                "event_time": "2020-11-15T08:30:00+00:00",
                "country": "ETH",
                "location_name": "Demo village",
                "latitude": 13.4967,
                "longitude": 39.4753,
                "coarsen_km": 10,
                "reporter": "demo monitor <monitor@example.org>",
                "source_type": "FIELD_MONITOR",
            }
        ).encode()
        request = urllib.request.Request(
            f"{server.url}/v1/reports",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            console.log(f"intake answered {response.status} with report id {answer['id']}")
            return answer["id"]
    finally:
        server.stop()


def _pipelines_and_router(client: dict, bootstrap: str, console: Console, records_in: int, wait: bool) -> int:
    logs = Path(tempfile.mkdtemp(prefix="tocsin-demo-logs-"))
    jobs = []
    try:
        console.rule("indicator signals")
        jobs.append(
            StageProcess(
                [
                    "-m",
                    "tocsin.pipelines.indicators.job",
                    *job_args(bootstrap, "demo-indicators"),
                    "--window",
                    "7d/1d",
                    "--no-regions",
                    "--early-every",
                    "5",
                    "--early-after",
                    "0",
                ],
                logs / "indicators.log",
            )
        )
        signals = wait_settled(client, SIGNALS, jobs[-1], console, "indicator pipeline")
        console.log(f"indicator pipeline: {signals} signal panes on {SIGNALS} (7-day windows, daily)")
        jobs[-1].stop()

        console.rule("threshold rules and alerts")
        jobs.append(
            StageProcess(
                [
                    "-m",
                    "tocsin.pipelines.rules.job",
                    *job_args(bootstrap, "demo-alerts"),
                    "--rules",
                    str(demo_rules(logs)),
                ],
                logs / "alerts.log",
            )
        )
        alerts_written = wait_settled(client, ALERTS, jobs[-1], console, "alert pipeline")
        jobs[-1].stop()
        alerts = _read_committed(client, ALERTS)
        firing = [a for a in alerts if a["status"] == "FIRING"]
        console.log(f"alert pipeline: {alerts_written} alert events ({len(firing)} fired)")
        for alert in firing[:3]:
            console.print(describe(alert))
        if len(firing) > 3:
            console.print(f"  ... and {len(firing) - 3} more")

        console.rule("response routing")
        routed = run_router(client, console, wait)

        entries, problems = ledger_verified(client)
        dead = _read_committed(client, DEAD_LETTERS)
        table = Table(title="tocsin demo: summary")
        table.add_column("")
        table.add_column("count", justify="right")
        for name, value in (
            ("records in (incidents and news)", records_in),
            ("signal panes", signals),
            ("alert events", alerts_written),
            ("alerts fired", len({a["id"] for a in firing})),
            ("deliveries (attempts)", routed["deliveries"]),
            ("resolved notices delivered", routed["resolutions"][0]),
            ("of them to a receiver never told of the firing", routed["resolutions"][1]),
            ("escalations", routed["escalations"]),
            ("acknowledgements and decisions", routed["answers"]),
            ("dead letters", len(dead)),
            ("ledger entries", entries),
        ):
            table.add_row(name, str(value))
        console.print(table)
        if problems:
            console.print("[red]ledger does NOT verify[/red]: " + "; ".join(problems[:3]))
            return 1
        console.print(f"ledger verified: {entries} entries, signed, hash chain intact")
        if routed["answered"]:
            console.rule(f"the ledger's story of {routed['answered']}")
            for line in story(read_ledger(client, LEDGER), routed["answered"]):
                console.print(line, soft_wrap=True, highlight=False)
        return 0
    finally:
        for job in jobs:
            job.stop()
        console.log("pipelines stopped")


def run_demo(bootstrap: str | None = None, speed: float | None = None, wait: bool = True) -> int:
    console = Console()
    broker = None
    data_dir = None
    if bootstrap is None:
        cache = cache_dirs()[0]
        data_dir = Path(tempfile.mkdtemp(prefix="tocsin-demo-kafka-"))
        broker = LocalBroker(
            libs_dir=cache / f"kafka-{KAFKA_VERSION}" / "libs",
            data_dir=data_dir,
            port=free_port(),
            controller_port=free_port(),
        )
        console.rule("[bold]tocsin demo")
        console.log(f"starting a local Kafka {KAFKA_VERSION} broker (KRaft, single node)")
        broker.start()
        bootstrap = broker.bootstrap_servers
    client = KafkaSettings(bootstrap_servers=bootstrap).client_config()
    try:
        admin = KafkaAdminClient(**client)
        try:
            created = create_topics(admin, load_topics())
        finally:
            admin.close()
        console.log(
            f"topics ready on {bootstrap}: {len(created)} ({sum(v == 'created' for v in created.values())} "
            "created)"
        )

        results = {}
        console.log("connector: UCDP GED (conflict events)")
        results["ucdp-ged"] = ingest_ucdp(
            SAMPLE_DIR / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv", client, speed=speed
        )
        console.log("connector: GDELT 2.0 (15-minute event exports)")
        results["gdelt2"] = ingest_gdelt(client, directory=SAMPLE_DIR / "gdelt2", speed=speed)
        console.log("connector: RSS/Atom feeds")
        feeds = [
            (SAMPLE_DIR / "news" / name).as_uri()
            for name in (
                "reliefweb_updates_ukraine_2020-09-17.rss.xml",
                "emm_newsbrief_en_2022-06-21.rss.xml",
            )
        ]
        feed_counts = rss.run_feeds(feeds, client, once=True)
        results["rss"] = {
            "produced": sum(c["produced"] for c in feed_counts.values()),
            "dead_letter": sum(c["dead_letter"] for c in feed_counts.values()),
        }
        console.log("connector: ReliefWeb API (saved response)")
        results["reliefweb"] = reliefweb.run_reliefweb(
            str(SAMPLE_DIR / "news" / "reliefweb_v1_reports_page1_2020-09.json"), client
        )
        console.log("connector: HTTP intake (one field-monitor report)")
        report_id = _intake_report(client, console)

        incidents = _read_committed(client, INCIDENTS)
        news = _read_committed(client, NEWS)
        dead = _read_committed(client, DEAD_LETTERS)
        table = Table(title="What landed on Kafka")
        table.add_column("source")
        table.add_column("produced this run", justify="right")
        table.add_column("dead letters", justify="right")
        for name, counts in results.items():
            table.add_row(name, str(counts.get("produced", 0)), str(counts.get("dead_letter", 0)))
        table.add_row("intake", "1", "0")
        console.print(table)
        by_country = collections.Counter(r["country"] for r in incidents if r["country"])
        top = ", ".join(f"{c} {n}" for c, n in by_country.most_common(8))
        console.print(f"{INCIDENTS}: {len(incidents)} incident reports; most by country: {top}")
        console.print(f"{NEWS}: {len(news)} news items; {DEAD_LETTERS}: {len(dead)} dead letters")
        intake = next(r for r in incidents if r["id"] == report_id)
        console.print(
            f"intake report {report_id}: reporter pseudonym {intake['reporter'][:16]}..., "
            f"coordinates coarsened to ({intake['latitude']:.3f}, {intake['longitude']:.3f})"
        )
        return _pipelines_and_router(client, bootstrap, console, len(incidents) + len(news), wait)
    finally:
        if broker is not None:
            broker.stop()
            console.log("local broker stopped")
            shutil.rmtree(data_dir, ignore_errors=True)
