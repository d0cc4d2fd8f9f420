"""Side-by-side throughput of tocsin's window-count job and Python stream processors on one Kafka broker.

One broker, one generated data set, every system in turn (never two at once), each round running
both jobs for every system, after a start-up probe of each windowed system and job on a tiny input.
Each peer runs in a venv of its own, created on first use. See README.md for what is measured and how.

    python bench/peers/run.py [--events 200000] [--rounds 2] [--systems tocsin,quix,...] [--jobs A,B]
                              [--probe-events 200]

Writes bench/out/peers.json and bench/out/peers.md; each run's log goes to bench/out/tmp/peers/.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import report  # noqa: E402
import score  # noqa: E402
import venvs  # noqa: E402
from bench_broker import create_topics, start_broker  # noqa: E402
from measure import OutputReader, SystemProcess  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from systems import JOBS, ROOT, SYSTEMS, TOCSIN_VENV, RunSpec, System, tocsin_cli_flavour  # noqa: E402

OUT = ROOT / "bench" / "out"
LOGS = OUT / "tmp" / "peers"
DEAD_LETTERS = "peers.deadletter.v1"
console = Console(stderr=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}")
    parser.add_argument("--jobs", default=",".join(JOBS), help="subset of A,B")
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument(
        "--probe-events",
        type=int,
        default=200,
        help="events in the tiny input of the start-up probes (each round, each windowed system and "
        "job, before the measured runs); 0: no probes, no start-up-subtracted rate",
    )
    parser.add_argument(
        "--tocsin-cli",
        choices=("auto", "new", "legacy"),
        default="auto",
        help="tocsin's window-count flags: new (--window, --value-format json), legacy (--window-seconds, "
        "job A only), auto (ask --help)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds one run may take at most")
    parser.add_argument(
        "--quiet", type=float, default=3, help="seconds without output that end a complete run"
    )
    parser.add_argument(
        "--stall", type=float, default=60, help="... an incomplete one that has started output"
    )
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.jobs = [j.strip().upper() for j in args.jobs.split(",") if j.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS] + [j for j in args.jobs if j not in JOBS]
    if unknown:
        parser.error(f"unknown system or job: {', '.join(unknown)}")
    return args


def child_env() -> dict:
    """The bench's environment without tocsin's venv on it: each system finds only its own packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(TOCSIN_VENV))
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_windowed(
    system: System,
    spec: RunSpec,
    expected: dict[str, int],
    args,
    tocsin_cli: str,
    log: Path,
    what: str = "",
) -> dict:
    cmd = system.command(spec, tocsin_cli)
    if isinstance(cmd, str):
        return {"status": "skipped", "reason": cmd}
    create_topics(spec.bootstrap, {spec.output_topic: 1})
    reader = OutputReader(spec.bootstrap, spec.output_topic)
    status = "timeout"
    try:
        with SystemProcess(cmd, log, ROOT, child_env()) as proc, _progress() as progress:
            task = progress.add_task(f"{system.label} job {spec.job.name}{what}", total=len(expected))
            next_sample = 0.0
            while True:
                reader.poll(200)
                now = time.monotonic()
                if now >= next_sample:
                    proc.tree.sample()
                    next_sample = now + 0.2
                seen = sum(1 for k in expected if k in reader.latest)
                progress.update(task, completed=seen)
                idle = now - (reader.last_arrival or proc.started)
                if seen == len(expected) and idle >= args.quiet:
                    status = "complete"
                    break
                if reader.last_arrival and idle >= args.stall:
                    status = "stalled"  # output started, then stopped short of every expected window
                    break
                if not proc.running():
                    # A system may end by itself at the end of its input (Bytewax with tail=False).
                    _drain(reader, args.quiet)
                    complete = all(k in reader.latest for k in expected)
                    code = proc.proc.returncode
                    status = "complete" if complete and code == 0 else f"exited ({code})"
                    break
                if now - proc.started > args.timeout:
                    break
        result = {"status": status, "command": cmd, "log": str(log.relative_to(ROOT))}
        if reader.first_arrival is None:
            result["reason"] = f"no window on the output topic; log: {proc.log_tail(5)}"
            return result
        t0, t1 = reader.first_arrival, reader.last_arrival
        result.update(
            first_output_s=t0 - proc.started,
            wall_s=t1 - proc.started,
            # Start-up included: what someone waiting for the last window sees.
            events_per_s_incl_startup=spec.events / (t1 - proc.started),
            cpu_s=proc.tree.cpu_between(t0, t1),
            **proc.tree.figures(),
            output_records=reader.records,
        )
        return result | {"output": reader.latest, "first_batch": reader.first_batch}
    finally:
        reader.close()


