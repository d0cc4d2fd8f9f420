"""What notifications say: the console links (external_url), the real CLI commands with the alert id filled
in, the receiver's language (English and French, from the gettext catalogues), in every channel's form:
e-mail, Alertmanager webhook, CloudEvent, file. Exact texts; the commands are run against a local server."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.router.config import Email, FileChannel, Webhook
from tocsin.router.notify.email import EmailNotifier
from tocsin.router.notify.file import FileNotifier
from tocsin.router.notify.i18n import LANGUAGES, catalogue_path, translations
from tocsin.router.notify.payload import (
    Audience,
    Message,
    ack_command,
    console_url,
    decide_command,
    hints,
)
from tocsin.router.notify.webhook import WebhookNotifier

NOTIFY = Path(__file__).parents[2] / "router" / "notify"
T = 1_800_000_000_000
SITE = "https://tocsin.example.org"
ID = "rule:ETH/Tigray:2027-01-15T08:00Z"  # a per-region alert: its id has a '/'
LINK = "https://tocsin.example.org/alerts/rule%3AETH%2FTigray%3A2027-01-15T08%3A00Z"
GROUP = 'root.1:{alertname="attacks-on-civilians",country="ETH"}'
EN, FR, BARE = Audience("en", SITE), Audience("fr", SITE), Audience()


def alert(id_=ID, status="FIRING", severity="CRITICAL", **changes) -> dict:
    return {
        "id": id_,
        "sequence": 1,
        "rule_id": "attacks-on-civilians",
        "rule_version": "0123456789ab",
        "status": status,
        "severity": severity,
        "country": "ETH",
        "region": "Tigray",
        "summary": "attacks-on-civilians fired for ETH/Tigray",
        "values": [
            {"name": "rf11.attack_on_civilians count", "value": 41.0, "threshold": 40.5, "comparator": ">="}
        ],
        "evidence": [
            {
                "record_id": "gdelt2:1",
                "title": "Village attacked",
                "url": "https://example.org/1",
                "source": "example.org",
            }
        ],
        "labels": {"alertname": "attacks-on-civilians", "country": "ETH", "severity": "critical"},
        "window_start": T - 86_400_000,
        "window_end": T,
        "first_fired": T,
        "last_updated": T,
        **changes,
    }


def message(*alerts, level=0) -> Message:
    labels = {"alertname": "attacks-on-civilians", "country": "ETH"}
    return Message("igad-situation-room", GROUP, labels, list(alerts) or [alert()], level)


EMAIL_EN = f"""\
To igad-situation-room: 1 alert, group {GROUP}.

FIRING CRITICAL  rule:ETH/Tigray:2027-01-15T08:00Z
  attacks-on-civilians fired for ETH/Tigray
  rf11.attack_on_civilians count: 41 >= 40.5
  evidence gdelt2:1 Village attacked https://example.org/1
  Console: {LINK}
  Acknowledge: tocsin router ack rule:ETH/Tigray:2027-01-15T08:00Z -r NAME --url https://tocsin.example.org
  Decide: tocsin router decide rule:ETH/Tigray:2027-01-15T08:00Z -r NAME --action-taken TEXT \
--url https://tocsin.example.org

Other decisions: --declined REASON or --referred-to RECEIVER (instead of --action-taken).
The CLI reads your organisation's token from TOCSIN_TOKEN.
All your organisation's alerts: https://tocsin.example.org/"""

EMAIL_FR = f"""\
Pour igad-situation-room : 1 alerte, groupe {GROUP}.

EN COURS CRITIQUE  rule:ETH/Tigray:2027-01-15T08:00Z
  attacks-on-civilians fired for ETH/Tigray
  rf11.attack_on_civilians count: 41 >= 40,5
  élément de preuve gdelt2:1 Village attacked https://example.org/1
  Console : {LINK}
  Prendre en charge : tocsin router ack rule:ETH/Tigray:2027-01-15T08:00Z -r NOM --url https://tocsin.example.org
  Décider : tocsin router decide rule:ETH/Tigray:2027-01-15T08:00Z -r NOM --action-taken TEXTE \
--url https://tocsin.example.org

Autres décisions : --declined MOTIF ou --referred-to DESTINATAIRE (au lieu de --action-taken).
La CLI lit le jeton de votre organisation dans TOCSIN_TOKEN.
Toutes les alertes de votre organisation : https://tocsin.example.org/"""

