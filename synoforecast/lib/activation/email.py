"""Email the run summary and the alerts over SMTP: STARTTLS, AUTH, several recipients.

Pure library (stdlib ``smtplib`` and ``email``, no Dagster). The password never appears in
``repr()``, in results or in error messages.

What it does, per message:

* connects to ``SMTP_HOST:SMTP_PORT`` (587, the submission port), says EHLO, then STARTTLS
  (unless ``SMTP_STARTTLS=false``, for a relay without TLS that takes no credentials). The
  server's certificate is verified against the system's CAs, or against ``SMTP_CA_FILE``
  instead when it is set, and must name ``SMTP_HOST``. A server that offers no STARTTLS is a
  failure, never a fall-back to plain text; port 465 (TLS from the first byte) is not spoken.
* logs in (AUTH) when ``SMTP_USERNAME`` is set;
* sends one message from ``SMTP_FROM`` to every ``SMTP_TO`` recipient: plain text, UTF-8,
  quoted-printable, marked ``Auto-Submitted: auto-generated`` so auto-replies stay away.

Retries follow the platform's one rule (lib/activation/http.py), only where nothing was
delivered: a refused or timed-out connection, a connection lost before the message was
sent, a temporary (4xx) answer before the server took the message. Once the message's
content went out, nothing is sent again: a connection lost while the server was taking it
may mean it was delivered. Some recipients refused while others took the message is a
failure naming them, not retried (the others would get it twice).
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from synoforecast.lib.activation.http import RetriesExhausted, retry_unsent
from synoforecast.lib.activation.variables import read_variables
from synoforecast.lib.redaction import MASK, redact

log = logging.getLogger(__name__)

__all__ = ["EmailConfig", "EmailError", "EmailFields", "check_email_access", "send_email", "variable"]

SUBJECT_LIMIT = 200


class EmailError(RuntimeError):
    """An email was not delivered, or its configuration is incomplete. Never contains the password."""


def variable(field_name: str) -> str:
    """The environment variable of an email field: the field's name upper-cased (SMTP_HOST, ...)."""
    return field_name.upper()


class EmailFields(BaseModel):
    """What the email route is told, declared once with types and ranges: EmailConfig reads
    them from the SMTP_* variables, defs/resources.WebhooksResource shows them in the UI."""

    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = Field(None, repr=False)
    smtp_from: str | None = None
    smtp_to: list[str] = []  # several recipients: SMTP_TO="a@example.com, b@example.com"
    smtp_starttls: bool = True  # false only for a relay without TLS (and then without credentials)
    smtp_ca_file: str | None = None  # CA bundle that verifies the server, instead of the system's
    smtp_timeout_s: float = Field(30.0, gt=0)


def _trimmed(raw: Any) -> Any:
    return (raw.strip() or None) if isinstance(raw, str) else raw


def _envelope(address: str) -> str:
    """The bare address of ``address`` ("Ops <ops@x.org>" -> "ops@x.org"), or ValueError."""
    if "\r" in address or "\n" in address:
        raise ValueError("must not contain a line break")
    _, bare = email.utils.parseaddr(address)
    if not bare or "@" not in bare.strip("@") or any(c.isspace() for c in bare):
        raise ValueError(f"{address!r} is not an email address")
    return bare


