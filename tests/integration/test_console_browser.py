"""The console in a real browser (Debian's headless Chromium, driven by playwright) on a real router
over the real broker: a duty officer signs in with the organisation's token, sees only the alerts
routed to it, opens one with its evidence, acknowledges it, finds the answer in the ledger, switches to
French; another organisation's alert is neither listed nor reachable; a form posted without its CSRF
token is refused. A screenshot of the alert page is saved (tests/out, or TOCSIN_SCREENSHOTS)."""

from __future__ import annotations

import http.client
import os
import re
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from kafka import KafkaProducer

from tests.faults.test_fuzz_http import alert, call, create_topics
from tests.integration.test_backtest_report_browser import CHROMIUM_ARGS, chromium, is_a_rendering
from tocsin.organisations import token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import read_ledger
from tocsin.router.service import Router
from tocsin.serde.avro import default_registry, encode

pytestmark = pytest.mark.integration

TOKENS = {"igad": "igad-console-token", "un": "un-console-token"}
TIGRAY = "threshold:ETH/Tigray:2024-01-07"
DARFUR = "threshold:SDN:2024-01-07"
SCREENSHOTS = Path(os.environ.get("TOCSIN_SCREENSHOTS", Path(__file__).parents[1] / "out"))


DAY = 86_400_000
JAN_7 = 1_704_585_600_000  # 2024-01-07


def evidenced(alert_id: str, country: str, region: str | None, day: int = 0, deaths: float = 38) -> dict:
    """The alert's event `day` days after it fired on 7 January 2024 (FIRING, then UPDATED)."""
    found = alert(alert_id, country, region)
    end = JAN_7 + day * DAY
    found.update(sequence=day + 1, status="UPDATED" if day else "FIRING", window_start=end - 7 * DAY,
                 window_end=end, first_fired=JAN_7, last_updated=end)  # fmt: skip
    found["summary"] = f"Civilians killed in {region or country}: {deaths:g} in 7 days (threshold 25)"
    found["values"] = [{"name": "fatalities", "value": deaths, "threshold": 25.0, "comparator": ">="}]
    found["risk_factors"] = [1, 11]
    found["evidence"] = [
        {"record_id": "reliefweb:4021", "title": "Shelling of Mekelle market", "source": "reliefweb",
         "url": "https://reliefweb.int/report/ethiopia/example"},
    ]  # fmt: skip
    return found


@pytest.fixture
def console(bootstrap, tmp_path):
    stem = time.time_ns()
    topics = {k: f"test.console-{k}.{stem}.v1" for k in ("alerts", "ledger", "notifications", "responses")}
    create_topics(bootstrap, list(topics.values()))
    config = parse_router_config(
        {
            "version": 1,
            "route": {
                "receiver": "un-room",
                "group_wait": "1s",
                "routes": [{"matchers": ['country="ETH"'], "receiver": "igad-room"}],
            },
            "receivers": [
                {
                    "name": "igad-room",
                    "organisation": "igad",
                    "channels": [{"file": {"path": str(tmp_path / "i")}}],
                },
                {
                    "name": "un-room",
                    "organisation": "un",
                    "channels": [{"file": {"path": str(tmp_path / "u")}}],
                },
            ],
            "organisations": [
                {"name": "igad", "token_sha256": token_digest(TOKENS["igad"])},
                {"name": "un", "token_sha256": token_digest(TOKENS["un"]), "admin": True},
            ],
        }
    )
    # The alerts come as the alert job writes them: Avro on the alerts topic, read by the router.
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    schema = default_registry().get("Alert")
    events = [evidenced(TIGRAY, "ETH", "Tigray", d, deaths) for d, deaths in enumerate((38, 52, 61, 57))]
    for found in [*events, evidenced(DARFUR, "SDN", None)]:
        producer.send(topics["alerts"], encode(schema, found), key=found["id"].encode())
    producer.flush()
    producer.close()
    router = Router(config, {"bootstrap_servers": [bootstrap]}, topics)
    router.start()
    deadline = time.monotonic() + 30
    while len(router.state.story.get(TIGRAY, ())) < 8 and time.monotonic() < deadline:
        router.poll_once()
    time.sleep(1.2)
    router.tick()  # past group_wait: both notified, now waiting for an answer
    api = RouterAPI(router).start()
    yield api, router, bootstrap, topics
    api.stop()
    router.close()


