"""Router config: exact messages for each error, all listed at once; inheritance down the tree."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tocsin.router.config import RouterConfigError, load_router_config, parse_router_config

EXAMPLE = Path(__file__).parents[2] / "router" / "routes.example.yaml"
BASE = yaml.safe_load(EXAMPLE.read_text())


def errors(change) -> list[str]:
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(RouterConfigError) as caught:
        parse_router_config(data)
    return caught.value.errors


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("route.routes.1.receiver", "nobody", "route.routes.1.receiver: undefined receiver 'nobody'"),
        (
            "route.routes.0.matchers",
            ["country==SDN"],
            "route.routes.0.matchers.0: bad matcher 'country==SDN': "
            'expected name="value" with =, !=, =~ or !~',
        ),
        (
            "route.routes.0.matchers",
            ['country=~"(SDN"'],
            "route.routes.0.matchers.0: bad matcher 'country=~\"(SDN\"': "
            "invalid regex: missing ), unterminated "
            "subpattern at position 0",
        ),
        ("route.group_interval", "0s", "route.group_interval: duration '0s' must be greater than zero"),
        ("route.repeat_interval", "0", "route.repeat_interval: duration '0' must be greater than zero"),
        ("retention", "0s", "retention: duration '0s' must be greater than zero"),
        ("route.routes.0.escalation", "nope", "route.routes.0.escalation: undefined escalation 'nope'"),
        (
            "route.group_wait",
            "soon",
            "route.group_wait: duration 'soon' is not like 90s, 1h30m or 7d "
            "(whole w, d, h, m, s, largest first)",
        ),
        ("route.colour", "red", "route.colour: Extra inputs are not permitted"),
        ("receivers.0.organisation", "nobody", "receivers.0.organisation: undefined organisation 'nobody'"),
        (
            "escalations.national-regional-un.steps.0.receiver",
            "ghost",
            "escalations.national-regional-un.steps.0.receiver: undefined receiver 'ghost'",
        ),
        (
            "escalations.national-regional-un.steps.0.after",
            "0s",
            "escalations.national-regional-un.steps.0.after: duration '0s' must be greater than zero",
        ),
        (
            "organisations.0.token_sha256",
            "abc",
            "organisations.0.token_sha256: not a SHA-256 hex digest "
            "(tocsin router token or tocsin intake token prints one)",
        ),
        (
            "receivers.0.channels",
            [{"file": {"path": "-"}, "webhook": {"url": "http://x"}}],
            "receivers.0.channels.0: exactly one of webhook, email, file, chat, alertmanager (got 2)",
        ),
        (
            "receivers.0.channels",
            [{"webhook": {"url": "ftp://x"}}],
            "receivers.0.channels.0.webhook.url: String should match pattern '^https?://'",
        ),
        ("inhibit_rules.0.equal", "country", "inhibit_rules.0.equal: Input should be a valid list"),
    ],
)
def test_each_error_has_an_exact_message(path, value, message):
    assert errors(_set(path, value)) == [message]


def test_duplicate_receiver():
    assert errors(lambda d: d["receivers"].append(d["receivers"][0])) == [
        "receivers.6.name: duplicate receiver 'sdn-focal-point'"
    ]


def test_every_error_is_listed_at_once():
    def change(data):
        data["route"]["routes"][0]["receiver"] = "a"
        data["route"]["routes"][1]["matchers"] = ["bad"]
        data["route"]["routes"][2]["group_interval"] = "0s"

    # Field errors first (pydantic's), then what spans the document, checked on the valid rest.
    assert errors(change) == [
        "route.routes.2.group_interval: duration '0s' must be greater than zero",
        "route.routes.0.receiver: undefined receiver 'a'",
        "route.routes.1.matchers.0: bad matcher 'bad': expected name=\"value\" with =, !=, =~ or !~",
    ]


def test_children_inherit_grouping_intervals_and_escalation():
    config = load_router_config(EXAMPLE)
    root, sdn = config.route, config.route.routes[0]
    assert (root.group_by, root.group_wait_s, root.group_interval_s, root.repeat_interval_s) == (
        ("alertname", "country"),
        30,
        300,
        43200,
    )
    assert (sdn.group_by, sdn.group_wait_s, sdn.repeat_interval_s, sdn.escalation) == (
        ("alertname", "country"),
        30,
        43200,
        "national-regional-un",
    )
    assert config.escalations["national-regional-un"].steps == (
        ("igad-situation-room", 7200),
        ("un-osapg", 14400),
    )
    assert config.receivers_of("igad") == {"igad-situation-room"}


def test_routes_test_prints_the_receivers_like_amtool():
    from typer.testing import CliRunner

    from tocsin.cli import app

    labels = ["country=SDN", "severity=critical", "igad=true", "alertname=attacks-on-civilians"]
    result = CliRunner().invoke(app, ["routes", "test", *labels, "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "sdn-focal-point",
        "igad-situation-room",
        "civil-society-network",
    ]
    assert (
        "escalation national-regional-un: igad-situation-room after 7200s -> un-osapg after 14400s"
        in result.stdout
    )
    bad = CliRunner().invoke(app, ["routes", "test", "country", "--config", str(EXAMPLE)])
    assert bad.exit_code == 2 and "'country' is not label=value" in bad.stderr


def test_a_refused_config_file_lists_its_errors_and_exits_1(tmp_path):
    from typer.testing import CliRunner

    from tocsin.cli import app

    data = copy.deepcopy(BASE)
    data["route"]["routes"][1]["receiver"] = "nobody"
    data["retention"] = "0s"
    bad = tmp_path / "routes.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["routes", "test", "country=SDN", "--config", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}: 2 error(s)",
        "  retention: duration '0s' must be greater than zero",
        "  route.routes.1.receiver: undefined receiver 'nobody'",
    ]


# -- external_url, a receiver's language, chat channels -----------------------------------------------

TOKEN = "xoxb-7Hq2-s3cr3t-Z9"  # in the chat URLs below: never in an error message or a log line


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            "external_url",
            "ftp://tocsin.example.org",
            "external_url: 'ftp://tocsin.example.org' is not an http:// or https:// URL with a host",
        ),
        (
            "external_url",
            "https://",
            "external_url: 'https://' is not an http:// or https:// URL with a host",
        ),
        (
            "external_url",
            "tocsin.example.org",
            "external_url: 'tocsin.example.org' is not an http:// or https:// URL with a host",
        ),
        (
            "external_url",
            "https://tocsin.example.org/?lang=fr",
            "external_url: 'https://tocsin.example.org/?lang=fr' has a query or a fragment: "
            "the console's paths are added to it",
        ),
        (
            "external_url",
            "https://tocsin.example.org/#top",
            "external_url: 'https://tocsin.example.org/#top' has a query or a fragment: "
            "the console's paths are added to it",
        ),
        (
            "external_url",
            f"https://duty:{TOKEN}@tocsin.example.org",
            "external_url: a user or password in it would be sent in every notification",
        ),
        ("external_url", 8080, "external_url: Input should be a valid string"),
        ("receivers.0.language", "de", "receivers.0.language: Input should be 'en' or 'fr'"),
        (
            "receivers.0.channels",
            [{"chat": {"url": f"nosuch://{TOKEN}@chat.example.org/room"}}],
            "receivers.0.channels.0.chat.url: apprise has no service nosuch:// (for a plain JSON webhook: "
            "json:// or jsons://; the services: https://github.com/caronc/apprise/wiki)",
        ),
        (
            "receivers.0.channels",
            [{"chat": {"url": "mmost://chat.example.org/"}}],  # a Mattermost URL without its token
            "receivers.0.channels.0.chat.url: apprise cannot use this mmost:// URL: "
            "a token, host or target is malformed (not shown)",
        ),
        (
            "receivers.0.channels",
            [{"chat": {"url": f"tgram://{TOKEN}"}}],  # not a Telegram bot token (id:secret)
            "receivers.0.channels.0.chat.url: apprise cannot use this tgram:// URL: "
            "a token, host or target is malformed (not shown)",
        ),
        (
            "receivers.0.channels",
            [{"chat": {"url": f"chat.example.org/{TOKEN}"}}],
            "receivers.0.channels.0.chat.url: not an apprise URL: it starts with its service's scheme "
            "(tgram://, matrix://, slack://, ...)",
        ),
        ("receivers.0.channels", [{"chat": {}}], "receivers.0.channels.0.chat.url: Field required"),
        (
            "receivers.0.channels",
            [{"chat": {"url": "json://127.0.0.1/hook", "token": "x"}}],
            "receivers.0.channels.0.chat.token: Extra inputs are not permitted",
        ),
        (
            "receivers.0.channels",
            [{"chat": {"url": "json://127.0.0.1/hook", "timeout": "0s"}}],
            "receivers.0.channels.0.chat.timeout: duration '0s' must be greater than zero",
        ),
        (
            "receivers.0.channels",
            [{"file": {"path": "-", "language": "fr"}}],  # a receiver's language, not a channel's
            "receivers.0.channels.0.file.language: Extra inputs are not permitted",
        ),
    ],
)
def test_external_url_language_and_chat_errors_have_exact_messages(path, value, message, caplog):
    caplog.set_level("DEBUG")
    assert errors(_set(path, value)) == [message]
    # apprise logs a URL it cannot read as it was written: its token is redacted from every log line.
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]


def test_external_url_is_the_routers_address_without_a_trailing_slash():
    from tocsin.router.notify import Audience, notifier_for

    data = copy.deepcopy(BASE)
    assert parse_router_config(data).external_url == ""  # the default: no links
    for written, kept in [
        ("https://tocsin.example.org/", "https://tocsin.example.org"),
        ("http://127.0.0.1:9095", "http://127.0.0.1:9095"),
        ("https://example.org/tocsin//", "https://example.org/tocsin"),  # behind a proxy, under a path
    ]:
        data["external_url"] = written
        assert parse_router_config(data).external_url == kept

    # Each channel writes for its receiver's reader: the receiver's language, the router's address.
    data["external_url"] = "https://tocsin.example.org/"
    data["receivers"][1]["language"] = "fr"
    data["receivers"][1]["channels"].append({"chat": {"url": "json://127.0.0.1:9/chat", "timeout": "3s"}})
    config = parse_router_config(data)
    file_, chat = config.receivers["igad-situation-room"].channels
    assert (chat.kind, chat.chat.url, chat.chat.timeout) == ("chat", "json://127.0.0.1:9/chat", 3)
    for channel in (file_, chat):
        assert (channel.language, channel.external_url) == ("fr", "https://tocsin.example.org")
        assert notifier_for(channel).audience == Audience("fr", "https://tocsin.example.org")
    [english] = config.receivers["un-osapg"].channels
    assert notifier_for(english).audience == Audience("en", "https://tocsin.example.org")


def test_a_receivers_languages_are_the_notification_catalogues():
    import typing

    from tocsin.router.config import Receiver
    from tocsin.router.notify.i18n import DEFAULT, LANGUAGES, catalogue_path

    assert typing.get_args(Receiver.model_fields["language"].annotation) == LANGUAGES
    assert Receiver.model_fields["language"].default == DEFAULT
    assert all(catalogue_path(language).is_file() for language in LANGUAGES if language != DEFAULT)
