"""The email route against a real SMTP server (aiosmtpd with STARTTLS and AUTH, support/smtp_server.py):
no part of smtplib is replaced."""

from __future__ import annotations

import logging
import smtplib
import time

import pytest

from synoforecast.lib.activation.email import EmailConfig, EmailError, check_email_access, send_email
from synoforecast.lib.activation.notify import NotifyConfig, render_text, send_alert, send_summary
from synoforecast_tests.support.smtp_server import PASSWORD, RECIPIENTS, SENDER, USER, SmtpServer, free_port, make_cert

SUMMARY = {
    "title": "synoforecast: forecasts for 2026-Q4",
    "as_of": "2026-Q3",
    "dbt": {"passed": 40, "failed": 0},
    "forecasts": [
        {
            "cohort": "svr_rm_overall",
            "series_id": "total",
            "series_name": "SVR-RM total",
            "metric": "revenue",
            "target": "2026-Q4",
            "yhat": 1234.5,
            "last_actual": 1100.0,
            "change_pct": 12.2,
            "smape": 8.1,
        }
    ],
    "narratives": [{"cohort": "svr_rm_overall", "metric": "revenue", "text": "SVR-RM revenue → 1,234.5 (+12.2%)"}],
    "run_url": "http://dagster:3000/runs/abc-123",
}


def config(server: SmtpServer, **overrides) -> EmailConfig:
    """The route as the variables give it, without waiting between attempts."""
    return EmailConfig.from_variables(server.variables(**overrides)).model_copy(update={"backoff_s": 0.0})


def test_several_recipients_get_one_message_over_starttls_with_auth(smtp_server):
    delivered = send_email("synoforecast: forecasts for 2026-Q4", "Forecasts:\n- SVR-RM → 1,234.5", config(smtp_server))
    assert delivered == list(RECIPIENTS)
    (received,) = smtp_server.received
    assert received.rcpt_tos == ["ops@example.test", "sales@example.test"]
    assert received.mail_from == "forecast@example.test"
    assert received.tls and received.login == USER  # STARTTLS was done, then AUTH
    message = received.message
    assert received.subject == "synoforecast: forecasts for 2026-Q4"
    assert message["From"] == SENDER and message["To"] == ", ".join(RECIPIENTS)
    assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"].endswith("@example.test>")
    assert received.text == "Forecasts:\n- SVR-RM → 1,234.5\n"
    assert PASSWORD.encode() not in received.content


def test_the_server_takes_no_credentials_without_tls_and_the_route_never_sends_them_so(smtp_server):
    # what the server does: before STARTTLS, AUTH is not offered and MAIL is refused
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as plain:
        plain.ehlo()
        assert not plain.has_extn("auth")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            plain.login(USER, PASSWORD)
        assert plain.mail("forecast@example.test")[0] == 530
    assert smtp_server.received == []
    # the route refuses a password without TLS before it connects
    with pytest.raises(EmailError, match="SMTP_STARTTLS is false: the password would cross the network unencrypted"):
        config(smtp_server, SMTP_STARTTLS="false", SMTP_CA_FILE=None)
    # and without STARTTLS (and so without credentials) this server refuses the message
    cfg = config(smtp_server, SMTP_STARTTLS="false", SMTP_CA_FILE=None, SMTP_USERNAME=None, SMTP_PASSWORD=None)
    with pytest.raises(EmailError, match="refused .530 Must issue a STARTTLS command first"):
        send_email("s", "t", cfg)
    assert smtp_server.received == []


def test_a_wrong_password_is_a_clear_error_without_the_password(smtp_server, caplog):
    wrong = "not-the-pw-SECRET"
    cfg = config(smtp_server, SMTP_PASSWORD=wrong)
    assert wrong not in repr(cfg) and wrong not in str(cfg) and "'***'" in repr(cfg)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(EmailError) as err:
        send_email("s", "t", cfg)
    message = str(err.value)
    assert f"authentication as '{USER}' refused by 127.0.0.1:{smtp_server.port}" in message
    assert "535" in message and "check SMTP_USERNAME and SMTP_PASSWORD" in message
    assert "attempt" not in message  # a refused password is not tried again
    assert wrong not in message and wrong not in caplog.text
    assert smtp_server.received == [] and smtp_server.data_attempts == 0


