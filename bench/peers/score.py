"""Scoring a system's output against the truth, and its rate by the bench's timing rule. Pure: no I/O.

Output is a dict `<key>@<window start ms>` -> JSON value with `count` (the latest record under each
key, as a compacted topic would keep it). A window is exact when its count equals the truth's; the
truth is computed from the generated data (data.truth), never from any system's output.
"""

from __future__ import annotations

TIMING_RULE = (
    "The same for every windowed system: t0 = arrival of the first window on the output topic, "
    "t1 = arrival of the last one. By t0 the system has read at least every event before the "
    "event-time progress P0 = the latest window end among the windows of that first fetch + the "
    "grace (a window is emitted only once its end + grace was seen). Rate = events with event time "
    ">= P0, divided by t1 - t0: start-up, and the work done before the first output, are both left "
    "out, also for systems that emit in large batches. No rate when every window came within 0.5 s."
)


def compare(output: dict[str, dict], truth: dict[str, int]) -> dict:
    counts = {k: v.get("count") for k, v in output.items()}
    exact = sum(1 for k, n in truth.items() if counts.get(k) == n)
    return {
        "windows": len(truth),
        "exact": exact,
        "missing": sum(1 for k in truth if k not in counts),
        "wrong": sum(1 for k, n in truth.items() if k in counts and counts[k] != n),
        "extra": sum(1 for k in counts if k not in truth),
        "all_exact": exact == len(truth) and len(counts) == len(truth),
    }


def score(output: dict[str, dict], policy_truth: dict[str, int], all_truth: dict[str, int]) -> dict:
    counted = sum(int(v.get("count") or 0) for v in output.values())
    vs_policy = compare(output, policy_truth)
    return {
        "windows_emitted": len(output),
        "events_counted": counted,
        "events_expected_policy": sum(policy_truth.values()),
        "events_expected_all": sum(all_truth.values()),
        "vs_policy": vs_policy,
        "vs_all": compare(output, all_truth),
        "emits_every_window": vs_policy["missing"] == 0,
    }


def progress_ms(first_batch: list[dict], grace_ms: int) -> int | None:
    ends = [v["window_end"] for v in first_batch if isinstance(v.get("window_end"), int)]
    return max(ends) + grace_ms if ends else None


def rate(event_times: list[int], first_batch: list[dict], grace_ms: int, span: float) -> dict:
    """Events per second by the timing rule above; `event_times` are the scored events' times,
    `span` = t1 - t0 in seconds."""
    p0 = progress_ms(first_batch, grace_ms)
    if p0 is None:
        return {"events_per_s": None, "measured_events": 0, "measured_s": None, "progress_at_t0_ms": None}
    n = sum(1 for ts in event_times if ts >= p0)
    return {
        # A span this short says the output came in one batch: no rate can be read from it.
        "events_per_s": n / span if span >= 0.5 else None,
        "measured_events": n,
        "measured_s": span,
        "progress_at_t0_ms": p0,
    }


STARTUP_RULE = (
    "Start-up subtracted, the same for every windowed system: in each round, before the measured runs, "
    "each system runs each job once on a tiny input topic of its own (the same generator, seed, keys, "
    "partitions and event-time span, a few hundred events, the same __end__ markers); its start-up "
    "latency S = process start to the arrival of its last window there (start-up + pipeline latency, "
    "the processing of so few events being negligible). For the measured run of that system, job and "
    "round: rate = events / ((t1 - process start) - S). No rate when that difference is not positive, "
    "or when the probe did not end normally (complete, or its output stalled after the last window)."
)

# Probe ends whose last window is the system's last: every expected window came, or output had
# stopped for --stall seconds (a system that never emits some window, as Pathway may not).
_PROBE_OK = ("complete", "stalled")


def startup_latency(probe: dict) -> tuple[float | None, str | None]:
    """(S, None) from a start-up probe's result (run.run_windowed on the tiny input), or (None, why)."""
    if probe.get("wall_s") is None:
        return None, f"start-up probe: {probe.get('reason') or probe.get('status')}"
    if probe.get("status") not in _PROBE_OK:
        return None, f"start-up probe: {probe.get('status')}"
    return probe["wall_s"], None


def startup_subtracted_rate(
    events: int, wall_s: float | None, startup_s: float | None, why_no_startup: str = "no start-up probe"
) -> dict:
    """Events per second by STARTUP_RULE: `wall_s` = measured run's process start to last window,
    `startup_s` = S of the same system, job and round (None: `why_no_startup`). Null with a reason
    where the rule gives no rate."""
    out = {"events_per_s_startup_subtracted": None, "startup_s": startup_s, "processing_s": None}
    if wall_s is None:
        return out | {"startup_subtracted_reason": "no window in the measured run"}
    if startup_s is None:
        return out | {"startup_subtracted_reason": why_no_startup}
    processing = wall_s - startup_s
    out["processing_s"] = processing
    if processing <= 0:
        # The tiny input's last window came no sooner than the full one's: the run's work cannot be
        # told apart from start-up (variance between launches exceeds the processing time).
        return out | {"startup_subtracted_reason": "last window no later than in the start-up probe"}
    return out | {"events_per_s_startup_subtracted": events / processing}
