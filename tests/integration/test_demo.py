"""`tocsin demo` as `make demo` runs it: the whole system on the bundled data, then nothing left running."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.runner]


def test_demo_ingests_the_bundled_sample_data():
    # As `make demo` runs it: a process of its own, its own fresh local broker, stopped at the end.
    done = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "demo", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Its log says each thing once: no library warning repeated (numbers and times aside).
    warnings = collections.Counter(
        re.sub(r"\d+", "N", line.split("]", 1)[-1]).strip()
        for line in (done.stdout + done.stderr).splitlines()
        if "warning" in line.lower()
    )
    assert all(n == 1 for n in warnings.values()), warnings.most_common(3)
    out = " ".join(done.stdout.split())
    for row in (
        "ucdp-ged │ 300 │ 0",
        "gdelt2 │ 931 │ 0",
        "rss │ 8 │ 0",
        "reliefweb │ 4 │ 0",
        "intake │ 1 │ 0",
    ):
        assert row in out
    assert "tocsin.incidents.raw.v1: 1232 incident reports" in out
    assert "tocsin.news.raw.v1: 12 news items" in out
    assert "coordinates coarsened to (13.490, 39.490)" in out
    assert "local broker stopped" in out

    # Signals, alerts from the real data, delivered, escalated, acknowledged, a verified ledger.
    assert "-> au-situation-room firing: 1 alert(s) ETH" in out
    assert "-> un-osapg ESCALATION: 1 alert(s) ETH" in out
    assert "acknowledged demo-armed-conflict-reports:ETH:2020-11-16T00:00Z as the UN office" in out
    assert "│ escalations │ 1 │" in out and "│ acknowledgements and decisions │ 1 │" in out
    assert "│ dead letters │ 0 │" in out
    # Alertmanager's rule, on what was delivered: no resolution to a receiver not told of the firing
    # (before it, 34 of the demo's 38 deliveries were such notices).
    assert "│ of them to a receiver never told of the firing │ 0 │" in out
    assert "ledger verified:" in out and "hash chain intact" in out
    story = out.split("the ledger's story of")[1]
    for kind in ("alert.received", "alert.routed", "notification", "escalation", "response"):
        assert kind in story
    # Nothing it started is left running: no pipeline, no runner, no broker of its own. (Its jobs are
    # known by their consumer groups, so other tocsin processes on the machine do not count.)
    leftover = subprocess.run(
        ["pgrep", "-f", "group-id demo-(indicators|alerts)-|tocsin-demo-kafka"],
        capture_output=True,
        text=True,
    )
    assert leftover.stdout == ""