def test_an_unverified_self_signed_certificate_is_refused_unless_smtp_ca_file_holds_it(smtp_server, tmp_path):
    with pytest.raises(EmailError) as err:
        send_email("s", "t", config(smtp_server, SMTP_CA_FILE=None))
    message = str(err.value)
    assert message.startswith(f"TLS failed: the certificate of 127.0.0.1:{smtp_server.port} was refused")
    assert "self-signed certificate" in message and "set SMTP_CA_FILE" in message
    other = make_cert(tmp_path / "other")  # a CA that did not sign the server's certificate
    with pytest.raises(EmailError, match="SMTP_CA_FILE does not hold the CA that signed it"):
        send_email("s", "t", config(smtp_server, SMTP_CA_FILE=str(other.cert)))
    assert smtp_server.received == []
    send_email("s", "t", config(smtp_server))  # SMTP_CA_FILE is the server's certificate
    assert len(smtp_server.received) == 1


COMPLETE = {"SMTP_HOST": "smtp.example.test", "SMTP_FROM": "forecast@example.test", "SMTP_TO": "ops@example.test"}


@pytest.mark.parametrize(
    "variables, error",
    [
        ({"SMTP_HOST": "smtp.example.test"}, "SMTP_HOST is set but SMTP_FROM and SMTP_TO are not"),
        ({**COMPLETE, "SMTP_TO": " , "}, "SMTP_HOST is set but SMTP_TO is not"),
        ({"SMTP_HOST": "smtp.example.test", "SMTP_TO": "ops@example.test"}, "SMTP_HOST is set but SMTP_FROM is not"),
        (
            {"SMTP_TO": "ops@example.test", "SMTP_PASSWORD": "pw-SECRET"},
            "SMTP_PASSWORD and SMTP_TO are set but SMTP_HOST",
        ),
        ({**COMPLETE, "SMTP_USERNAME": "forecast"}, "SMTP_USERNAME is set but SMTP_PASSWORD is not"),
        ({**COMPLETE, "SMTP_PASSWORD": "pw-SECRET"}, "SMTP_PASSWORD is set but SMTP_USERNAME is not"),
        ({**COMPLETE, "SMTP_CA_FILE": "/nonexistent/ca.pem"}, "SMTP_CA_FILE is not a file"),
        ({**COMPLETE, "SMTP_TO": "ops@example.test, sales"}, "SMTP_TO must be comma-separated email addresses"),
        ({**COMPLETE, "SMTP_PORT": "smtp"}, "SMTP_PORT must be an integer, got 'smtp'"),
        ({**COMPLETE, "SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS must be true or false"),
        ({**COMPLETE, "SMTP_HOST": "smtp://mail.example.test"}, "SMTP_HOST must be a host name"),
    ],
)
def test_half_a_configuration_is_an_error_naming_what_is_missing(variables, error):
    with pytest.raises(EmailError, match=error) as err:
        EmailConfig.from_variables(variables)
    assert "pw-SECRET" not in str(err.value)


def test_nothing_set_is_not_configured_and_the_defaults_are_the_submission_port_with_starttls():
    assert not EmailConfig.from_variables({"SMTP_HOST": " ", "SMTP_PORT": "2525"}).configured
    cfg = EmailConfig.from_variables(
        {**COMPLETE, "SMTP_TO": "ops@example.test,Sales <sales@example.test>, ops@example.test"}
    )
    assert cfg.configured and cfg.smtp_port == 587 and cfg.smtp_starttls and cfg.smtp_ca_file is None
    assert cfg.smtp_to == ["ops@example.test", "Sales <sales@example.test>"]


def test_a_refused_connection_is_tried_again_then_named():
    port = free_port()  # nothing listens there
    cfg = EmailConfig.from_variables({**COMPLETE, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)})
    with pytest.raises(EmailError) as err:
        send_email("s", "t", cfg.model_copy(update={"backoff_s": 0.0}))
    assert str(err.value) == f"connection to 127.0.0.1:{port} refused after 3 attempt(s)"


def test_temporary_refusals_before_the_message_was_taken_are_tried_again(smtp_server):
    smtp_server.busy_rcpt = len(RECIPIENTS)  # every recipient: 451 at the first attempt
    smtp_server.busy_data = 1  # then the end of the message: 451 at the second
    assert send_email("s", "t", config(smtp_server)) == list(RECIPIENTS)
    assert len(smtp_server.received) == 1 and smtp_server.data_attempts == 2


