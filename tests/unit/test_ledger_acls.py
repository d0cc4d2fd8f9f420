"""deploy/kafka/acls.sh, as the kafka-acls.sh commands it runs (DRY_RUN): the router alone writes the
ledger and its checkpoints, every topic of topics.yaml has its writers, and nobody is granted the
operations that cut or rewrite a topic (Delete, Alter, Create: the super user's alone)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

from tocsin.kafka.topics import LEDGER, LEDGER_CHECKPOINTS, load_topics

SCRIPT = Path(__file__).parents[2] / "deploy" / "kafka" / "acls.sh"


def grants() -> dict[str, dict[str, set[str]]]:
    """topic -> operation -> principals, from the script's commands."""
    out = subprocess.run(
        ["sh", str(SCRIPT)], env={**os.environ, "DRY_RUN": "1"}, capture_output=True, text=True, check=True
    ).stdout
    found: dict = defaultdict(lambda: defaultdict(set))
    for line in out.splitlines():
        words = shlex.split(line)
        assert words[0].endswith("/bin/kafka-acls.sh") and "--add" in words, line
        principal = words[words.index("--allow-principal") + 1]
        ops = [words[i + 1] for i, w in enumerate(words) if w == "--operation"]
        resource = words[words.index("--topic") + 1] if "--topic" in words else None
        for op in ops:
            found[resource][op].add(principal)
    return found


def test_only_the_router_writes_the_ledger_and_its_checkpoints():
    acl = grants()
    for topic in (LEDGER, LEDGER_CHECKPOINTS):
        assert acl[topic]["Write"] == {"User:tocsin-router"}, topic
        assert acl[topic]["Read"] == {"User:tocsin-router", "User:tocsin-ledger-verifier"}, topic


def test_every_topic_has_a_writer_and_nobody_may_delete_alter_or_create():
    acl = grants()
    topics = {t.name for t in load_topics().topics}
    assert topics <= {t for t in acl if t is not None}
    assert all(acl[t]["Write"] for t in topics)
    for resource, operations in acl.items():
        assert not {"Delete", "Alter", "AlterConfigs", "Create", "All"} & set(operations), resource
