"""Registry subjects and compatibility levels of tocsin's schemas (plain functions, no I/O).

TopicNameStrategy, the Confluent serializers' default: a topic's values are registered under the
subject `<topic>-value`, so Kafka Connect, ksqlDB and the Confluent deserializers find them unasked.
"""

from __future__ import annotations

# tocsin promises full compatibility between a schema and the one it replaces (tocsin.serde.compat's
# default mode, which `tocsin schemas check` enforces): producers and consumers upgrade independently.
TOCSIN_COMPATIBILITY = "full"

_REGISTRY_LEVELS = {"backward": "BACKWARD", "forward": "FORWARD", "full": "FULL"}


def value_subject(topic: str) -> str:
    """The subject a topic's values are registered under (TopicNameStrategy)."""
    return f"{topic}-value"


def registry_compatibility(mode: str = TOCSIN_COMPATIBILITY) -> str:
    """The registry's name of one of tocsin.serde.compat's modes (backward, forward, full)."""
    try:
        return _REGISTRY_LEVELS[mode]
    except KeyError:
        raise ValueError(f"unknown compatibility mode {mode!r}: use backward, forward or full") from None