def test_a_duty_officer_signs_in_reads_and_acknowledges_an_alert_in_the_console(console):
    api, router, bootstrap, topics = console
    executable = chromium()
    from matplotlib import image as mpimg
    from playwright.sync_api import sync_playwright

    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en-GB")
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))

        page.goto(f"{api.url}/alerts/{quote(TIGRAY, safe='')}")  # a link from an e-mail, not signed in
        assert "/login" in page.url
        page.fill("input[name=token]", "wrong")
        page.click("form[action='/login'] button")
        assert page.locator(".error").inner_text() == "Unknown token."
        errors.remove("Failed to load resource: the server responded with a status of 401 (Unauthorized)")
        page.fill("input[name=token]", TOKENS["igad"])
        page.click("form[action='/login'] button")
        assert page.locator("#alert-id").inner_text() == TIGRAY  # back where the link pointed

        page.goto(api.url + "/")
        listed = page.locator("#alerts tbody tr code").all_inner_texts()
        assert listed == [TIGRAY]  # only what was routed to IGAD
        assert (
            page.locator("#waiting").inner_text().startswith("1 alert waits for your answer; it has waited")
        )
        page.goto(f"{api.url}/alerts/{quote(DARFUR, safe='')}")
        assert page.locator("h1").inner_text() == "No such alert"  # another organisation's: 404
        errors.remove("Failed to load resource: the server responded with a status of 404 (Not Found)")

        page.goto(api.url + "/")
        page.click(f"a[href='/alerts/{quote(TIGRAY, safe='')}']")
        assert page.locator("#alert-id").inner_text() == TIGRAY
        assert (
            page.locator("#evidence a").get_attribute("href")
            == "https://reliefweb.int/report/ethiopia/example"
        )
        assert (
            "Risk factor 11: Signs of a widespread or systematic attack"
            in page.locator("#risk-factors").inner_text()
        )
        assert page.locator("#values td").all_inner_texts()[:2] == ["fatalities", "57.0"]  # the last event
        assert page.locator("#series svg").count() == 1  # the plot, drawn on the server
        assert page.locator("#map svg").get_attribute("aria-label") == "ETH / Tigray"  # and the map
        kinds = page.locator("#story tbody tr td:nth-child(2)").all_inner_texts()
        assert kinds.count("alert.received") == 4 and "notification" in kinds
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "console-alert.png"
        page.screenshot(path=str(shot), full_page=True)

        page.fill("#answer input[name=responder]", "Amina, IGAD situation room")
        page.select_option("#answer select[name=kind]", "acknowledged")
        page.click("#answer button")
        assert page.locator(".done").inner_text() == "Your answer is recorded in the ledger."
        assert (
            page.locator("#acknowledged")
            .inner_text()
            .startswith("Acknowledged by Amina, IGAD situation room")
        )
        story = page.locator("#story tbody tr.story-response td").all_inner_texts()
        assert story[1:] == ["response", "igad/Amina, IGAD situation room", "ACKNOWLEDGED"]  # in the ledger

        page.click("form[action='/language'] button[value=fr]")
        assert page.locator("html").get_attribute("lang") == "fr"
        assert page.locator("#status").inner_text() == "MISE À JOUR"  # UPDATED, in French
        assert page.locator("#acknowledged").inner_text().startswith("Prise en charge par Amina")
        assert "réponse" in page.locator("#story").inner_text()
        assert "PRISE EN CHARGE" in page.locator("#story tbody tr.story-response").inner_text()
        browser.close()

    assert errors == []
    assert all(url.startswith(api.url) for url in requests), [
        u for u in requests if not u.startswith(api.url)
    ]
    assert is_a_rendering(mpimg.imread(shot), min_colours=50)
    story = [e for e in read_ledger(router.client, topics["ledger"]) if e.subject_id == TIGRAY]
    [answer] = [e for e in story if e.kind == "response"]
    assert (answer.actor, answer.payload["kind"]) == ("igad/Amina, IGAD situation room", "ACKNOWLEDGED")


def test_a_form_posted_without_its_csrf_token_is_refused(console):
    api, router, _, _ = console
    # Signed in (the session cookie), but the form does not carry the session's token: refused.
    status, _, response = call(api.port, "GET", "/login")
    cookie = response.getheader("set-cookie").split(";")[0]
    login = f"csrf=&token={TOKENS['igad']}".encode()
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    status, payload, _ = call(api.port, "POST", "/login", login, headers)
    assert (status, payload) == (
        403,
        {"errors": ["csrf: this form is stale or was not sent from the console; reload the page"]},
    )
    answer = b"kind=acknowledged&responder=forger"
    status, _, _ = call(api.port, "POST", f"/alerts/{quote(TIGRAY, safe='')}/answer", answer, headers)
    assert status in (303, 403)  # not signed in (to the login page) or refused; never recorded
    assert router.state.acks.get(TIGRAY) is None


class Session:
    """A browser's cookie and the console's CSRF token, over plain HTTP."""

    def __init__(self, port: int):
        self.port, self.cookie = port, ""

    def post(self, path: str, fields: dict):
        body = urlencode({**fields, "csrf": self.csrf}).encode()
        headers = {"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"}
        status, _, response = call(self.port, "POST", path, body, headers)
        if response.getheader("set-cookie"):
            self.cookie = response.getheader("set-cookie").split(";")[0]
        return status, response.getheader("location")

    def sign_in(self, token: str) -> None:
        assert self.page("/login")[0] == 200
        assert self.post("/login", {"token": token})[0] == 303

    def page(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie})
        response = conn.getresponse()
        html = response.read().decode()
        conn.close()
        if response.getheader("set-cookie"):
            self.cookie = response.getheader("set-cookie").split(";")[0]
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        self.csrf = found.group(1) if found else ""
        return response.status, html


def test_an_admin_creates_and_expires_a_silence_in_the_console_and_others_may_not(console):
    api, router, _, _ = console
    igad = Session(api.port)
    igad.sign_in(TOKENS["igad"])
    assert igad.page("/silences")[0] == 403  # not an admin organisation

    un = Session(api.port)
    un.sign_in(TOKENS["un"])
    assert un.page("/silences")[0] == 200
    made = {"matchers": 'country="SDN"', "author": "duty officer", "reason": "known event", "hours": "2"}
    assert un.post("/silences", made) == (303, "/silences")
    [silence] = router.state.silences.values()
    assert (silence.matchers, silence.author) == (('country="SDN"',), "duty officer")
    un.page("/silences")
    assert un.post("/silences", {**made, "hours": "inf"}) == (
        303, "/silences?error=hours%3A%20a%20number%20of%20hours%2C%200%20or%20more"
    )  # fmt: skip
    assert un.post(f"/silences/{silence.id}/expire", {}) == (303, "/silences")
    assert router.state.silences[silence.id].ends_at <= time.time()
    kinds = [e.kind for e in read_ledger(router.client, router.topics["ledger"])]
    assert kinds.count("silence.created") == 1 and kinds.count("silence.expired") == 1
