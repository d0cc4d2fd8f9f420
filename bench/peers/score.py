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
