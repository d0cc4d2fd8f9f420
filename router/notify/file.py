"""File channel: one Alertmanager-format JSON notification a line, to a file or standard output ("-")."""

from __future__ import annotations

import json
import sys

from tocsin.router.notify.outcome import Outcome


class FileNotifier:
    kind = "file"

    def __init__(self, spec):
        self.spec = spec

    def render(self, message) -> bytes:
        return (json.dumps(message.alertmanager(), sort_keys=True) + "\n").encode()

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