def run_probes(
    rnd: int, chosen: list[System], probe: data.Dataset, topic: str, truths: dict, args, ctx: dict
) -> dict[tuple[str, str], dict]:
    """Each windowed system once per job on the tiny input `topic`: its start-up latency S for this
    round (score.STARTUP_RULE). Run before the round's measured runs, so that they also warm the page
    cache for them; keyed by (job, system name)."""
    out = {}
    for job in args.jobs:
        for system in (s for s in chosen if not s.raw):
            run_id = f"{system.name}.{job}.r{rnd}.probe.{uuid.uuid4().hex[:6]}"
            spec = _spec(ctx, topic, run_id, job, probe)
            result = run_windowed(
                system,
                spec,
                truths[(job, system.policy)],
                args,
                ctx["tocsin_cli"],
                LOGS / f"{run_id}.log",
                " (start-up probe)",
            )
            for k in ("output", "first_batch", "events_per_s_incl_startup"):
                result.pop(k, None)  # not scored, no rate: only the time to its last window counts
            startup_s, why = score.startup_latency(result)
            result = {"round": rnd, "job": job, "system": system.name} | result
            result |= {"startup_s": startup_s, "startup_reason": why}
            out[(job, system.name)] = result
            console.log(
                f"r{rnd} {job} {system.label} start-up probe: {result['status']}"
                + (f", S = {startup_s:.2f} s" if startup_s is not None else f" — {why}")
            )
    return out


def _spec(ctx: dict, input_topic: str, run_id: str, job: str, dataset: data.Dataset) -> RunSpec:
    return RunSpec(
        bootstrap=ctx["bootstrap"],
        input_topic=input_topic,
        output_topic=f"peers.out.{run_id}",
        group_id=f"peers.{run_id}",
        job=JOBS.get(job, JOBS["A"]),
        events=len(dataset.events),
        records=len(dataset.events) + len(dataset.ends),
        state_dir=ctx["tmp"] / "state" / run_id,
        dead_letter_topic=DEAD_LETTERS,
    )


def _drain(reader: OutputReader, quiet: float) -> None:
    """After a system exits, read what it wrote until the topic has been quiet for `quiet` s."""
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        if reader.poll(200):
            last = time.monotonic()


def run_raw(system: System, spec: RunSpec, args, log: Path) -> dict:
    import json

    cmd = system.command(spec)
    with SystemProcess(cmd, log, ROOT, child_env()) as proc, _progress() as progress:
        progress.add_task(f"{system.label} (raw consume)", total=None)
        while proc.running() and time.monotonic() - proc.started < args.timeout:
            proc.tree.sample()
            time.sleep(0.2)
        status = "complete" if proc.proc.poll() == 0 else "timeout" if proc.running() else "failed"
    result = {"status": status, "command": cmd, "log": str(log.relative_to(ROOT))}
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    if status != "complete" or not lines:
        return result | {"reason": f"no result; log: {proc.log_tail(5)}"}
    measured = json.loads(lines[-1])
    return result | {
        "events_per_s": measured["records_per_s"],
        "measured_events": measured["records"],
        "measured_s": measured["seconds"],
        **proc.tree.figures(),
        # A raw ceiling ends by itself within a second or so: the kernel's count beats 0.2 s samples.
        "cpu_s": max(proc.tree.cpu_seconds(), proc.cpu_reaped),
    }


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} windows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def main() -> None:
    args = parse_args()
    chosen = [SYSTEMS[n] for n in args.systems]
    OUT.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    for system in chosen:
        if system.venv:
            with console.status(f"venv for {system.label}"):
                venvs.ensure(system.venv, log=console.log)
    tocsin_cli = tocsin_cli_flavour() if args.tocsin_cli == "auto" else args.tocsin_cli
    if "tocsin" in args.systems:
        console.log(f"tocsin CLI: {tocsin_cli}")
    versions = {s.name: venvs.installed_versions(s.python(), list(s.packages)) for s in chosen}

    with console.status(f"generating {args.events:,} events"):
        dataset = data.generate(args.events, seed=args.seed)
        event_times = [e.ts for e in dataset.events]
        truths = _truths(dataset, args.jobs)
        # The start-up probes' input: the same layout and event-time span, so the same end markers
        # close the same kind of windows, but too few events for their processing to take any time.
        probe = data.generate(
            args.probe_events,
            keys=dataset.keys,
            partitions=dataset.partitions,
            span_ms=dataset.span_ms,
            late_fraction=dataset.late_fraction,
            seed=args.seed,
        )
        probe_truths = _truths(probe, args.jobs)

    runs: list[dict] = []
    probes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        with console.status("starting the Kafka broker"):
            broker, kafka_version = start_broker(Path(tmp) / "kafka")
        bootstrap = broker.bootstrap_servers
        try:
            tag = uuid.uuid4().hex[:6]
            input_topic = f"peers.in.{tag}.v1"
            create_topics(bootstrap, {input_topic: dataset.partitions, DEAD_LETTERS: 1})
            with _progress() as progress:
                task = progress.add_task(f"producing to {input_topic}", total=len(dataset.events))
                data.produce(bootstrap, input_topic, dataset, lambda n: progress.update(task, completed=n))
            console.log(f"{len(dataset.events):,} events + {len(dataset.ends)} end markers in {input_topic}")
            probe_topic = f"peers.probe.{tag}.v1"
            if args.probe_events:
                create_topics(bootstrap, {probe_topic: probe.partitions})
                data.produce(bootstrap, probe_topic, probe)
                console.log(f"{len(probe.events):,} events + {len(probe.ends)} end markers in {probe_topic}")
            ctx = {"bootstrap": bootstrap, "tmp": Path(tmp), "tocsin_cli": tocsin_cli}
            for rnd in range(1, args.rounds + 1):
                startups = {}
                if args.probe_events:
                    startups = run_probes(rnd, chosen, probe, probe_topic, probe_truths, args, ctx)
                    probes += startups.values()
                plan = [("raw", s) for s in chosen if s.raw]
                plan += [(job, s) for job in args.jobs for s in chosen if not s.raw]
                for job, system in plan:
                    run_id = f"{system.name}.{job}.r{rnd}.{uuid.uuid4().hex[:6]}"
                    spec = _spec(ctx, input_topic, run_id, job, dataset)
                    log = LOGS / f"{run_id}.log"
                    if system.raw:
                        result = run_raw(system, spec, args, log)
                    else:
                        result = run_windowed(
                            system, spec, truths[(job, system.policy)], args, tocsin_cli, log
                        )
                        _score(result, truths, job, system, event_times)
                        _subtract_startup(result, spec.events, startups.get((job, system.name)))
                    result = {"round": rnd, "job": job, "system": system.name} | result
                    runs.append(result)
                    _log_result(result, system)
        finally:
            with console.status("stopping the broker"):
                broker.stop()

    result = {
        "config": {
            "rounds": args.rounds,
            "jobs": args.jobs,
            "systems": args.systems,
            "job_windows": {j: vars(JOBS[j]) for j in args.jobs},
            "tocsin_cli": tocsin_cli,
            "data": dataset.config(),
            "timing_rule": score.TIMING_RULE,
            "startup_rule": score.STARTUP_RULE,
            "startup_probe": {
                "events": args.probe_events,
                "data": probe.config() if args.probe_events else None,
                "when": "each round, before its measured runs: every windowed system, every job",
            },
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "kafka": kafka_version,
        },
        "versions": versions,
        "systems": {
            s.name: {"label": s.label, "policy": s.policy, "venv": s.venv or "tocsin", "note": s.note}
            for s in chosen
        },
        "summary": report.summarize(runs),
        "runs": runs,
        "startup_probes": probes,
    }
    report.write_json(OUT / "peers.json", result)
    (OUT / "peers.md").write_text(report.markdown(result))
    console.log(f"wrote {(OUT / 'peers.json').relative_to(ROOT)} and {(OUT / 'peers.md').relative_to(ROOT)}")
    print(report.markdown(result))


