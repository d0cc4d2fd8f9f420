"""File channel: one Alertmanager-format JSON notification a line, to a file or standard output ("-"):
each alert's console link in its generatorURL, where and how to answer in its description annotation."""

from __future__ import annotations

import json
import sys

from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience


class FileNotifier:
    kind = "file"

    def __init__(self, spec, audience: Audience | None = None):
        self.spec = spec
        self.audience = audience or Audience()

    def render(self, message) -> bytes:
        return (json.dumps(message.alertmanager(self.audience), sort_keys=True) + "\n").encode()

    def send(self, message) -> Outcome:
        line = self.render(message).decode()
        try:
            if self.spec.path == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                with open(self.spec.path, "a", encoding="utf-8") as out:
                    out.write(line)
            return Outcome(True, detail="written")
        except OSError as error:
            return Outcome(False, False, f"{type(error).__name__}: {error}")
