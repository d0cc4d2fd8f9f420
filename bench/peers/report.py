"""bench/out/peers.json (every figure of every run) and bench/out/peers.md (the tables)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from systems import JOBS, SYSTEMS


def summarize(runs: list[dict]) -> dict:
    """Per job and system: the rate range over the rounds, and the worst round's exactness."""
    out: dict = {}
    for run in runs:
        cell = out.setdefault(run["job"], {}).setdefault(run["system"], {"rates": [], "rounds": []})
        cell["rounds"].append(run)
        if run.get("events_per_s"):
            cell["rates"].append(run["events_per_s"])
    summary = {}
    for job, systems in out.items():
        for name, cell in systems.items():
            rates = cell["rates"]
            scored = [r for r in cell["rounds"] if "score" in r]
            worst = min(scored, key=lambda r: r["score"]["vs_policy"]["exact"], default=None)
            summary.setdefault(job, {})[name] = {
                "rate_min": min(rates) if rates else None,
                "rate_max": max(rates) if rates else None,
                "rounds": len(cell["rounds"]),
                "statuses": sorted({r["status"] for r in cell["rounds"]}),
                "reason": next((r.get("reason") for r in cell["rounds"] if r.get("reason")), None),
                "worst_round": worst["round"] if worst else None,
                "score": worst["score"] if worst else None,
                "rate_incl_startup": [r.get("events_per_s_incl_startup") for r in cell["rounds"]],
                "rate_startup_subtracted": [r.get("events_per_s_startup_subtracted") for r in cell["rounds"]],
                "startup_s": [r.get("startup_s") for r in cell["rounds"]],
                "startup_subtracted_reason": next(
                    (
                        r["startup_subtracted_reason"]
                        for r in cell["rounds"]
                        if r.get("startup_subtracted_reason")
                    ),
                    None,
                ),
                "matches": sorted(
                    set.intersection(*(set(r["matches"]) for r in scored)) if scored else set()
                ),
                "cpu_s": max(
                    (r["cpu_s"] for r in cell["rounds"] if r.get("cpu_s") is not None), default=None
                ),
                "peak_rss_mb": max(
                    (r["peak_rss_mb"] for r in cell["rounds"] if r.get("peak_rss_mb") is not None),
                    default=None,
                ),
            }
    return summary


def write_json(path: Path, result: dict) -> None:
    text = json.dumps(result, indent=2, sort_keys=False) + "\n"
    # Commands as run name this machine's checkout and temp dirs: kept relative, so the file says
    # what ran, not where.
    root = str(Path(__file__).resolve().parents[2]) + "/"
    text = re.sub(r'"/tmp/peers-[^/"]+/', '"<tmp>/', text.replace(root, ""))
    path.write_text(text)


def _rate(cell: dict | None) -> str:
    if not cell:
        return "—"
    if cell["rate_min"] is None:
        return cell.get("reason") or "/".join(cell["statuses"])
    lo, hi = round(cell["rate_min"]), round(cell["rate_max"])
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _num(x: float | None, digits: int) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def _exact(s: dict) -> str:
    return f"{s['exact']:,}/{s['windows']:,}" + (f" (+{s['extra']} extra)" if s["extra"] else "")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rates(values: list) -> str:
    values = [v for v in values if v]
    if not values:
        return "—"
    lo, hi = round(min(values)), round(max(values))
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _range(values: list, digits: int) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    lo, hi = _num(min(values), digits), _num(max(values), digits)
    return lo if lo == hi else f"{lo}–{hi}"


def _subtracted(cell: dict | None) -> str:
    """The start-up-subtracted rate range; where no round has one, the first reason a round gave."""
    if not cell:
        return "—"
    if not any(cell["rate_startup_subtracted"]):
        return cell["startup_subtracted_reason"] or "—"
    text = _rates(cell["rate_startup_subtracted"])
    missing = sum(1 for v in cell["rate_startup_subtracted"] if not v)
    return text + (f" ({missing} round(s): {cell['startup_subtracted_reason']})" if missing else "")


def _score_row(job: str, label: str, policy: str, cell: dict) -> list:
    s = cell["score"]
    if s is None:
        return [job, label, policy, _rate(cell)] + [""] * 7
    counted = f"{s['events_counted']:,} ({s['events_expected_policy']:,} / {s['events_expected_all']:,})"
    return [
        job,
        label,
        policy,
        f"{s['windows_emitted']:,}",
        _exact(s["vs_policy"]),
        _exact(s["vs_all"]),
        counted,
        "yes" if s["emits_every_window"] else "no",
        ", ".join(cell["matches"]) or "none",
        _num(cell["cpu_s"], 1),
        _num(cell["peak_rss_mb"], 0),
    ]