# Without an external_url: no link (rather than a broken one), commands without --url, and where to point
# the CLI instead.
EMAIL_BARE = f"""\
To igad-situation-room: 1 alert, group {GROUP}.

FIRING CRITICAL  rule:ETH/Tigray:2027-01-15T08:00Z
  attacks-on-civilians fired for ETH/Tigray
  rf11.attack_on_civilians count: 41 >= 40.5
  evidence gdelt2:1 Village attacked https://example.org/1
  Acknowledge: tocsin router ack rule:ETH/Tigray:2027-01-15T08:00Z -r NAME
  Decide: tocsin router decide rule:ETH/Tigray:2027-01-15T08:00Z -r NAME --action-taken TEXT

Other decisions: --declined REASON or --referred-to RECEIVER (instead of --action-taken).
The CLI reads your organisation's token from TOCSIN_TOKEN.
Give it the router's address with --url or TOCSIN_ROUTER_URL."""


@pytest.mark.parametrize(
    "audience, subject, body",
    [
        (EN, "[TOCSIN] FIRING CRITICAL: 1 alert (alertname=attacks-on-civilians, country=ETH)", EMAIL_EN),
        (
            FR,
            "[TOCSIN] EN COURS CRITIQUE : 1 alerte (alertname=attacks-on-civilians, country=ETH)",
            EMAIL_FR,
        ),
        (BARE, "[TOCSIN] FIRING CRITICAL: 1 alert (alertname=attacks-on-civilians, country=ETH)", EMAIL_BARE),
    ],
)
def test_the_email_text_in_each_language(audience, subject, body):
    assert message().email(audience) == (subject, body)


def test_subjects_escalation_plurals_and_every_status_and_severity():
    two = message(alert(), alert("rule:ETH/Amhara:2027-01-15T08:00Z", status="RESOLVED", severity="WATCH"))
    assert (
        two.subject(EN)
        == "[TOCSIN] FIRING CRITICAL/WATCH: 2 alerts (alertname=attacks-on-civilians, country=ETH)"
    )
    assert two.subject(FR) == (
        "[TOCSIN] EN COURS CRITIQUE/VEILLE : 2 alertes (alertname=attacks-on-civilians, country=ETH)"
    )
    escalated = Message("un-osapg", f"escalation:{ID}:1", {"alert_id": ID}, [alert()], 1)
    assert escalated.subject(EN) == f"[TOCSIN ESCALATION] FIRING CRITICAL: 1 alert (alert_id={ID})"
    assert escalated.subject(FR) == f"[TOCSIN ESCALADE] EN COURS CRITIQUE : 1 alerte (alert_id={ID})"
    assert escalated.email(FR)[1].splitlines()[2] == (
        "Escaladée (niveau 1) : personne ne l'a prise en charge à temps."
    )
    assert escalated.email(EN)[1].splitlines()[2] == "Escalated (level 1): nobody acknowledged in time."
    updated = message(
        alert("b", status="UPDATED", severity="INFO"), alert(status="RESOLVED", severity="WARNING")
    )
    assert updated.subject(FR).startswith("[TOCSIN] EN COURS AVERTISSEMENT/INFO : 2 alertes")  # worst first
    lines = updated.email(FR)[1].splitlines()
    assert [lines[2], lines[10]] == ["MISE À JOUR INFO  b", f"RÉSOLUE AVERTISSEMENT  {ID}"]
    gone = message(alert(status="RESOLVED", severity="WARNING"))
    assert (
        gone.subject(EN) == "[TOCSIN] RESOLVED WARNING: 1 alert (alertname=attacks-on-civilians, country=ETH)"
    )
    assert gone.subject(FR) == (
        "[TOCSIN] RÉSOLUE AVERTISSEMENT : 1 alerte (alertname=attacks-on-civilians, country=ETH)"
    )


