"""The one way secrets are kept out of messages, logs and reprs: warehouse and Metabase
passwords, API keys, session tokens and webhook URLs (whose path is the credential)."""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "***"


def safe_url(url: str | None) -> str | None:
    """The URL with its password replaced by ***; the user stays, it helps on-call."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<invalid url>"
    if not password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{MASK}@", 1)).geturl()


def url_secrets(url: str | None) -> list[str]:
    """The parts of a URL that are themselves the secret: its password, or for a webhook
    URL (whose path carries the token) the URL and its path in every spelling."""
    if not url:
        return []
    found = {url, url.rstrip("/")}
    try:
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        if len(parts.path) > 1:
            found |= {
                parts.path,
                parts.path + (f"?{parts.query}" if parts.query else ""),
                f"{parts.netloc}{parts.path}",
            }
    except ValueError:
        pass
    return [f for f in found if f and f != "/"]


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every non-empty secret replaced by ***, longest first (so a secret that
    contains another is not left half shown)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