class EmailConfig(EmailFields):
    """The fields, checked: read from their variables (``variable(name)``) by
    ``from_variables``, and refused when only half a configuration is given."""

    model_config = ConfigDict(frozen=True, alias_generator=variable, populate_by_name=True, extra="forbid")

    retries: NonNegativeInt = 2  # not variables: the webhooks' schedule
    backoff_s: float = Field(1.0, ge=0)

    @field_validator("smtp_host", "smtp_username", "smtp_from", "smtp_ca_file", mode="before")
    @classmethod
    def _text(cls, raw: Any) -> Any:
        return _trimmed(raw)

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, host: str | None) -> str | None:
        if host and ("/" in host or any(c.isspace() for c in host)):
            raise ValueError("must be a host name (the port goes in SMTP_PORT)")
        return host

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, sender: str | None) -> str | None:
        if sender:
            _envelope(sender)
        return sender

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _recipients(cls, raw: Any) -> Any:
        """ "a@x.org, Sales <b@x.org>" (a variable) or a list -> the addresses in order, once each."""
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, (list, tuple)):
            return raw
        found = [a.strip() for a in raw if isinstance(a, str) and a.strip()]
        for address in found:
            try:
                _envelope(address)
            except ValueError as exc:
                raise ValueError(f"must be comma-separated email addresses: {exc}") from None
        return list(dict.fromkeys(found))

    @field_validator("smtp_ca_file")
    @classmethod
    def _ca_file(cls, path: str | None) -> str | None:
        if path and not Path(path).is_file():
            raise ValueError("is not a file (the CA bundle, PEM, that signed the SMTP server's certificate)")
        return path

    @model_validator(mode="after")
    def _whole(self) -> EmailConfig:
        """Half a configuration is an error: it would otherwise read as "not configured"."""
        if not self.smtp_host:
            given = [
                variable(name)
                for name in ("smtp_username", "smtp_password", "smtp_from", "smtp_to", "smtp_ca_file")
                if getattr(self, name)
            ]
            if given:
                raise EmailError(f"{_names(given)} {'is' if len(given) == 1 else 'are'} set but SMTP_HOST is not")
            return self
        missing = [name for name, value in (("SMTP_FROM", self.smtp_from), ("SMTP_TO", self.smtp_to)) if not value]
        if missing:
            raise EmailError(
                f"SMTP_HOST is set but {_names(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                "set the sender (SMTP_FROM) and at least one recipient (SMTP_TO)"
            )
        if bool(self.smtp_username) != bool(self.smtp_password):
            have, lack = (
                ("SMTP_USERNAME", "SMTP_PASSWORD") if self.smtp_username else ("SMTP_PASSWORD", "SMTP_USERNAME")
            )
            raise EmailError(f"{have} is set but {lack} is not: SMTP_USERNAME and SMTP_PASSWORD must be set together")
        if self.smtp_username and not self.smtp_starttls:
            raise EmailError(
                "SMTP_USERNAME and SMTP_PASSWORD are set but SMTP_STARTTLS is false: the password would cross "
                "the network unencrypted (a relay without TLS takes no credentials)"
            )
        if self.smtp_ca_file and not self.smtp_starttls:
            raise EmailError("SMTP_CA_FILE is set but SMTP_STARTTLS is false: there is no TLS to verify")
        return self

    @classmethod
    def from_variables(cls, env: Mapping[str, Any]) -> EmailConfig:
        """The SMTP_* variables (blank = unset); a malformed one raises EmailError naming it and
        its value (never the password's: it is not parsed)."""
        return read_variables(cls, env, fields=EmailFields.model_fields, variable=variable, error=EmailError)

    @property
    def configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def where(self) -> str:
        return f"{self.smtp_host}:{self.smtp_port}"

    def scrub(self, text: str) -> str:
        return redact(text, self.smtp_password)

    def __repr__(self) -> str:
        password = f"'{MASK}'" if self.smtp_password else "None"
        return (
            f"EmailConfig(smtp_host={self.smtp_host!r}, smtp_port={self.smtp_port!r}, "
            f"smtp_username={self.smtp_username!r}, smtp_password={password}, smtp_from={self.smtp_from!r}, "
            f"smtp_to={self.smtp_to!r}, smtp_starttls={self.smtp_starttls!r}, smtp_ca_file={self.smtp_ca_file!r}, "
            f"smtp_timeout_s={self.smtp_timeout_s!r}, retries={self.retries!r}, backoff_s={self.backoff_s!r})"
        )

    __str__ = __repr__


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# --------------------------------------------------------------------------- the message


def build_message(subject: str, text: str, cfg: EmailConfig) -> EmailMessage:
    """A plain-text message from SMTP_FROM to every SMTP_TO recipient."""
    msg = EmailMessage()
    subject = " ".join(subject.split()) or "synoforecast"
    msg["Subject"] = subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 1] + "…"
    msg["From"] = cfg.smtp_from
    msg["To"] = ", ".join(cfg.smtp_to)
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(idstring="synoforecast", domain=_envelope(cfg.smtp_from).rsplit("@")[-1])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    return msg


# --------------------------------------------------------------------------- the conversation