def test_numbers_are_written_as_the_language_writes_them():
    big = alert(values=[{"name": "risk score", "value": 12345.5, "threshold": 0.0004, "comparator": ">"}])
    assert "  risk score: 12,345.5 > 0.0004" in message(big).email(EN)[1].splitlines()
    assert "  risk score: 12\u202f345,5 > 0,0004" in message(big).email(FR)[1].splitlines()


def test_console_links_and_commands():
    assert console_url(SITE, ID) == LINK
    assert console_url("", ID) == ""
    odd = "odd id's; rm -rf ~"  # a shell would not run it as written
    assert ack_command(odd, EN) == (
        "tocsin router ack 'odd id'\"'\"'s; rm -rf ~' -r NAME --url https://tocsin.example.org"
    )
    assert shlex.split(ack_command(odd, EN))[3] == odd
    assert decide_command(ID, FR) == (
        f"tocsin router decide {ID} -r NOM --action-taken TEXTE --url https://tocsin.example.org"
    )
    assert hints(ID, BARE) == [
        f"Acknowledge: tocsin router ack {ID} -r NAME",
        f"Decide: tocsin router decide {ID} -r NAME --action-taken TEXT",
    ]


def test_the_alertmanager_webhook_links_to_the_console_in_the_receivers_language():
    payload = json.loads(WebhookNotifier(Webhook(url="http://x"), FR).render(message()))
    assert payload["externalURL"] == SITE
    [item] = payload["alerts"]
    assert item["generatorURL"] == LINK
    assert item["annotations"] == {
        "summary": "attacks-on-civilians fired for ETH/Tigray",  # the alert's own, as the rule wrote it
        "rule_version": "0123456789ab",
        "alert_id": ID,
        "evidence": "https://example.org/1",
        "description": (
            f"Console : {LINK}\n"
            f"Prendre en charge : tocsin router ack {ID} -r NOM --url {SITE}\n"
            f"Décider : tocsin router decide {ID} -r NOM --action-taken TEXTE --url {SITE}"
        ),
    }
    assert item["labels"] == {"alertname": "attacks-on-civilians", "country": "ETH", "severity": "critical"}
    # No external_url: empty fields, as Alertmanager's format has them, and no link in the text.
    bare = json.loads(WebhookNotifier(Webhook(url="http://x")).render(message()))
    assert (bare["externalURL"], bare["alerts"][0]["generatorURL"]) == ("", "")
    assert bare["alerts"][0]["annotations"]["description"] == (
        f"Acknowledge: tocsin router ack {ID} -r NAME\n"
        f"Decide: tocsin router decide {ID} -r NAME --action-taken TEXT"
    )


def test_the_cloudevent_and_the_file_line_carry_the_console_link():
    event = json.loads(WebhookNotifier(Webhook(url="http://x", format="cloudevents"), EN).render(message()))
    assert event["data"]["external_url"] == SITE
    assert [a["console_url"] for a in event["data"]["alerts"]] == [LINK]
    line = FileNotifier(FileChannel(path="-"), FR).render(message())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    written = json.loads(line)
    assert written["externalURL"] == SITE and written["alerts"][0]["generatorURL"] == LINK
    assert written["alerts"][0]["annotations"]["description"].startswith(f"Console : {LINK}\n")


