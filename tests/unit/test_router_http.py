"""The HTTP channels' http_config against a real TLS server: a private CA, a client certificate the
server requires (mutual TLS), a bearer token or basic auth read from files at each send; a server that
trickles its answer is cut at the channel's timeout; refusals checked at load with their exact messages."""

from __future__ import annotations

import base64
import datetime
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.unit.test_router_notify import message
from tocsin.router.config import RouterConfigError, Webhook, parse_router_config
from tocsin.router.notify.webhook import WebhookNotifier


def issue(name: str, issuer=None, ca=False, host=None):
    """A key and a certificate for `name`, signed by `issuer` (key, cert), or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if host:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(host))]),
            critical=False,
        )
    cert = builder.sign(issuer[0] if issuer else key, hashes.SHA256())
    return key, cert


def write(path, key, cert):
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path.with_suffix(".crt")), str(path.with_suffix(".key"))


@pytest.fixture
def pki(tmp_path):
    ca = issue("tocsin test CA", ca=True)
    ca_file, _ = write(tmp_path / "ca", *ca)
    server = write(tmp_path / "server", *issue("receiver", ca, host="127.0.0.1"))
    client = write(tmp_path / "client", *issue("tocsin-router", ca))
    stranger = write(tmp_path / "stranger", *issue("someone else"))
    return {"ca": ca_file, "server": server, "client": client, "stranger": stranger, "dir": tmp_path}


class Receiver(ThreadingHTTPServer):
    """An HTTPS server that requires a client certificate from the CA; what each POST carried."""

    def __init__(self, pki, trickle_s: float = 0):
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                peer = self.connection.getpeercert()
                outer.seen.append({"auth": self.headers.get("Authorization"), "peer": peer["subject"]})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                for byte in b"ok":  # slowly, if asked: each write well within a socket timeout
                    time.sleep(trickle_s)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        super().__init__(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"])
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(*pki["server"])
        self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.server_address[1]}/hook"


def secret(pki, name, text):
    path = pki["dir"] / name
    path.write_text(text + "\n")
    return str(path)


def test_mutual_tls_with_a_private_ca_and_a_bearer_token_read_at_each_send(pki):
    receiver = Receiver(pki)
    token = secret(pki, "token", "s3cret")
    spec = Webhook(
        url=receiver.url,
        http_config={
            "tls_config": {"ca_file": pki["ca"], "cert_file": pki["client"][0], "key_file": pki["client"][1]},
            "authorization": {"credentials_file": token},
        },
    )
    assert WebhookNotifier(spec).send(message()).ok
    secret(pki, "token", "rotated")  # a rotated credential is read at the next send
    assert WebhookNotifier(spec).send(message()).ok
    assert [s["auth"] for s in receiver.seen] == ["Bearer s3cret", "Bearer rotated"]
    assert receiver.seen[0]["peer"] == ((("commonName", "tocsin-router"),),)
    receiver.shutdown()


def test_basic_auth_from_a_file(pki):
    receiver = Receiver(pki)
    spec = Webhook(
        url=receiver.url,
        http_config={
            "tls_config": {"ca_file": pki["ca"], "cert_file": pki["client"][0], "key_file": pki["client"][1]},
            "basic_auth": {"username": "tocsin", "password_file": secret(pki, "password", "pa:ss")},
        },
    )
    assert WebhookNotifier(spec).send(message()).ok
    assert receiver.seen[0]["auth"] == "Basic " + base64.b64encode(b"tocsin:pa:ss").decode()
    receiver.shutdown()


def test_an_unknown_server_or_a_missing_client_certificate_is_a_retryable_failure(pki):
    receiver = Receiver(pki)
    untrusted = WebhookNotifier(Webhook(url=receiver.url)).send(message())  # the system CAs: not this one
    assert (untrusted.ok, untrusted.retryable) == (False, True)
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
    stranger = Webhook(
        url=receiver.url,
        http_config={
            "tls_config": {
                "ca_file": pki["ca"],
                "cert_file": pki["stranger"][0],
                "key_file": pki["stranger"][1],
            }
        },
    )
    refused = WebhookNotifier(stranger).send(message())
    assert (refused.ok, refused.retryable) == (False, True)
    assert receiver.seen == []
    receiver.shutdown()


def test_a_server_that_trickles_its_answer_is_cut_at_the_channel_timeout(pki):
    receiver = Receiver(pki, trickle_s=0.8)  # 1.6 s for its two bytes, each read under 1 s
    spec = Webhook(
        url=receiver.url,
        timeout="1s",
        http_config={
            "tls_config": {"ca_file": pki["ca"], "cert_file": pki["client"][0], "key_file": pki["client"][1]}
        },
    )
    started = time.monotonic()
    outcome = WebhookNotifier(spec).send(message())
    took = time.monotonic() - started
    assert outcome == (False, True, "TimeoutError: no whole answer within 1 s", None)
    assert took < 1.5
    receiver.shutdown()


def test_http_config_refusals_at_load(tmp_path):
    readable = tmp_path / "token"
    readable.write_text("x")

    def errors(http_config):
        document = {
            "version": 1,
            "route": {"receiver": "r"},
            "receivers": [
                {
                    "name": "r",
                    "organisation": "o",
                    "channels": [{"webhook": {"url": "https://x", "http_config": http_config}}],
                }
            ],
            "organisations": [{"name": "o", "token_sha256": "0" * 64}],
        }
        with pytest.raises(RouterConfigError) as raised:
            parse_router_config(document)
        return raised.value.errors

    where = "receivers.0.channels.0.webhook.http_config"
    assert errors({"tls_config": {"cert_file": str(readable)}}) == [
        f"{where}.tls_config: cert_file and key_file go together (a client certificate and its key)"
    ]
    missing = tmp_path / "nope"
    assert errors({"authorization": {"credentials_file": str(missing)}}) == [
        f"{where}.authorization.credentials_file: {missing}: cannot be read (No such file or directory)"
    ]
    assert errors(
        {
            "authorization": {"credentials_file": str(readable)},
            "basic_auth": {"username": "u", "password_file": str(readable)},
        }
    ) == [f"{where}: authorization and basic_auth: one or the other"]
    assert errors({"authorization": {"credentials": "inline"}}) == [
        f"{where}.authorization.credentials_file: Field required",
        f"{where}.authorization.credentials: Extra inputs are not permitted",
    ]