def test_a_message_whose_answer_was_lost_is_not_sent_again(smtp_server):
    smtp_server.data_delay_s = 1.5  # the server takes the message after the client stopped waiting
    with pytest.raises(EmailError, match="it may have been delivered, so it is not sent again") as err:
        send_email("s", "t", config(smtp_server, SMTP_TIMEOUT_S="0.5"))
    assert "attempt" not in str(err.value)
    deadline = time.monotonic() + 5
    while not smtp_server.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp_server.received) == 1 and smtp_server.data_attempts == 1


def test_a_refused_recipient_is_named_and_the_others_get_it_once(smtp_server):
    smtp_server.refuse = {"ops@example.test"}
    with pytest.raises(EmailError) as err:
        send_email("s", "t", config(smtp_server))
    message = str(err.value)
    assert "recipient(s) refused: ops@example.test (550 5.1.1" in message and "User unknown" in message
    assert "delivered to Sales Lead <sales@example.test> (not sent again)" in message
    (received,) = smtp_server.received
    assert received.rcpt_tos == ["sales@example.test"] and smtp_server.data_attempts == 1
    smtp_server.refuse = {"ops@example.test", "sales@example.test"}
    with pytest.raises(EmailError, match="every recipient refused: ops@example.test .550"):
        send_email("s", "t", config(smtp_server))
    assert smtp_server.data_attempts == 1


def test_a_relay_without_tls_takes_the_message_only_when_starttls_is_off(smtp_cert):
    with SmtpServer(smtp_cert, tls=False) as relay:
        assert "SMTP_USERNAME" not in relay.variables()
        send_email("s", "t", config(relay))
        (received,) = relay.received
        assert not received.tls and received.login is None
        with pytest.raises(EmailError, match="does not offer STARTTLS: nothing is sent unencrypted"):
            send_email("s", "t", config(relay, SMTP_STARTTLS=None))
        assert len(relay.received) == 1


def test_email_is_a_channel_of_the_summary_and_of_alerts(smtp_server):
    cfg = NotifyConfig(email=config(smtp_server))
    assert cfg.channels() == ["email"] and cfg.only(["slack"]).channels() == []
    assert PASSWORD not in repr(cfg)
    assert send_summary(SUMMARY, cfg) == {"email": "sent"}
    (summary,) = smtp_server.received
    assert summary.subject == "synoforecast: forecasts for 2026-Q4"
    assert summary.text == render_text(SUMMARY) + "\n"
    assert (
        "SVR-RM total · revenue → 2026-Q4: 1,234.5" in summary.text
        and "Run: http://dagster:3000/runs/abc-123" in summary.text
    )
    outcome = send_alert(
        "synoforecast run failed: forecast_pipeline_job",
        ["step forecast__regional: warehouse went away"],
        cfg,
        event="run_failure",
        run_url="http://dagster:3000/runs/r-1",
    )
    assert outcome == {"email": "sent"}
    alert = smtp_server.received[1]
    assert alert.subject == "synoforecast run failed: forecast_pipeline_job"
    assert (
        "- step forecast__regional: warehouse went away" in alert.text and "http://dagster:3000/runs/r-1" in alert.text
    )


def test_a_channel_that_failed_says_why_without_the_password(smtp_server):
    cfg = NotifyConfig(email=config(smtp_server, SMTP_PASSWORD="wrong-pw-SECRET"))
    (result,) = send_summary(SUMMARY, cfg).values()
    assert result.startswith("failed: authentication as 'forecast' refused") and "wrong-pw-SECRET" not in result


def test_the_doctor_probe_sends_nothing(smtp_server):
    detail = check_email_access(config(smtp_server))
    assert f"127.0.0.1:{smtp_server.port} answered; STARTTLS TLSv1" in detail
    assert "certificate verified" in detail and f"login as '{USER}' accepted" in detail
    assert "2 recipient(s) accepted (nothing sent)" in detail
    assert smtp_server.received == [] and smtp_server.data_attempts == 0
    smtp_server.refuse = {"ops@example.test"}
    with pytest.raises(EmailError, match="recipient.s. refused: ops@example.test .550"):
        check_email_access(config(smtp_server))
    with pytest.raises(EmailError, match="535"):
        check_email_access(config(smtp_server, SMTP_PASSWORD="nope"))