def test_the_email_as_sent_mime_headers_and_encoding():
    spec = Email(to=["cewarn@example.org"], sender="tocsin@example.org", smtp_host="127.0.0.1")
    for audience, subject, body in [
        (
            FR,
            "[TOCSIN] EN COURS CRITIQUE : 1 alerte (alertname=attacks-on-civilians, country=ETH)",
            EMAIL_FR,
        ),
        (EN, "[TOCSIN] FIRING CRITICAL: 1 alert (alertname=attacks-on-civilians, country=ETH)", EMAIL_EN),
    ]:
        raw = EmailNotifier(spec, audience).render(message())
        assert raw.isascii()  # quoted-printable French: no 8-bit data for a relay to refuse
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert (mail["Subject"], mail["Content-Language"], mail["To"]) == (
            subject,
            audience.language,
            "cewarn@example.org",
        )
        assert mail.get_content().rstrip("\n") == body


class _Router(ThreadingHTTPServer):
    """A stand-in for the router's API that records the answers the CLI posts."""

    def __init__(self):
        self.posts: list[tuple[str, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):  # noqa: N802, N805
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.posts.append((handler.path, body))
                handler.send_response(201)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(b"{}")

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_the_commands_in_a_notification_run_as_written():
    router = _Router()
    try:
        audience = Audience("fr", f"http://127.0.0.1:{router.server_address[1]}")
        body = message().email(audience)[1]
        commands = [line.split(" : ", 1)[1] for line in body.splitlines() if "tocsin router" in line]
        assert len(commands) == 2
        for command in commands:
            args = shlex.split(command.replace(" NOM ", " Amina ").replace(" TEXTE ", " 'Envoy briefed' "))
            assert args[:2] == ["tocsin", "router"]
            result = CliRunner().invoke(app, [*args[1:], "--token", "t"])
            assert result.exit_code == 0, result.output
    finally:
        router.shutdown()
    path = "/v1/alerts/rule%3AETH%2FTigray%3A2027-01-15T08%3A00Z/responses"
    assert router.posts == [
        (path, {"kind": "acknowledged", "responder": "Amina"}),
        (
            path,
            {
                "kind": "action_taken",
                "responder": "Amina",
                "description": "Envoy briefed",
                "reason": None,
                "referred_to": None,
            },
        ),
    ]


# -- the catalogues ----------------------------------------------------------------------------------


def _code_messages() -> set[tuple[str | None, str]]:
    found = set()
    for _file, _line, msg, _comments, context in extract_from_dir(
        NOTIFY, method_map=[("**.py", "python")], strip_comment_tags=True
    ):
        found.add((context, msg if isinstance(msg, str) else msg[0]))
    return found


def test_every_message_of_the_code_is_translated_in_every_catalogue_and_no_other():
    code = _code_messages()
    assert len(code) >= 20
    for language in LANGUAGES[1:]:
        with catalogue_path(language).open("rb") as po:
            catalog = read_po(po, locale=language)
        assert catalog.plural_forms == "nplurals=2; plural=(n > 1);"
        kept = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in catalog if m.id}
        assert kept == code, f"{language}: missing {code - kept}, obsolete {kept - code}"
        for m in catalog:
            if not m.id:
                continue
            ids = [m.id] if isinstance(m.id, str) else list(m.id)
            strings = [m.string] if isinstance(m.string, str) else list(m.string)
            assert all(strings) and not m.fuzzy, f"{language}: {m.id!r} is not translated"
            names = {frozenset(re.findall(r"\{(\w+)\}", text)) for text in ids + strings}
            assert len(names) == 1, f"{language}: {m.id!r} and its translation name other placeholders"


def test_catalogues_compile_in_memory_with_plurals():
    fr = translations("fr")
    assert fr.pgettext("severity", "CRITICAL") == "CRITIQUE"
    singular, plural = "{status} {severities}: {count} alert", "{status} {severities}: {count} alerts"
    assert [fr.ngettext(singular, plural, n) for n in (0, 1, 2)] == [
        "{status} {severities} : {count} alerte",
        "{status} {severities} : {count} alerte",
        "{status} {severities} : {count} alertes",
    ]
    assert translations("en").ngettext(singular, plural, 2) == plural
    assert translations("fr") is fr  # compiled once