def _truths(dataset: data.Dataset, jobs: list[str]) -> dict[tuple[str, str], dict[str, int]]:
    out = {}
    for job in jobs:
        j = JOBS[job]
        for policy in data.POLICIES:
            out[(job, policy)] = data.truth(dataset, j.size_ms, j.step_ms, j.grace_ms, policy)
    return out


def _subtract_startup(result: dict, events: int, probe: dict | None) -> None:
    """The measured run's rate by score.STARTUP_RULE, with the probe of its system, job and round."""
    if probe is None:
        startup_s, why = None, "no start-up probe (--probe-events 0)"
    else:
        startup_s, why = probe["startup_s"], probe["startup_reason"]
        result["startup_probe_log"] = probe.get("log")
    result |= score.startup_subtracted_rate(events, result.get("wall_s"), startup_s, why or "")


def _score(result: dict, truths: dict, job: str, system: System, event_times: list[int]) -> None:
    output = result.pop("output", None)
    first_batch = result.pop("first_batch", None)
    if output is None:
        return
    result["score"] = score.score(output, truths[(job, system.policy)], truths[(job, "all")])
    # The other policies too: which one a system really follows is read off these.
    by_policy = {p: score.compare(output, truths[(job, p)]) for p in data.POLICIES}
    result["exact_by_policy"] = {p: c["exact"] for p, c in by_policy.items()}
    result["matches"] = [p for p, c in by_policy.items() if c["all_exact"]]
    span = result["wall_s"] - result["first_output_s"]  # t1 - t0
    result |= score.rate(event_times, first_batch, JOBS[job].grace_ms, span)
    if result["events_per_s"] is None:
        result["reason"] = "one output batch"  # every window within 0.5 s: no rate by the rule


def _log_result(result: dict, system: System) -> None:
    rate = result.get("events_per_s")
    text = f"r{result['round']} {result['job']} {system.label}: {result['status']}"
    if rate:
        text += f", {rate:,.0f} events/s"
    corrected = result.get("events_per_s_startup_subtracted")
    if corrected:
        text += f" ({corrected:,.0f} start-up subtracted)"
    if "score" in result:
        s = result["score"]
        text += (
            f", {s['windows_emitted']} windows, exact {s['vs_policy']['exact']}/{s['vs_policy']['windows']} "
            f"({system.policy}), {s['vs_all']['exact']}/{s['vs_all']['windows']} (all events)"
        )
    if result.get("reason"):
        text += f" — {result['reason']}"
    console.log(text)


if __name__ == "__main__":
    main()
