"""The one redaction helper: URLs, secrets in text, webhook URLs whose path is the token."""

from synoforecast.lib.redaction import redact, safe_url, url_secrets


def test_a_url_keeps_its_user_and_hides_its_password():
    url = "postgresql://forecast:s3cr%21t@db.internal:5433/sales?sslmode=require"
    assert safe_url(url) == "postgresql://forecast:***@db.internal:5433/sales?sslmode=require"


def test_urls_without_a_password_are_unchanged():
    for url in (
        "postgresql://forecast@db/sales",
        "http://metabase:3000",
        "postgresql:///sales?host=/run",
        "postgresql://postgres:@/postgres?host=/tmp/x",
    ):
        assert safe_url(url) == url
    assert safe_url(None) is None


def test_every_secret_is_masked_longest_first():
    assert redact("key abc123, token abc123xyz", "abc123", "abc123xyz", None, "") == "key ***, token ***"


def test_a_webhook_url_is_masked_in_every_spelling_an_error_may_use():
    url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    for message in (
        f"POST {url} failed",
        "timeout on /services/T000/B000/XXXXSECRET",
        "hooks.slack.com/services/T000/B000/XXXXSECRET/ refused",
    ):
        shown = redact(message, *url_secrets(url))
        assert "XXXXSECRET" not in shown and "***" in shown, shown


def test_a_url_password_is_a_secret_of_its_own():
    url = "http://admin:hunter2@metabase:3000"
    assert "hunter2" not in redact("login failed for hunter2 at metabase", *url_secrets(url))
