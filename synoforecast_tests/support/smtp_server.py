"""A real SMTP server for the email route's tests: aiosmtpd on 127.0.0.1 (a free port), with
STARTTLS on a throwaway self-signed certificate and AUTH that is offered only after STARTTLS,
recording every message it accepted::

    with SmtpServer(cert, users={"forecast": "pw"}) as smtp:
        send_email("subject", "body", EmailConfig.from_variables(smtp.variables()))
        (message,) = smtp.received
        assert message.tls and message.login == "forecast"

The certificate (``smtp_cert``) is made once per session with the ``openssl`` CLI (the
``cryptography`` package is not installed here): an EC key, CN ``localhost``, and the
subject alternative names ``DNS:localhost`` and ``IP:127.0.0.1`` so a client that connects to
127.0.0.1 and verifies the host name accepts it once it trusts the certificate.

What the server does (aiosmtpd's SMTP with ``require_starttls``, ``auth_required`` and
``auth_require_tls``): before STARTTLS, MAIL answers ``530 Must issue a STARTTLS command
first`` and AUTH is neither offered nor accepted (``538 Encryption required``); after it,
MAIL without a login answers ``530 Authentication required``, a wrong password ``535 5.7.8
Authentication credentials invalid``. ``SmtpServer(cert, tls=False, users=None)`` is a relay
without TLS and without AUTH.

Knobs (plain attributes): ``refuse`` (addresses whose RCPT answers 550 user unknown),
``busy_rcpt`` / ``busy_data`` (the next N RCPT / DATA answer 451, try again later),
``data_delay_s`` (the server takes the message, then waits that long before it says so). ``data_attempts`` counts messages whose content reached the server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from synoforecast_tests.support.required import missing_tool

SENDER = "Synoforecast <forecast@example.test>"
RECIPIENTS = ("ops@example.test", "Sales Lead <sales@example.test>")
USER, PASSWORD = "forecast", "smtp-pw-SECRET"


@dataclass(frozen=True)
class Cert:
    cert: Path  # PEM certificate (self-signed: it is its own CA)
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_cert(folder: Path, name: str = "localhost") -> Cert:
    """A throwaway self-signed certificate for ``name`` and 127.0.0.1, made by ``openssl``."""
    if shutil.which("openssl") is None:
        missing_tool("the openssl CLI is needed to make the test SMTP server's certificate")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Cert(cert, key)


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool  # STARTTLS was done before it
    login: str | None  # the user AUTH accepted

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["subject"])

    @property
    def text(self) -> str:
        """The body as a mail client shows it (lines end with \\n)."""
        return self.message.get_content().replace("\r\n", "\n")


@dataclass
class _Knobs:
    refuse: set[str] = field(default_factory=set)
    busy_rcpt: int = 0
    busy_data: int = 0
    data_delay_s: float = 0.0


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.server.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if self.server.busy_rcpt > 0:
            self.server.busy_rcpt -= 1
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.server.data_attempts += 1
        if self.server.busy_data > 0:
            self.server.busy_data -= 1
            return "451 4.3.0 Temporary local problem, try again later"
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or envelope.content),
                tls=session.ssl is not None,
                login=login,
            )
        )
        if self.server.data_delay_s:  # taken, but the answer comes late
            await asyncio.sleep(self.server.data_delay_s)
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer(_Knobs):
    host = "127.0.0.1"

    def __init__(self, cert: Cert, *, tls: bool = True, users: dict[str, str] | None = None):
        super().__init__()
        self.cert = cert
        self.tls = tls
        self.users = {USER: PASSWORD} if users is None and tls else dict(users or {})
        self.received: list[Received] = []
        self.data_attempts = 0
        self.port = free_port()
        options: dict = {"server_hostname": "smtp.example.test"}
        if tls:
            options |= {"tls_context": cert.server_context(), "require_starttls": True, "auth_require_tls": True}
        if self.users:
            options |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if user in self.users and self.users[user] == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def variables(self, **overrides: str | None) -> dict[str, str]:
        """The SMTP_* variables that point the email route at this server (override or drop
        one with ``NAME=value`` / ``NAME=None``)."""
        found = {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_FROM": SENDER,
            "SMTP_TO": ", ".join(RECIPIENTS),
            "SMTP_TIMEOUT_S": "5",
        }
        if self.tls:
            found["SMTP_CA_FILE"] = str(self.cert.cert)
        else:
            found["SMTP_STARTTLS"] = "false"
        if self.users:
            user, password = next(iter(self.users.items()))
            found |= {"SMTP_USERNAME": user, "SMTP_PASSWORD": password}
        found |= overrides
        return {k: v for k, v in found.items() if v is not None}

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture
def smtp_server(smtp_cert):
    """A STARTTLS + AUTH SMTP server for one test (user ``USER``, password ``PASSWORD``)."""
    with SmtpServer(smtp_cert) as server:
        yield server
