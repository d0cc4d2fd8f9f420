"""Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.

A regex matches the whole value (anchored), as in Alertmanager. A label that is absent has the value "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MATCHER = re.compile(
    r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([\w.:/-]*))\s*$'
)


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    found = _MATCHER.match(text)
    if not found:
        raise MatcherError(f'bad matcher {text!r}: expected name="value" with =, !=, =~ or !~')
    name, op = found[1], found[2]
    value = found[3].replace('\\"', '"') if found[3] is not None else found[4]
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as error:
            raise MatcherError(f"bad matcher {text!r}: invalid regex: {error}") from None
    return Matcher(name, op, value, regex)


def matches_all(matchers, labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
