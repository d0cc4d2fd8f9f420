"""E-mail channel over SMTP (optionally STARTTLS and login; the password comes from the environment)."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage

from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience


class EmailNotifier:
    kind = "email"

    def __init__(self, spec, audience: Audience | None = None):
        self.spec = spec
        self.timeout = spec.timeout
        self.audience = audience or Audience()

    def render(self, message) -> bytes:
        return self._email(message).as_bytes()

    def _email(self, message) -> EmailMessage:
        subject, body = message.email(self.audience)
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.spec.sender
        mail["To"] = ", ".join(self.spec.to)
        # Quoted-printable rather than raw 8-bit text, which a relay without 8BITMIME may refuse or mangle.
        mail.set_content(body, cte=None if body.isascii() else "quoted-printable")
        mail["Content-Language"] = self.audience.language  # after set_content, which clears Content-*
        return mail

    def send(self, message) -> Outcome:
        try:
            with smtplib.SMTP(self.spec.smtp_host, self.spec.smtp_port, timeout=self.timeout) as smtp:
                if self.spec.starttls:
                    smtp.starttls()
                if self.spec.username:
                    smtp.login(self.spec.username, os.environ.get(self.spec.password_env or "", ""))
                smtp.send_message(self._email(message))
            return Outcome(True, detail="sent")
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
        ) as error:
            return Outcome(False, False, f"{type(error).__name__}: {error}")
        except smtplib.SMTPResponseException as error:
            return Outcome(False, 400 <= error.smtp_code < 500, f"SMTP {error.smtp_code}")
        except (smtplib.SMTPException, OSError) as error:
            return Outcome(False, True, f"{type(error).__name__}: {error}")
