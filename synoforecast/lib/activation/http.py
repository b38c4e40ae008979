"""The one retry rule of the platform (Metabase, webhooks and SMTP), and its one wait rule
(Metabase starting up, a schema sync finishing), both on tenacity.

Retried: answers 5xx, and transport failures where the request cannot have been
processed (connection refused, connect/pool timeout). A read timeout or a dropped
connection after the request was sent may mean the server acted on it: it is retried
only for idempotent requests (``idempotent=True``), never for a webhook post, which would
deliver the message twice. Email (lib/activation/email.py) follows the same schedule
through ``retry_unsent``: it says itself which failures delivered nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # nothing reached the server
MAYBE_PROCESSED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)  # sent, answer lost


class RetriesExhausted(Exception):
    """Every attempt failed; ``last`` is the last answer (a 5xx) or transport error."""

    def __init__(self, attempts: int, last: httpx.Response | Exception):
        super().__init__(f"{attempts} attempt(s)")
        self.attempts = attempts
        self.last = last


def _attempts(retries: int) -> int:
    return max(0, retries) + 1


def _schedule(retries: int, backoff_s: float) -> dict:
    """The rule's stop and wait: at most ``retries + 1`` attempts, ``backoff_s * 2**n`` apart (60 s at most)."""
    wait = tenacity.wait_exponential(multiplier=backoff_s, min=0, max=60) if backoff_s > 0 else tenacity.wait_none()
    return {"stop": tenacity.stop_after_attempt(_attempts(retries)), "wait": wait}


def send_with_retries(
    send: Callable[[], httpx.Response], *, retries: int, backoff_s: float, idempotent: bool, what: str = "request"
) -> httpx.Response:
    """``send()`` until it answers below 500, at most ``retries + 1`` times, waiting
    ``backoff_s * 2**n`` between attempts. Returns the answer (4xx included, untouched);
    raises RetriesExhausted, or the transport error itself when it is not retryable."""
    retryable = NOT_SENT + (MAYBE_PROCESSED if idempotent else ())
    attempts = _attempts(retries)

    def log_retry(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        reason = (
            f"HTTP {outcome.result().status_code}"
            if outcome and not outcome.failed
            else type(outcome.exception()).__name__
            if outcome
            else "?"
        )
        log.warning(
            "%s failed (%s); retry %d/%d in %.2fs",
            what,
            reason,
            state.attempt_number,
            attempts - 1,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = tenacity.Retrying(
        **_schedule(retries, backoff_s),
        retry=(
            tenacity.retry_if_exception_type(retryable) | tenacity.retry_if_result(lambda resp: resp.status_code >= 500)
        ),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(send)
    except retryable as exc:
        raise RetriesExhausted(attempts, exc) from None
    except tenacity.RetryError as exc:  # the last attempt still answered 5xx
        raise RetriesExhausted(attempts, exc.last_attempt.result()) from None


def retry_unsent(
    send: Callable[[], T],
    *,
    unsent: Callable[[BaseException], bool],
    retries: int,
    backoff_s: float,
    what: str = "request",
) -> T:
    """``send()`` again, on the schedule of ``send_with_retries``, while it raises an error for
    which ``unsent(error)`` says nothing was delivered and another attempt may work. Any other
    error propagates at once; when every attempt failed, raises RetriesExhausted (``last``: the
    last error)."""
    attempts = _attempts(retries)

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (%s); retry %d/%d in %.2fs",
            what,
            str(error) or type(error).__name__,
            state.attempt_number,
            attempts - 1,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = tenacity.Retrying(
        **_schedule(retries, backoff_s), retry=tenacity.retry_if_exception(unsent), before_sleep=log_retry, reraise=True
    )
    try:
        return retrying(send)
    except Exception as exc:
        if unsent(exc):
            raise RetriesExhausted(attempts, exc) from None
        raise


class StillWaiting(Exception):
    """wait_until gave up: the condition did not hold within its attempts or time."""

    def __init__(self, attempts: int, waited_s: float):
        super().__init__(f"{attempts} attempt(s) in {waited_s:.1f} s")
        self.attempts = attempts
        self.waited_s = waited_s


def wait_until(
    probe: Callable[[], T | None],
    *,
    wait_s: float,
    attempts: int | None = None,
    timeout_s: float | None = None,
    what: str = "condition",
) -> T:
    """The platform's one wait rule: call ``probe()`` until it returns something other than
    None, ``wait_s`` apart, at most ``attempts`` times or until ``timeout_s`` has passed
    (checked after each probe, so there is always one). Exceptions from ``probe`` propagate."""
    stop = (
        tenacity.stop_after_attempt(max(1, attempts))
        if attempts is not None
        else tenacity.stop_after_delay(max(0.0, timeout_s or 0.0))
    )

    def log_wait(state: tenacity.RetryCallState) -> None:
        log.info("%s not yet (attempt %d); waiting %.2fs", what, state.attempt_number, wait_s)

    retrying = tenacity.Retrying(
        stop=stop,
        wait=tenacity.wait_fixed(max(0.0, wait_s)),
        retry=tenacity.retry_if_result(lambda result: result is None),
        before_sleep=log_wait,
    )
    started = time.monotonic()
    try:
        return retrying(probe)
    except tenacity.RetryError as exc:
        raise StillWaiting(exc.last_attempt.attempt_number, time.monotonic() - started) from None
