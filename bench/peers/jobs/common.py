"""The arguments every peer job takes, and the output record they all write.

Standard library only: this module is imported by jobs running in different virtual environments.
"""

from __future__ import annotations

import argparse
import json


def job_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--size-ms", type=int, required=True, help="window length")
    parser.add_argument("--step-ms", type=int, required=True, help="window period (= size: tumbling)")
    parser.add_argument("--grace-ms", type=int, default=5000)
    parser.add_argument("--state-dir", default=None, help="where a job keeps local state, if it does")
    return parser.parse_args()


def out_key(key: str, start_ms: int) -> str:
    """`<key>@<window start ms>`, as tocsin keys its windows: a later record replaces an earlier one."""
    return f"{key}@{start_ms}"


def out_value(key: str, start_ms: int, end_ms: int, count: int) -> bytes:
    return json.dumps(
        {"key": key, "window_start": start_ms, "window_end": end_ms, "count": count}, sort_keys=True
    ).encode()