class _Failed(Exception):
    """One attempt failed; ``unsent``: nothing was delivered and another attempt may work."""

    def __init__(self, reason: str, *, unsent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unsent = unsent


def _reply(code: int | None, text: bytes | str | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join((text or "").split())
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{code} {text}".strip() if code is not None else text


def _transient(code: int | None) -> bool:
    return code is not None and 400 <= code < 500


def _tls_context(cfg: EmailConfig) -> ssl.SSLContext:
    """Certificate and host name verified: against SMTP_CA_FILE when set, else the system's CAs."""
    return ssl.create_default_context(cafile=cfg.smtp_ca_file)


def _tls_reason(exc: ssl.SSLError, cfg: EmailConfig) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "not verified"
        fix = (
            "check that SMTP_HOST is the name on the server's certificate"
            if "hostname" in why.lower() or "ip address mismatch" in why.lower()
            else "set SMTP_CA_FILE to the CA bundle that signed it"
            if not cfg.smtp_ca_file
            else "SMTP_CA_FILE does not hold the CA that signed it"
        )
        return f"TLS failed: the certificate of {cfg.where} was refused ({why}); {fix}"
    return f"TLS failed with {cfg.where}: {exc.reason or exc.strerror or exc}"


def _connect(cfg: EmailConfig) -> smtplib.SMTP:
    """Connected, greeted, STARTTLS done and logged in, or _Failed with the reason."""
    try:  # the host given here, not to connect(): STARTTLS verifies the certificate against it
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s)
    except smtplib.SMTPConnectError as exc:  # greeted with something else than 220
        raise _Failed(
            f"{cfg.where} refused the connection ({_reply(exc.smtp_code, exc.smtp_error)})",
            unsent=_transient(exc.smtp_code),
        ) from None
    except ConnectionRefusedError:
        raise _Failed(f"connection to {cfg.where} refused", unsent=True) from None
    except socket.gaierror as exc:
        raise _Failed(f"SMTP_HOST {cfg.smtp_host!r} does not resolve ({exc.strerror})", unsent=True) from None
    except TimeoutError:
        hint = " (port 465 expects TLS from the first byte, which this route does not speak: use 587)"
        raise _Failed(
            f"no answer from {cfg.where} within {cfg.smtp_timeout_s:g} s" + (hint if cfg.smtp_port == 465 else ""),
            unsent=True,
        ) from None
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        raise _Failed(f"cannot connect to {cfg.where} ({type(exc).__name__}: {exc})", unsent=True) from None
    try:
        smtp.ehlo_or_helo_if_needed()
        if cfg.smtp_starttls:
            if not smtp.has_extn("starttls"):
                raise _Failed(
                    f"{cfg.where} does not offer STARTTLS: nothing is sent unencrypted "
                    "(SMTP_STARTTLS=false only for a relay without TLS and without credentials)"
                )
            try:
                smtp.starttls(context=_tls_context(cfg))
            except ssl.SSLError as exc:
                raise _Failed(_tls_reason(exc, cfg)) from None
            except smtplib.SMTPResponseException as exc:
                raise _Failed(
                    f"{cfg.where} refused STARTTLS ({_reply(exc.smtp_code, exc.smtp_error)})",
                    unsent=_transient(exc.smtp_code),
                ) from None
            smtp.ehlo()
        if cfg.smtp_username:
            _login(smtp, cfg)
        return smtp
    except _Failed:
        smtp.close()
        raise
    except smtplib.SMTPServerDisconnected as exc:
        smtp.close()
        raise _Failed(f"{cfg.where} closed the connection before the message was sent ({exc})", unsent=True) from None
    except (OSError, smtplib.SMTPException) as exc:
        smtp.close()
        raise _Failed(f"{cfg.where}: {type(exc).__name__}: {exc} (before the message was sent)", unsent=True) from None


def _login(smtp: smtplib.SMTP, cfg: EmailConfig) -> None:
    if not smtp.has_extn("auth"):
        raise _Failed(
            f"{cfg.where} offers no AUTH{' after STARTTLS' if cfg.smtp_starttls else ''}: "
            "unset SMTP_USERNAME and SMTP_PASSWORD for a relay that takes no credentials"
        )
    try:
        smtp.login(cfg.smtp_username, cfg.smtp_password)
    except smtplib.SMTPAuthenticationError as exc:
        raise _Failed(
            f"authentication as {cfg.smtp_username!r} refused by {cfg.where} "
            f"({_reply(exc.smtp_code, exc.smtp_error)}); check SMTP_USERNAME and SMTP_PASSWORD",
            unsent=_transient(exc.smtp_code),
        ) from None
    except smtplib.SMTPException as exc:  # "No suitable authentication method found."
        offered = smtp.esmtp_features.get("auth", "").strip() or "none"
        raise _Failed(f"no AUTH method in common with {cfg.where} (it offers: {offered}; {exc})") from None


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        smtp.close()


def _deliver(payload: bytes, cfg: EmailConfig) -> list[str]:
    """One attempt: the recipients that took the message, or _Failed."""
    smtp = _connect(cfg)
    accepted: list[str] = []
    refused: dict[str, str] = {}
    try:
        try:
            code, reply = smtp.mail(_envelope(cfg.smtp_from))
            if code != 250:
                raise _Failed(f"sender {cfg.smtp_from} refused ({_reply(code, reply)})", unsent=_transient(code))
            temporary = False
            for recipient in cfg.smtp_to:
                code, reply = smtp.rcpt(_envelope(recipient))
                if code in (250, 251):
                    accepted.append(recipient)
                else:
                    refused[recipient] = _reply(code, reply)
                    temporary |= _transient(code)
            if not accepted:
                raise _Failed(
                    "every recipient refused: " + "; ".join(f"{r} ({why})" for r, why in refused.items()),
                    unsent=temporary,
                )
        except smtplib.SMTPServerDisconnected as exc:
            raise _Failed(
                f"{cfg.where} closed the connection before the message was sent ({exc})", unsent=True
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _Failed(
                f"{cfg.where}: {type(exc).__name__}: {exc} (before the message was sent)", unsent=True
            ) from None
        try:
            code, reply = smtp.data(payload)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused: nothing was sent
            raise _Failed(
                f"{cfg.where} refused the message ({_reply(exc.smtp_code, exc.smtp_error)})",
                unsent=_transient(exc.smtp_code),
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _Failed(
                f"connection to {cfg.where} lost while it was taking the message ({type(exc).__name__}: {exc}); "
                "it may have been delivered, so it is not sent again"
            ) from None
        if code != 250:
            raise _Failed(f"{cfg.where} refused the message ({_reply(code, reply)})", unsent=_transient(code))
    finally:
        _close(smtp)
    if refused:
        raise _Failed(
            "recipient(s) refused: "
            + "; ".join(f"{r} ({why})" for r, why in refused.items())
            + f"; delivered to {', '.join(accepted)} (not sent again)"
        )
    return accepted


def send_email(subject: str, text: str, cfg: EmailConfig) -> list[str]:
    """Send ``text`` with ``subject`` to every SMTP_TO recipient; returns the recipients, or
    raises EmailError with the reason (the password never in it)."""
    if not cfg.configured:
        raise EmailError("email is not configured (SMTP_HOST unset)")
    payload = build_message(subject, text, cfg).as_bytes(policy=SMTP_POLICY)
    try:
        return retry_unsent(
            lambda: _deliver(payload, cfg),
            unsent=lambda exc: isinstance(exc, _Failed) and exc.unsent,
            retries=cfg.retries,
            backoff_s=cfg.backoff_s,
            what=f"email via {cfg.where}",
        )
    except RetriesExhausted as exc:
        raise EmailError(cfg.scrub(f"{exc.last} after {exc.attempts} attempt(s)")) from None
    except _Failed as exc:
        raise EmailError(cfg.scrub(exc.reason)) from None


def check_email_access(cfg: EmailConfig) -> str:
    """What `synoforecast doctor` asks: connect, STARTTLS (certificate verified), log in, and
    have the sender and every recipient accepted, then RSET and QUIT: no message is sent.
    Returns a one-line description; raises EmailError with the reason."""
    if not cfg.configured:
        raise EmailError("email is not configured (SMTP_HOST unset)")
    try:
        smtp = _connect(cfg)
    except _Failed as exc:
        raise EmailError(cfg.scrub(exc.reason)) from None
    try:
        tls = smtp.sock.version() if cfg.smtp_starttls and isinstance(smtp.sock, ssl.SSLSocket) else None
        code, reply = smtp.mail(_envelope(cfg.smtp_from))
        if code != 250:
            raise EmailError(f"sender {cfg.smtp_from} refused ({_reply(code, reply)})")
        refused = {}
        for recipient in cfg.smtp_to:
            code, reply = smtp.rcpt(_envelope(recipient))
            if code not in (250, 251):
                refused[recipient] = _reply(code, reply)
        smtp.rset()
    except (OSError, smtplib.SMTPException) as exc:
        raise EmailError(cfg.scrub(f"{cfg.where}: {type(exc).__name__}: {exc}")) from None
    finally:
        _close(smtp)
    if refused:
        raise EmailError("recipient(s) refused: " + "; ".join(f"{r} ({why})" for r, why in refused.items()))
    parts = [f"{cfg.where} answered"]
    parts.append(f"STARTTLS {tls}, certificate verified" if tls else "no TLS (SMTP_STARTTLS=false)")
    if cfg.smtp_username:
        parts.append(f"login as {cfg.smtp_username!r} accepted")
    parts.append(f"sender and {len(cfg.smtp_to)} recipient(s) accepted (nothing sent)")
    return "; ".join(parts)