def markdown(result: dict) -> str:
    summary = result["summary"]
    cfg, machine, d = result["config"], result["machine"], result["config"]["data"]
    names = [n for n in SYSTEMS if n in cfg["systems"]]
    windowed = [n for n in names if not SYSTEMS[n].raw]
    lines = [
        "# tocsin and Python stream processors on one Kafka broker",
        "",
        f"{d['events']:,} JSON events ({d['late_events']:,} late), {d['keys']} keys, {d['partitions']} "
        f"partitions, {d['span_ms'] // 60_000} min of event time; {cfg['rounds']} round(s); "
        f"{machine['cpus']} CPUs, Python {machine['python']}, Apache Kafka {machine['kafka']}.",
        "",
        "Events per second, min–max over the rounds. Windowed jobs: events after the event-time progress "
        "shown by the first output fetch, divided by first-to-last window arrival (start-up excluded); "
        "raw ceilings: records from the first fetch to the last (no windows; the same figure in every row).",
        "",
        _row(["job"] + [SYSTEMS[n].label for n in names]),
        _row(["---"] + ["---:"] * len(names)),
    ]
    for job in cfg["jobs"]:
        cells = [_rate(summary.get("raw" if SYSTEMS[n].raw else job, {}).get(n)) for n in names]
        lines.append(_row([f"{job}: {JOBS[job].title}"] + cells))
    lines += [
        "",
        "Including start-up (events / time from the process start to the last window), min–max:",
        "",
        _row(["job"] + [SYSTEMS[n].label for n in windowed]),
        _row(["---"] + ["---:"] * len(windowed)),
    ]
    for job in cfg["jobs"]:
        cells = [_rates((summary.get(job, {}).get(n) or {}).get("rate_incl_startup", [])) for n in windowed]
        lines.append(_row([job] + cells))
    lines += [
        "",
        "Start-up subtracted, min–max: events / ((process start to the last window) − S), S = the same "
        "system's start-up latency on the same job in the same round, measured before the round on a "
        f"tiny input ({cfg.get('startup_probe', {}).get('events', 0):,} events, the same end markers): "
        "process start to its last window. Rows 'S' give S in seconds, min–max over the rounds.",
        "",
        _row(["job"] + [SYSTEMS[n].label for n in windowed]),
        _row(["---"] + ["---:"] * len(windowed)),
    ]
    for job in cfg["jobs"]:
        lines.append(_row([job] + [_subtracted(summary.get(job, {}).get(n)) for n in windowed]))
    for job in cfg["jobs"]:
        cells = [_range((summary.get(job, {}).get(n) or {}).get("startup_s", []), 1) for n in windowed]
        lines.append(_row([f"{job}: S, s"] + cells))
    lines += [
        "",
        "Exactness (the worst round): windows whose count equals the truth, for the policy the system "
        "documents and for every event counted; 'exact for' lists every policy whose truth it matched.",
        "",
        _row(
            [
                "job",
                "system",
                "policy",
                "windows emitted",
                "exact vs policy",
                "exact vs all events",
                "events counted (policy / all)",
                "every window",
                "exact for",
                "CPU s (t0–t1)",
                "peak RSS MiB",
            ]
        ),
        _row(["---", "---", "---", "---:", "---:", "---:", "---:", "---", "---", "---:", "---:"]),
    ]
    for job in cfg["jobs"]:
        for n in windowed:
            cell = summary.get(job, {}).get(n)
            if cell:
                lines.append(_row(_score_row(job, SYSTEMS[n].label, SYSTEMS[n].policy, cell)))
    raw = summary.get("raw", {})
    if raw:
        lines += ["", _row(["raw ceiling", "CPU s", "peak RSS MiB"]), _row(["---", "---:", "---:"])]
        for n, cell in raw.items():
            lines.append(_row([SYSTEMS[n].label, _num(cell["cpu_s"], 1), _num(cell["peak_rss_mb"], 0)]))
    versions = "; ".join(
        f"{SYSTEMS[n].label}: " + ", ".join(f"{p} {v}" for p, v in result["versions"].get(n, {}).items())
        for n in names
    )
    lines += ["", f"Versions: {versions}.", "", "How each system runs:", ""]
    lines += [f"- {SYSTEMS[n].label}: {result['systems'][n]['note']}." for n in names]
    lines.append("")
    return "\n".join(lines)
